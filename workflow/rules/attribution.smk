# Interpretability (paper 2.2-2.4, 4.3; docs/design.md, "Attribution"): streaming attention rollout of every test subject into one
# attention dump per model and fold, then bootstrap stability of genes, stage ROIs and ROI-gene pairs, the
# permutation test of stage ROIs against NC, the GWAS enrichment test and, on the synthetic cohort, the
# planted-truth recovery. Everything after `attribute` reads the dumps only.
# Helpers (ATTR, attribution_dumps, bootstrap_args): rules/common.smk.


rule attribute:
    """Streaming attention rollout (SDPA outputs, attention rebuilt in row blocks) of one fold's test subjects -> dump."""
    input:
        checkpoint=R("llm_checkpoint"),
        samples=R("samples"),
        imputed=R("imputed"),
        snps=R("snps"),
        embeddings=R("embeddings", encoder="rit"),
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
    output:
        dump=R("attention_dump"),
        summary=R("attention_summary"),
    params:
        sink=ATTR["sink"],
        answer_rows=ATTR["answer_rows"],
        batch_size=ATTR["batch_size"],
        gene_orders=ATTR["gene_orders"],
        bf16=["--bf16"] if config["train"]["bf16"] else [],
        seed=config["seed"],
        limit=["--limit", ATTR["limit"]] if ATTR["limit"] else [],
    threads: 2
    log:
        log_path("attribution", "attribute_{model}_{dconfig}_fold{k}"),
    benchmark:
        benchmark_path("attribution", "attribute_{model}_{dconfig}_fold{k}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima attribute --checkpoint {input.checkpoint:q} --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} --embeddings {input.embeddings:q} "
        "--gene-panel {input.gene_panel:q} --rois {input.rois:q} --fold {wildcards.k:q} --model {wildcards.model:q} "
        "--sink {params.sink:q} --answer-rows {params.answer_rows:q} --gene-orders {params.gene_orders:q} "
        "--seed {params.seed:q} --batch-size {params.batch_size:q} {params.bf16:q} {params.limit:q} "
        "--threads {threads:q} --output {output.dump:q} --summary {output.summary:q} > {log:q} 2>&1"


rule bootstrap_genes:
    """Stable genes (paper 2.2): top-k by mean importance in more than half of B subject resamples."""
    input:
        dumps=attribution_dumps,
        gene_panel=GEN["gene_panel"],
    output:
        genes=report(R("stable_genes"), category="Interpretability", subcategory="{model} ({dconfig})",
                     caption="../report/attribution_genes.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_genes"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["gene_score"],
    log:
        log_path("attribution", "bootstrap_genes_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_genes_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-genes --dumps {input.dumps:q} {params.common:q} --top-k {params.top_k:q} "
        "--threshold {params.threshold:q} --score {params.score:q} --gene-panel {input.gene_panel:q} "
        "--output {output.genes:q} > {log:q} 2>&1"


rule bootstrap_rois:
    """Stable ROIs per stage (paper 2.3) beside a label-permutation test against NC with BH FDR."""
    input:
        dumps=attribution_dumps,
    output:
        rois=report(R("stable_rois"), category="Interpretability", subcategory="{model} ({dconfig})",
                    caption="../report/attribution_rois.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_rois"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["roi_score"],
        n_perm=ATTR["n_permutations"],
        alternative=ATTR["permutation_alternative"],
        alpha=ATTR["fdr_alpha"],
    log:
        log_path("attribution", "bootstrap_rois_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_rois_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-rois --dumps {input.dumps:q} {params.common:q} --top-k {params.top_k:q} "
        "--threshold {params.threshold:q} --score {params.score:q} --n-perm {params.n_perm:q} "
        "--alternative {params.alternative:q} --alpha {params.alpha:q} --output {output.rois:q} > {log:q} 2>&1"


rule bootstrap_roi_gene:
    """ROI-gene pairs per stage (paper 4.3, eqs. 13-17): bootstrap mean, 95% CI, stability = mean / CI width."""
    input:
        dumps=attribution_dumps,
        rois=rules.bootstrap_rois.output.rois,
    output:
        pairs=R("roi_gene"),
        top=report(R("roi_gene_top"), category="Interpretability", subcategory="{model} ({dconfig})",
                   caption="../report/attribution_roi_gene.rst"),
    params:
        common=bootstrap_args(),
        n_top=ATTR["top_pairs"],
    log:
        log_path("attribution", "bootstrap_roi_gene_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_roi_gene_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-roi-gene --dumps {input.dumps:q} {params.common:q} --rois-table {input.rois:q} "
        "--top {output.top:q} --n-top {params.n_top:q} --output {output.pairs:q} > {log:q} 2>&1"


rule enrichment:
    """One-sided Fisher exact test of the stable genes against the panel's AD-GWAS genes (paper 2.2)."""
    input:
        genes=rules.bootstrap_genes.output.genes,
        gene_panel=GEN["gene_panel"],
    output:
        table=R("enrichment"),
        markdown=report(R("enrichment_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                        caption="../report/attribution_enrichment.rst"),
    log:
        log_path("attribution", "enrichment_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "enrichment_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima enrichment --genes {input.genes:q} --gene-panel {input.gene_panel:q} --output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


if SYNTHETIC:

    rule attribution_recovery:
        """Planted-truth recovery: causal genes, stage ROIs and ROI-gene pairs found again (synthetic cohort)."""
        input:
            truth=TRUTH,
            genes=rules.bootstrap_genes.output.genes,
            rois=rules.bootstrap_rois.output.rois,
            pairs=rules.bootstrap_roi_gene.output.pairs,
            dumps=attribution_dumps,
        output:
            table=R("recovery"),
            markdown=report(R("recovery_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                            caption="../report/attribution_recovery.rst"),
        params:
            top_n=ATTR["top_pairs"],
        log:
            log_path("attribution", "recovery_{model}_{dconfig}"),
        benchmark:
            benchmark_path("attribution", "recovery_{model}_{dconfig}")
        conda:
            conda_env("analysis")
        shell:
            "rgenima attribution-recovery --truth {input.truth:q} --genes {input.genes:q} --rois {input.rois:q} "
            "--pairs {input.pairs:q} --dumps {input.dumps:q} --top-n {params.top_n:q} --output {output.table:q} "
            "--markdown {output.markdown:q} > {log:q} 2>&1"
