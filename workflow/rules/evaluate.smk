# Evaluation (paper 4.5): Tables 1-5 from every model's predictions per fold.
# Helpers (table1_predictions, evaluation_note): rules/common.smk.


rule evaluate:
    """Accuracy, macro-F1, per-class P/R/F1/specificity, balanced accuracy, AUC: mean ± sd over folds, bootstrap CI."""
    input:
        [path for *_, path in table1_predictions()],
    output:
        summary=report(R("metrics_summary"), category="Evaluation", caption="../report/tables.rst"),
        folds=R("metrics_folds"),
        tables=[
            report(R("table", name=name, ext=ext), category="Evaluation", subcategory="Tables 1-5",
                   caption="../report/tables.rst") if ext == "tsv" else R("table", name=name, ext=ext)
            for name in TABLE_NAMES
            for ext in ("tsv", "md")
        ],
        paper=R("paper_vs_ours"),
        confusion=report(directory(R("confusion_dir")), patterns=["{name}.png"], category="Evaluation",
                         subcategory="Confusion matrices", caption="../report/confusion.rst"),
    params:
        runs=[word for d, m, k, p in table1_predictions() for word in ("--prediction", d, m, k, p)],
        protocol=SPLIT["protocol"],
        note=evaluation_note(),
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["seed"],
        out_dir=lambda w, output: str(Path(output.paper).parent),
    log:
        log_path("", "evaluate"),
    benchmark:
        benchmark_path("", "evaluate")
    conda:
        conda_env("train")
    shell:
        "rgenima evaluate {params.runs:q} --protocol {params.protocol:q} --note {params.note:q} "
        "--n-bootstrap {params.n_bootstrap:q} --seed {params.seed:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
