# Splits and data sets (paper 4.4.2-4.4.3; DESIGN 5): subject-level folds made once, the gene_only /
# image_gene / mixture sample tables per fold, and the leakage audit of both protocols.

DS = config["datasets"]
SPLIT = config["split"]

ALL_TARGETS += [
    "results/splits/folds.tsv",
    *expand("results/datasets/{dconfig}/fold{k}/samples.tsv", dconfig=DS["configs"], k=FOLDS),
    "results/datasets/leakage_audit.tsv",
]


rule splits:
    """Subject-level folds stratified by stage (and modality availability), made once from the manifest."""
    input:
        manifest="results/cohort/manifest.tsv",
    output:
        folds="results/splits/folds.tsv",
        summary=report("results/splits/folds_summary.tsv", category="Splits", caption="../report/folds_summary.rst"),
    params:
        n_folds=SPLIT["n_folds"],
        seed=config["seed"],
    log:
        "results/logs/data/splits.log",
    benchmark:
        "results/benchmarks/data/splits.tsv"
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
        samples=expand("results/datasets/{{dconfig}}/fold{k}/samples.tsv", k=FOLDS),
        meta=expand("results/datasets/{{dconfig}}/fold{k}/meta.json", k=FOLDS),
    wildcard_constraints:
        dconfig="gene_only|image_gene|mixture",
    params:
        out_dir=lambda w, output: os.path.dirname(os.path.dirname(output.samples[0])),
        protocol=SPLIT["protocol"],
        n_permutations=DS["n_permutations"],
        paired_fraction=DS["mixture_paired_fraction"],
        seed=config["seed"],
    log:
        "results/logs/data/datasets_{dconfig}.log",
    benchmark:
        "results/benchmarks/data/datasets_{dconfig}.tsv"
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
        samples=expand("results/datasets/{dconfig}/fold{k}/samples.tsv", dconfig=DS["configs"], k=FOLDS),
    output:
        table=report("results/datasets/leakage_audit.tsv", category="Splits", caption="../report/leakage_audit.rst"),
        markdown="results/datasets/leakage_audit.md",
    params:
        # results/datasets: two levels above each {dconfig}/fold<k>/samples.tsv.
        datasets_dir=lambda w, input: os.path.dirname(os.path.dirname(os.path.dirname(input.samples[0]))),
        configs=DS["configs"],
        protocol=SPLIT["protocol"],
        n_permutations=DS["n_permutations"],
        paired_fraction=DS["mixture_paired_fraction"],
        seed=config["seed"],
    log:
        "results/logs/data/leakage_audit.log",
    benchmark:
        "results/benchmarks/data/leakage_audit.tsv"
    conda:
        conda_env("genetics")
    shell:
        "rgenima leakage-audit --folds {input.folds:q} --datasets-dir {params.datasets_dir:q} "
        "--configs {params.configs:q} --protocol {params.protocol:q} --n-permutations {params.n_permutations:q} "
        "--paired-fraction {params.paired_fraction:q} --seed {params.seed:q} --output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"
