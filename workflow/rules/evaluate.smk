# Evaluation (paper 4.5): Tables 1-5 from every model's predictions per fold.

TABLES = "results/tables"
TABLE_NAMES = ["table1", "table2", "table3", "table4", "table5"]


def table1_predictions():
    """(data configuration, model ID, fold, path) of every prediction table that feeds Tables 1-5."""
    runs = [("image_only", e, k, f"results/encoders/{e}/fold{k}/predictions.tsv") for e in ENCODER_INDEX for k in FOLDS]
    runs += [(d, m, k, f"results/baselines/{m}/{d}/fold{k}/predictions.tsv") for m, d in BASELINE_RUNS for k in FOLDS]
    runs += [(d, m, k, f"{LLM_DIR}/{m}/{d}/fold{k}/predictions.tsv") for m, d in LLM_RUNS for k in FOLDS]
    return runs


def evaluation_note():
    parts = []
    if config["synthetic"]["enabled"]:
        parts.append("synthetic cohort (planted truth), not ADNI")
    if LLM["demo"]["enabled"] and not all(b.get("model_path") for b in LLM["backbones"].values()):
        parts.append("LLM rows: demo model, random init")
    return "; ".join(parts)


ALL_TARGETS += [f"{TABLES}/{name}.md" for name in TABLE_NAMES] + [f"{TABLES}/paper_vs_ours.md"]


rule evaluate:
    """Accuracy, macro-F1, per-class P/R/F1/specificity, balanced accuracy, AUC: mean ± sd over folds, bootstrap CI."""
    input:
        [path for *_, path in table1_predictions()],
    output:
        summary=report(f"{TABLES}/metrics_summary.tsv", category="Evaluation", caption="../report/tables.rst"),
        folds=f"{TABLES}/metrics_folds.tsv",
        tables=[f"{TABLES}/{name}.{ext}" for name in TABLE_NAMES for ext in ("tsv", "md")],
        paper=f"{TABLES}/paper_vs_ours.md",
        confusion=directory(f"{TABLES}/confusion"),
    params:
        runs=" ".join(f"--prediction {d} {m} {k} {p}" for d, m, k, p in table1_predictions()),
        protocol=config["split"]["protocol"],
        note=evaluation_note(),
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["seed"],
    log:
        "results/logs/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate.tsv"
    conda:
        conda_env("train")
    shell:
        "rgenima evaluate {params.runs} --protocol {params.protocol} --note {params.note:q} "
        "--n-bootstrap {params.n_bootstrap} --seed {params.seed} --out-dir {TABLES} > {log} 2>&1"
