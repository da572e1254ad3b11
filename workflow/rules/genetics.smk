# Genetics (paper 4.4.1-4.4.2): panel extraction and QC with PLINK 2, the genotype matrix,
# fold-wise 2p imputation, and tokens per SNP of the SNP text.


rule panel_extract:
    """PLINK 2: variants inside the panel genes (± genetics.window_kb) of the clinical subjects (paper 4.4.1)."""
    input:
        genotypes=multiext(DATA["genotypes"], ".bed", ".bim", ".fam"),
        gene_panel=GEN["gene_panel"],
        reference_snps=GEN["build_reference_snps"],
        manifest=R("manifest"),
    output:
        trio=multiext(R("panel_trio"), ".bed", ".bim", ".fam"),
        variants=R("panel_variants"),
        summary=R("panel_summary"),
    params:
        # PLINK prefixes: the trio's path without ".bed".
        bfile=lambda w, input: input.genotypes[0][: -len(".bed")],
        prefix=lambda w, output: output.trio[0][: -len(".bed")],
        window_kb=GEN["window_kb"],
        # Build and input checks of panel_extract (docs/genotype_checks.md).
        checks=[
            *(["--assume-build", GEN["assume_build"]] if GEN["assume_build"] else []),
            "--min-gene-fraction", GEN["min_gene_fraction"],
            "--max-sex-mismatch-fraction", GEN["max_sex_mismatch_fraction"],
        ],
        plink2=PLINK["binary"],
        memory_mb=PLINK["memory_mb"],
    threads: PLINK["threads"]
    resources:
        mem_mb=PLINK["memory_mb"] + 512,
    log:
        log_path("genetics", "panel_extract"),
    benchmark:
        benchmark_path("genetics", "panel_extract")
    conda:
        conda_env("genetics")
    shell:
        "rgenima panel-extract --bfile {params.bfile:q} --gene-panel {input.gene_panel:q} "
        "--reference-snps {input.reference_snps:q} {params.checks:q} "
        "--manifest {input.manifest:q} --window-kb {params.window_kb:q} --out-prefix {params.prefix:q} "
        "--variants {output.variants:q} --summary {output.summary:q} --plink2 {params.plink2:q} "
        "--threads {threads:q} --memory-mb {params.memory_mb:q} > {log:q} 2>&1"


rule plink_qc:
    """PLINK 2 --geno, --maf, --hwe in turn (paper 4.4.1), and the QC report per gene."""
    input:
        trio=rules.panel_extract.output.trio,
        variants=rules.panel_extract.output.variants,
        gene_panel=GEN["gene_panel"],
    output:
        trio=multiext(R("qc_trio"), ".bed", ".bim", ".fam"),
        report=report(R("qc_report"), category="Genetics", caption="../report/qc_report.rst"),
        variants=R("qc_variants"),
    params:
        panel=lambda w, input: input.trio[0][: -len(".bed")],
        prefix=lambda w, output: output.trio[0][: -len(".bed")],
        plink2=PLINK["binary"],
        memory_mb=PLINK["memory_mb"],
        qc=["--geno", PLINK["geno"], "--maf", PLINK["maf"], "--hwe", PLINK["hwe"]],
    threads: PLINK["threads"]
    resources:
        mem_mb=PLINK["memory_mb"] + 512,
    log:
        log_path("genetics", "plink_qc"),
    benchmark:
        benchmark_path("genetics", "plink_qc")
    conda:
        conda_env("genetics")
    shell:
        "rgenima plink-qc --panel-prefix {params.panel:q} --variants {input.variants:q} "
        "--gene-panel {input.gene_panel:q} {params.qc:q} "
        "--out-prefix {params.prefix:q} --report {output.report:q} --variants-out {output.variants:q} "
        "--plink2 {params.plink2:q} --threads {threads:q} --memory-mb {params.memory_mb:q} > {log:q} 2>&1"


rule genotype_matrix:
    """QC'd genotypes read with pyplink: subjects x SNPs minor-allele dosage, snps.tsv, genes.tsv."""
    input:
        trio=rules.plink_qc.output.trio,
        variants=rules.plink_qc.output.variants,
        gene_panel=GEN["gene_panel"],
        manifest=R("manifest"),
    output:
        genotypes=R("genotypes"),
        snps=report(R("snps"), category="Genetics", caption="../report/snps.rst"),
        genes=report(R("genes"), category="Genetics", caption="../report/genes.rst"),
    params:
        prefix=lambda w, input: input.trio[0][: -len(".bed")],
    log:
        log_path("genetics", "genotype_matrix"),
    benchmark:
        benchmark_path("genetics", "genotype_matrix")
    conda:
        conda_env("genetics")
    shell:
        "rgenima genotype-matrix --qc-prefix {params.prefix:q} --qc-variants {input.variants:q} "
        "--gene-panel {input.gene_panel:q} --manifest {input.manifest:q} --output {output.genotypes:q} "
        "--snps {output.snps:q} --genes {output.genes:q} > {log:q} 2>&1"


rule impute_genotypes:
    """Missing calls -> 2p per fold, p from the fold's training subjects only (paper 4.4.1; docs/design.md, "Subject-level splits")."""
    input:
        genotypes=rules.genotype_matrix.output.genotypes,
        folds=R("folds"),
    output:
        [R("imputed", k=k) for k in FOLDS],
    params:
        out_dir=lambda w, output: str(Path(output[0]).parent),
        protocol=SPLIT["protocol"],
    log:
        log_path("genetics", "impute_genotypes"),
    benchmark:
        benchmark_path("genetics", "impute_genotypes")
    conda:
        conda_env("genetics")
    shell:
        "rgenima impute-genotypes --genotypes {input.genotypes:q} --folds {input.folds:q} "
        "--protocol {params.protocol:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule snp_text_tokens:
    """Tokens per SNP of the SNP text as configured, with every genotype separator, and of the verbose form."""
    input:
        imputed=R("imputed", k=0),
        snps=rules.genotype_matrix.output.snps,
    output:
        report(R("snp_text_tokens"), category="Genetics", caption="../report/snp_text_tokens.rst"),
    params:
        tokenizer=["--tokenizer", GEN["tokenizer_path"]] if GEN["tokenizer_path"] else [],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
    log:
        log_path("genetics", "snp_text_tokens"),
    benchmark:
        benchmark_path("genetics", "snp_text_tokens")
    conda:
        conda_env("genetics")
    shell:
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 rgenima snp-text-tokens --imputed {input.imputed:q} "
        "--snps {input.snps:q} {params.tokenizer:q} --snp-separator {params.snp_separator:q} "
        "--snp-packing {params.snp_packing:q} --output {output:q} "
        "> {log:q} 2>&1"
