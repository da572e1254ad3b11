# Figures 1-2 of the paper (2.3-2.4), one PNG + PDF each per attributed model. They read only the bootstrap
# tables derived from the attention dumps, so they are redrawn without any model:
#   snakemake figure_1 figure_2 --forcerun figure_1 figure_2
# reruns the two figure jobs and nothing upstream. On a machine that holds only the dumps (copied from the
# cluster), add --allowed-rules bootstrap_rois bootstrap_roi_gene figure_1 figure_2 so that missing or stale
# upstream files (checkpoints, embeddings) are not asked for.
# Helper function (figure_caption): rules/common.smk.

FIGURES = "results/figures"


if ATTR_READY:  # see attribution.smk
    ALL_TARGETS += expand(f"{FIGURES}/{{model}}/{ATTR_DCONFIG}/figure{{n}}.{{ext}}", model=ATTR_MODELS, n=[1, 2],
                          ext=["png", "pdf"])


rule figure_1:
    """Figure 1: bootstrap-stable ROIs of SMC, MCI and AD on the MNI152 glass brain, shared vs stage-specific."""
    input:
        rois=expand(f"{ATTRIBUTION}/{{model}}/{ATTR_DCONFIG}/rois.tsv", model=ATTR_MODELS),
        roi_table=config["imaging"]["rois_table"],
    output:
        png=[report(p, category="Interpretability", subcategory="Figures", caption="../report/figure_1.rst")
             for p in expand(f"{FIGURES}/{{model}}/{ATTR_DCONFIG}/figure1.png", model=ATTR_MODELS)],
        pdf=expand(f"{FIGURES}/{{model}}/{ATTR_DCONFIG}/figure1.pdf", model=ATTR_MODELS),
    params:
        models=ATTR_MODELS,
        volume=ATTR["figure1_volume"],
        caption=figure_caption(),
    log:
        "results/logs/figures/figure_1.log",
    benchmark:
        "results/benchmarks/figures/figure_1.tsv"
    conda:
        conda_env("analysis")
    shell:
        "rgenima figure-1 --rois {input.rois:q} --roi-table {input.roi_table:q} --volume {params.volume:q} "
        "--model {params.models:q} --caption {params.caption:q} --png {output.png:q} --pdf {output.pdf:q} "
        "> {log:q} 2>&1"


rule figure_2:
    """Figure 2: Manhattan-style ROI-gene stability per stage, stable ROIs only, top 2 genes per ROI annotated."""
    input:
        pairs=expand(f"{ATTRIBUTION}/{{model}}/{ATTR_DCONFIG}/roi_gene.tsv", model=ATTR_MODELS),
        rois=expand(f"{ATTRIBUTION}/{{model}}/{ATTR_DCONFIG}/rois.tsv", model=ATTR_MODELS),
        roi_table=config["imaging"]["rois_table"],
    output:
        png=[report(p, category="Interpretability", subcategory="Figures", caption="../report/figure_2.rst")
             for p in expand(f"{FIGURES}/{{model}}/{ATTR_DCONFIG}/figure2.png", model=ATTR_MODELS)],
        pdf=expand(f"{FIGURES}/{{model}}/{ATTR_DCONFIG}/figure2.pdf", model=ATTR_MODELS),
    params:
        models=ATTR_MODELS,
    log:
        "results/logs/figures/figure_2.log",
    benchmark:
        "results/benchmarks/figures/figure_2.tsv"
    conda:
        conda_env("analysis")
    shell:
        "rgenima figure-2 --pairs {input.pairs:q} --rois {input.rois:q} --roi-table {input.roi_table:q} "
        "--model {params.models:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
