# Evaluation (paper 4.5): Tables 1-5 from every model's predictions per fold.
# Helper functions (table1_predictions, evaluation_note): rules/common.smk.

TABLES = "results/tables"
TABLE_NAMES = ["table1", "table2", "table3", "table4", "table5"]

ALL_TARGETS += [f"{TABLES}/{name}.md" for name in TABLE_NAMES] + [f"{TABLES}/paper_vs_ours.md"]


rule evaluate:
    """Accuracy, macro-F1, per-class P/R/F1/specificity, balanced accuracy, AUC: mean ± sd over folds, bootstrap CI."""
    input:
        [path for *_, path in table1_predictions()],
    output:
        summary=report(f"{TABLES}/metrics_summary.tsv", category="Evaluation", caption="../report/tables.rst"),
        folds=f"{TABLES}/metrics_folds.tsv",
        tables=[
            report(f"{TABLES}/{name}.{ext}", category="Evaluation", subcategory="Tables 1-5",
                   caption="../report/tables.rst") if ext == "tsv" else f"{TABLES}/{name}.{ext}"
            for name in TABLE_NAMES
            for ext in ("tsv", "md")
        ],
        paper=f"{TABLES}/paper_vs_ours.md",
        confusion=report(directory(f"{TABLES}/confusion"), patterns=["{name}.png"], category="Evaluation",
                         subcategory="Confusion matrices", caption="../report/confusion.rst"),
    params:
        runs=[word for d, m, k, p in table1_predictions() for word in ("--prediction", d, m, k, p)],
        protocol=config["split"]["protocol"],
        note=evaluation_note(),
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["seed"],
        out_dir=lambda w, output: os.path.dirname(output.paper),
    log:
        "results/logs/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate.tsv"
    conda:
        conda_env("train")
    shell:
        "rgenima evaluate {params.runs:q} --protocol {params.protocol:q} --note {params.note:q} "
        "--n-bootstrap {params.n_bootstrap:q} --seed {params.seed:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
