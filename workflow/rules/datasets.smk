# Splits and data sets (paper 4.4.2-4.4.3; docs/design.md, "Subject-level splits"): subject-level folds made once, the gene_only /
# image_gene / mixture sample tables per fold, and the leakage audit of both protocols.


rule splits:
    """Subject-level folds stratified by stage (and modality availability), made once from the manifest."""
    input:
        manifest=R("manifest"),
    output:
        folds=R("folds"),
        summary=report(R("folds_summary"), category="Splits", caption="../report/folds_summary.rst"),
    params:
        n_folds=SPLIT["n_folds"],
        seed=config["seed"],
    log:
        log_path("data", "splits"),
    benchmark:
        benchmark_path("data", "splits")
    conda:
        conda_env("genetics")
    shell:
        "rgenima splits --manifest {input.manifest:q} --n-folds {params.n_folds:q} --seed {params.seed:q} "
        "--output {output.folds:q} --summary {output.summary:q} > {log:q} 2>&1"


rule datasets:
    """Sample tables of one data configuration (paper 4.4.3) for every fold; augmentation on the train side."""
    input:
        folds=rules.splits.output.folds,
    output:
        samples=[R("samples", k=k) for k in FOLDS],
        meta=[R("samples_meta", k=k) for k in FOLDS],
    params:
        # results/datasets: the folder above every {dconfig}/fold<k>/.
        out_dir=lambda w, output: str(Path(output.samples[0]).parents[1]),
        protocol=SPLIT["protocol"],
        n_permutations=DS["n_permutations"],
        paired_fraction=DS["mixture_paired_fraction"],
        seed=config["seed"],
    log:
        log_path("data", "datasets_{dconfig}"),
    benchmark:
        benchmark_path("data", "datasets_{dconfig}")
    conda:
        conda_env("genetics")
    shell:
        "rgenima build-datasets --folds {input.folds:q} --config {wildcards.dconfig:q} --protocol {params.protocol:q} "
        "--n-permutations {params.n_permutations:q} --paired-fraction {params.paired_fraction:q} "
        "--seed {params.seed:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule leakage_audit:
    """Subjects on both sides of every split, for the protocol in use and the other one side by side."""
    input:
        folds=rules.splits.output.folds,
        samples=[R("samples", dconfig=d, k=k) for d in DS["configs"] for k in FOLDS],
    output:
        table=report(R("leakage_audit"), category="Splits", caption="../report/leakage_audit.rst"),
        markdown=R("leakage_audit_md"),
    params:
        # results/datasets: two levels above each {dconfig}/fold<k>/samples.tsv.
        datasets_dir=lambda w, input: str(Path(input.samples[0]).parents[2]),
        configs=DS["configs"],
        protocol=SPLIT["protocol"],
        n_permutations=DS["n_permutations"],
        paired_fraction=DS["mixture_paired_fraction"],
        seed=config["seed"],
    log:
        log_path("data", "leakage_audit"),
    benchmark:
        benchmark_path("data", "leakage_audit")
    conda:
        conda_env("genetics")
    shell:
        "rgenima leakage-audit --folds {input.folds:q} --datasets-dir {params.datasets_dir:q} "
        "--configs {params.configs:q} --protocol {params.protocol:q} --n-permutations {params.n_permutations:q} "
        "--paired-fraction {params.paired_fraction:q} --seed {params.seed:q} --output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"
