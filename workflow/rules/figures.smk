# Figures 1-2 of the paper (2.3-2.4), one PNG + PDF each per attributed model. They read only the bootstrap
# tables derived from the attention dumps, so they are redrawn without any model:
#   snakemake figures --forcerun figure_1 figure_2
# reruns the figure jobs and nothing upstream. On a machine that holds only the dumps (copied from the
# cluster), add --allowed-rules bootstrap_rois bootstrap_roi_gene figure_1 figure_2 figures so that missing or
# stale upstream files (checkpoints, embeddings) are not asked for.
# Helper (figure_caption, ATTR_MODELS): rules/common.smk.


localrules:
    figures,


rule figures:
    """Figures 1 and 2 of every attributed model (a target: `snakemake figures`)."""
    input:
        [R("figure", model=m, dconfig=ATTR_DCONFIG, n=n, ext=ext) for m in ATTR_MODELS for n in (1, 2)
         for ext in ("png", "pdf")],


rule figure_1:
    """Figure 1: bootstrap-stable ROIs of SMC, MCI and AD on the MNI152 glass brain, shared vs stage-specific."""
    input:
        rois=R("stable_rois"),
        roi_table=IMG["rois_table"],
    output:
        png=report(R("figure", n=1, ext="png"), category="Interpretability", subcategory="Figures",
                   caption="../report/figure_1.rst"),
        pdf=R("figure", n=1, ext="pdf"),
    params:
        volume=ATTR["figure1_volume"],
        caption=figure_caption(),
    log:
        log_path("figures", "figure_1_{model}_{dconfig}"),
    benchmark:
        benchmark_path("figures", "figure_1_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima figure-1 --rois {input.rois:q} --roi-table {input.roi_table:q} --volume {params.volume:q} "
        "--model {wildcards.model:q} --caption {params.caption:q} --png {output.png:q} --pdf {output.pdf:q} "
        "> {log:q} 2>&1"


rule figure_2:
    """Figure 2: Manhattan-style ROI-gene stability per stage, stable ROIs only, top 2 genes per ROI annotated."""
    input:
        pairs=R("roi_gene"),
        rois=R("stable_rois"),
        roi_table=IMG["rois_table"],
    output:
        png=report(R("figure", n=2, ext="png"), category="Interpretability", subcategory="Figures",
                   caption="../report/figure_2.rst"),
        pdf=R("figure", n=2, ext="pdf"),
    log:
        log_path("figures", "figure_2_{model}_{dconfig}"),
    benchmark:
        benchmark_path("figures", "figure_2_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima figure-2 --pairs {input.pairs:q} --rois {input.rois:q} --roi-table {input.roi_table:q} "
        "--model {wildcards.model:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
