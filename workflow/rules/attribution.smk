# Interpretability (paper 2.2-2.4, 4.3; DESIGN 7): streaming attention rollout of every test subject into one
# attention dump per model and fold, then bootstrap stability of genes, stage ROIs and ROI-gene pairs, the
# permutation test of stage ROIs against NC, the GWAS enrichment test and, on the synthetic cohort, the
# planted-truth recovery. Everything after `attribute` reads the dumps only.
# Helper functions (attribution_dumps, bootstrap_args, produced_by_workflow): rules/common.smk.

ATTR = config["attribution"]
# R-GenIMA models (LLM + RiT, "rgenima_<backbone>" in llm.smk) to attribute: the config's list, or every backbone's.
ATTR_MODELS = ATTR["models"] if ATTR["models"] is not None else [f"rgenima_{b}" for b in config["llm"]["backbones"]]
ATTR_DCONFIG = ATTR["dconfig"]
ATTRIBUTION = "results/attribution"


# The dumps need the fine-tuned checkpoints and the RiT embeddings of the LLM and encoder rules; while those
# rules are not part of the workflow the attribution outputs stay out of `all` (and say so) instead of breaking it.
ATTR_UPSTREAM = [f"results/llm/{m}/{ATTR_DCONFIG}/fold0/checkpoint" for m in ATTR_MODELS] + [
    "results/embeddings/rit/fold0.safetensors"
]
ATTR_READY = all(produced_by_workflow(p) for p in ATTR_UPSTREAM)
if ATTR_READY:
    ALL_TARGETS += [
        *expand(f"{ATTRIBUTION}/{{model}}/{ATTR_DCONFIG}/{{table}}", model=ATTR_MODELS,
                table=["genes.tsv", "rois.tsv", "roi_gene_top.tsv", "enrichment.tsv", "enrichment.md"]),
        *(expand(f"{ATTRIBUTION}/{{model}}/{ATTR_DCONFIG}/recovery.md", model=ATTR_MODELS)
          if config["synthetic"]["enabled"] else []),
    ]
else:
    from snakemake.logging import logger

    logger.warning("attribution: no rule makes " + " / ".join(p for p in ATTR_UPSTREAM if not produced_by_workflow(p))
                   + " yet; the attribution tables and Figures 1-2 are left out of `all`.")

# Per rule, never global: the LLM rules use {model} for other model ids too.
ATTR_WILDCARDS = {"model": r"rgenima_[A-Za-z0-9]+", "dconfig": "gene_only|image_gene|mixture"}


rule attribute:
    """Streaming attention rollout (eager attention, one layer at a time) of one fold's test subjects -> dump."""
    input:
        checkpoint="results/llm/{model}/{dconfig}/fold{k}/checkpoint",
        samples="results/datasets/{dconfig}/fold{k}/samples.tsv",
        imputed="results/genetics/imputed/fold{k}.npz",
        snps="results/genetics/snps.tsv",
        embeddings="results/embeddings/rit/fold{k}.safetensors",
        gene_panel=config["genetics"]["gene_panel"],
        rois=config["imaging"]["rois_table"],
    output:
        dump=f"{ATTRIBUTION}/{{model}}/{{dconfig}}/fold{{k}}/dump.npz",
        summary=f"{ATTRIBUTION}/{{model}}/{{dconfig}}/fold{{k}}/summary.json",
    wildcard_constraints:
        k=r"\d+",
        **ATTR_WILDCARDS,
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
        "results/logs/attribution/attribute_{model}_{dconfig}_fold{k}.log",
    benchmark:
        "results/benchmarks/attribution/attribute_{model}_{dconfig}_fold{k}.tsv"
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
        gene_panel=config["genetics"]["gene_panel"],
    wildcard_constraints:
        **ATTR_WILDCARDS,
    output:
        genes=report(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/genes.tsv", category="Interpretability",
                     subcategory="{model} ({dconfig})", caption="../report/attribution_genes.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_genes"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["gene_score"],
    log:
        "results/logs/attribution/bootstrap_genes_{model}_{dconfig}.log",
    benchmark:
        "results/benchmarks/attribution/bootstrap_genes_{model}_{dconfig}.tsv"
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
    wildcard_constraints:
        **ATTR_WILDCARDS,
    output:
        rois=report(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/rois.tsv", category="Interpretability",
                    subcategory="{model} ({dconfig})", caption="../report/attribution_rois.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_rois"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["roi_score"],
        n_perm=ATTR["n_permutations"],
        alternative=ATTR["permutation_alternative"],
        alpha=ATTR["fdr_alpha"],
    log:
        "results/logs/attribution/bootstrap_rois_{model}_{dconfig}.log",
    benchmark:
        "results/benchmarks/attribution/bootstrap_rois_{model}_{dconfig}.tsv"
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
    wildcard_constraints:
        **ATTR_WILDCARDS,
    output:
        pairs=f"{ATTRIBUTION}/{{model}}/{{dconfig}}/roi_gene.tsv",
        top=report(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/roi_gene_top.tsv", category="Interpretability",
                   subcategory="{model} ({dconfig})", caption="../report/attribution_roi_gene.rst"),
    params:
        common=bootstrap_args(),
        n_top=ATTR["top_pairs"],
    log:
        "results/logs/attribution/bootstrap_roi_gene_{model}_{dconfig}.log",
    benchmark:
        "results/benchmarks/attribution/bootstrap_roi_gene_{model}_{dconfig}.tsv"
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-roi-gene --dumps {input.dumps:q} {params.common:q} --rois-table {input.rois:q} "
        "--top {output.top:q} --n-top {params.n_top:q} --output {output.pairs:q} > {log:q} 2>&1"


rule enrichment:
    """One-sided Fisher exact test of the stable genes against the panel's AD-GWAS genes (paper 2.2)."""
    input:
        genes=rules.bootstrap_genes.output.genes,
        gene_panel=config["genetics"]["gene_panel"],
    wildcard_constraints:
        **ATTR_WILDCARDS,
    output:
        table=f"{ATTRIBUTION}/{{model}}/{{dconfig}}/enrichment.tsv",
        markdown=report(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/enrichment.md", category="Interpretability",
                        subcategory="{model} ({dconfig})", caption="../report/attribution_enrichment.rst"),
    log:
        "results/logs/attribution/enrichment_{model}_{dconfig}.log",
    benchmark:
        "results/benchmarks/attribution/enrichment_{model}_{dconfig}.tsv"
    conda:
        conda_env("analysis")
    shell:
        "rgenima enrichment --genes {input.genes:q} --gene-panel {input.gene_panel:q} --output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


if config["synthetic"]["enabled"]:

    rule attribution_recovery:
        """Planted-truth recovery: causal genes, stage ROIs and ROI-gene pairs found again (synthetic cohort)."""
        input:
            truth=str(Path(config["synthetic"]["out_dir"]) / "truth.json"),
            genes=rules.bootstrap_genes.output.genes,
            rois=rules.bootstrap_rois.output.rois,
            pairs=rules.bootstrap_roi_gene.output.pairs,
            dumps=attribution_dumps,
        wildcard_constraints:
            **ATTR_WILDCARDS,
        output:
            table=f"{ATTRIBUTION}/{{model}}/{{dconfig}}/recovery.tsv",
            markdown=report(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/recovery.md", category="Interpretability",
                            subcategory="{model} ({dconfig})", caption="../report/attribution_recovery.rst"),
        params:
            top_n=ATTR["top_pairs"],
        log:
            "results/logs/attribution/recovery_{model}_{dconfig}.log",
        benchmark:
            "results/benchmarks/attribution/recovery_{model}_{dconfig}.tsv"
        conda:
            conda_env("analysis")
        shell:
            "rgenima attribution-recovery --truth {input.truth:q} --genes {input.genes:q} --rois {input.rois:q} "
            "--pairs {input.pairs:q} --dumps {input.dumps:q} --top-n {params.top_n:q} --output {output.table:q} "
            "--markdown {output.markdown:q} > {log:q} 2>&1"
