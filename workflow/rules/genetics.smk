# Genetics (paper 4.4.1-4.4.2): panel extraction and QC with PLINK 2, the genotype matrix,
# fold-wise 2p imputation, and tokens per SNP of the SNP text.

import os

GEN = config["genetics"]
GENETICS = "results/genetics"
PLINK = GEN["plink"]

ALL_TARGETS += [
    f"{GENETICS}/qc_report.tsv",
    f"{GENETICS}/snps.tsv",
    f"{GENETICS}/genes.tsv",
    f"{GENETICS}/snp_text_tokens.tsv",
    *expand(f"{GENETICS}/imputed/fold{{k}}.npz", k=FOLDS),
]


rule panel_extract:
    """PLINK 2: variants inside the panel genes (± genetics.window_kb) of the clinical subjects (paper 4.4.1)."""
    input:
        genotypes=multiext(DATA["genotypes"], ".bed", ".bim", ".fam"),
        gene_panel=GEN["gene_panel"],
        manifest="results/cohort/manifest.tsv",
    output:
        trio=multiext(f"{GENETICS}/panel/panel", ".bed", ".bim", ".fam"),
        variants=f"{GENETICS}/panel/panel_variants.tsv",
        summary=f"{GENETICS}/panel/extract_summary.json",
    params:
        # PLINK prefixes: the trio's path without ".bed".
        bfile=lambda w, input: input.genotypes[0][: -len(".bed")],
        prefix=lambda w, output: output.trio[0][: -len(".bed")],
        window_kb=GEN["window_kb"],
        plink2=PLINK["binary"],
        memory_mb=PLINK["memory_mb"],
    threads: PLINK["threads"]
    resources:
        mem_mb=PLINK["memory_mb"] + 512,
    log:
        "results/logs/genetics/panel_extract.log",
    benchmark:
        "results/benchmarks/genetics/panel_extract.tsv"
    conda:
        conda_env("genetics")
    shell:
        "rgenima panel-extract --bfile {params.bfile:q} --gene-panel {input.gene_panel:q} "
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
        trio=multiext(f"{GENETICS}/qc/qc", ".bed", ".bim", ".fam"),
        report=report(f"{GENETICS}/qc_report.tsv", category="Genetics", caption="../report/qc_report.rst"),
        variants=f"{GENETICS}/qc/qc_variants.tsv",
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
        "results/logs/genetics/plink_qc.log",
    benchmark:
        "results/benchmarks/genetics/plink_qc.tsv"
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
        manifest="results/cohort/manifest.tsv",
    output:
        genotypes=f"{GENETICS}/genotypes.npz",
        snps=report(f"{GENETICS}/snps.tsv", category="Genetics", caption="../report/snps.rst"),
        genes=report(f"{GENETICS}/genes.tsv", category="Genetics", caption="../report/genes.rst"),
    params:
        prefix=lambda w, input: input.trio[0][: -len(".bed")],
    log:
        "results/logs/genetics/genotype_matrix.log",
    benchmark:
        "results/benchmarks/genetics/genotype_matrix.tsv"
    conda:
        conda_env("genetics")
    shell:
        "rgenima genotype-matrix --qc-prefix {params.prefix:q} --qc-variants {input.variants:q} "
        "--gene-panel {input.gene_panel:q} --manifest {input.manifest:q} --output {output.genotypes:q} "
        "--snps {output.snps:q} --genes {output.genes:q} > {log:q} 2>&1"


rule impute_genotypes:
    """Missing calls -> 2p per fold, p from the fold's training subjects only (paper 4.4.1; DESIGN 5)."""
    input:
        genotypes=rules.genotype_matrix.output.genotypes,
        folds="results/splits/folds.tsv",
    output:
        expand(f"{GENETICS}/imputed/fold{{k}}.npz", k=FOLDS),
    params:
        out_dir=lambda w, output: os.path.dirname(output[0]),
        protocol=config["split"]["protocol"],
    log:
        "results/logs/genetics/impute_genotypes.log",
    benchmark:
        "results/benchmarks/genetics/impute_genotypes.tsv"
    conda:
        conda_env("genetics")
    shell:
        "rgenima impute-genotypes --genotypes {input.genotypes:q} --folds {input.folds:q} "
        "--protocol {params.protocol:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule snp_text_tokens:
    """Tokens per SNP of the compact SNP text and of the verbose rsID + alleles form."""
    input:
        imputed=f"{GENETICS}/imputed/fold0.npz",
        snps=rules.genotype_matrix.output.snps,
    output:
        report(f"{GENETICS}/snp_text_tokens.tsv", category="Genetics", caption="../report/snp_text_tokens.rst"),
    params:
        tokenizer=["--tokenizer", GEN["tokenizer_path"]] if GEN["tokenizer_path"] else [],
    log:
        "results/logs/genetics/snp_text_tokens.log",
    benchmark:
        "results/benchmarks/genetics/snp_text_tokens.tsv"
    conda:
        conda_env("genetics")
    shell:
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 rgenima snp-text-tokens --imputed {input.imputed:q} "
        "--snps {input.snps:q} {params.tokenizer:q} --output {output:q} > {log:q} 2>&1"
