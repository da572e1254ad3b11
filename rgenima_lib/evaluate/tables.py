"""Tables 1–5 of the paper from prediction tables, as TSV and Markdown; confusion-matrix PNGs.

Input: one predictions TSV per (data configuration, model, protocol, fold), in the shared
format ``subject, stage, predicted, prob_NC, prob_SMC, prob_MCI, prob_AD`` (LLM rows add
``generated_text, generated_label``, '' when unparseable). Output, one row per (data
configuration, model, protocol, decoding) in the paper's row order (paper 2.1):

- ``table1``: accuracy and macro-F1 (+ balanced accuracy, macro AUC, unparsed rate);
- ``table2`` … ``table5``: precision, recall, F1, specificity of NC, SMC, MCI, AD;
- ``metrics_folds.tsv``: every metric per fold; ``metrics_summary.tsv``: every metric as
  pooled value, mean and sd over folds, and bootstrap 95% CI;
- ``paper_vs_ours.md``: the paper's Table 1 next to ours;
- ``confusion/<config>__<model>__<protocol>.png``: pooled over folds.

Cells read "mean ± sd over folds" in percent. Rows from the paper's leaky protocol (augment,
then split samples: docs/design.md, "Subject-level splits") carry "§" and ``protocol = paper``. LLM rows are
reported twice when generations exist: constrained scoring (``scored``) and the paper's
greedy generation parsed strictly (``generated``; unparseable answers count as wrong).

Departure: the paper reports one test split without uncertainty; we report K subject-level
folds with sd and a bootstrap CI, so single numbers are not directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.evaluate.metrics import (bootstrap_ci, classification_metrics, confusion_counts, label_indices,
                                          summarize_folds)
from rgenima_lib.io import atomic_output, read_tsv, save_figure, write_tsv
from rgenima_lib.model_ids import canonical_model, llm_model_parts
from rgenima_lib.vocabulary import STAGES

PROB_COLUMNS = tuple(f"prob_{s}" for s in STAGES)
REQUIRED_COLUMNS = ("subject", "stage", "predicted", *PROB_COLUMNS)

SECTIONS: dict[str, str] = {
    "gene_only": "SNPs-only",
    "image_gene": "Image-Gene",
    "mixture": "Mixture Dataset",
    "image_only": "Image-only (stage-1 encoders; not in the paper)",
}
"""Data configurations in the paper's order, with the paper's section titles."""

BACKBONES: dict[str, str] = {"llama": "Llama", "qwen": "Qwen", "demo": "demo LLM (random init)"}
"""LLM backbones in table order, with display names."""

# Fixed model IDs in the order of the paper's rows within a section; LLM IDs (rgenima_lib.model_ids)
# sort by family, then backbone.
_FIXED = {
    "mlp": (0, "MLP"), "bert": (1, "BERT"),
    "bert_med3d_concat": (3, "BERT+Med3D†"), "bert_med3d_cross": (4, "BERT+Med3D‡"),
    "bert_rit_concat": (5, "BERT+RiT†"), "bert_rit_cross": (6, "BERT+RiT‡"),
    "rit": (9, "RiT (stage-1 classifier)"), "med3d": (10, "Med3D (stage-1 classifier)"),
}

# The paper's Tables 1-5 (percent), rows in its order: (config, model) -> values.
_PAPER_ROWS = """\
gene_only mlp 38.82 26.44 | 29.90 25.22 27.38 76.71 | 7.69 11.76 9.30 93.84 | 57.21 53.12 55.09 51.36 | 10.53 15.69 12.60 80.89
gene_only bert 67.08 43.36 | 53.33 76.52 62.86 73.63 | 100 5.88 11.11 100 | 79.37 79.02 79.19 74.86 | 38.89 13.73 20.29 96.91
gene_only llama 81.08 65.93 | 84.50 86.51 85.49 92.88 | 13.64 50.00 21.43 95.26 | 89.34 81.11 85.02 88.95 | 71.19 72.41 71.79 95.13
gene_only qwen 80.84 66.14 | 86.89 84.13 85.48 94.31 | 14.81 66.67 24.24 94.23 | 89.50 82.49 85.85 88.95 | 68.97 68.97 68.97 94.84
image_gene bert_med3d_concat 94.59 87.16 | 96.83 96.83 96.83 98.58 | 66.67 66.67 66.67 99.50 | 93.75 96.77 95.24 92.63 | 96.08 84.48 89.91 99.43
image_gene bert_med3d_cross 90.42 82.45 | 91.41 92.86 92.13 96.09 | 57.14 66.67 61.54 99.25 | 92.13 91.71 91.92 91.05 | 85.71 82.76 84.21 97.71
image_gene bert_rit_concat 95.09 89.97 | 95.35 97.62 96.47 97.86 | 71.43 83.33 76.92 99.50 | 96.73 95.39 96.06 96.32 | 91.23 89.66 90.43 98.57
image_gene bert_rit_cross 92.87 85.67 | 94.49 95.24 94.86 97.51 | 66.67 66.67 66.67 99.50 | 94.42 93.55 93.98 93.68 | 86.44 87.93 87.18 97.71
image_gene llama_med3d 93.36 85.71 | 94.74 93.91 94.32 97.94 | 100 47.06 64.00 99.99 | 93.19 97.77 95.42 91.25 | 90.00 88.24 89.11 98.59
image_gene qwen_med3d 93.61 85.87 | 94.74 93.91 94.32 97.94 | 100 47.06 64.00 99.99 | 93.99 97.77 95.84 92.34 | 88.46 90.20 89.32 98.31
image_gene rgenima_llama 95.09 90.37 | 96.75 94.44 95.58 98.85 | 71.43 83.33 76.92 99.50 | 95.43 96.31 95.87 94.74 | 93.10 93.10 93.10 98.85
image_gene rgenima_qwen 95.58 90.42 | 96.85 97.62 97.23 98.58 | 71.43 83.33 76.92 99.50 | 96.31 96.31 96.31 95.79 | 92.86 89.66 91.23 98.85
mixture llama_med3d 97.54 92.20 | 96.64 100 98.29 98.63 | 100 58.82 74.07 99.99 | 97.38 99.55 98.45 96.72 | 100 96.08 98.00 99.99
mixture qwen_med3d 96.80 90.23 | 99.13 99.13 99.13 99.65 | 90.91 58.82 71.43 99.74 | 96.96 95.55 98.24 96.17 | 92.16 92.16 92.16 98.87
mixture rgenima_llama 98.03 97.90 | 96.58 98.26 97.41 98.63 | 100 94.12 96.97 99.99 | 98.65 97.77 98.21 98.36 | 98.08 100 99.03 99.71
mixture rgenima_qwen 99.01 98.50 | 98.28 99.13 98.70 99.31 | 100 94.12 96.97 99.99 | 99.55 99.11 99.33 99.45 | 98.08 100 99.03 99.71
"""


def _parse_paper() -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for line in _PAPER_ROWS.strip().splitlines():
        head, *classes = line.split(" | ")
        config, model, acc, f1 = head.split()
        row = {"accuracy": float(acc), "macro_f1": float(f1)}
        for stage, values in zip(STAGES, classes):
            for key, v in zip(("precision", "recall", "f1", "specificity"), values.split()):
                row[f"{key}_{stage}"] = float(v)
        out[(config, model)] = row
    return out


PAPER: dict[tuple[str, str], dict[str, float]] = _parse_paper()
"""Paper Tables 1–5 in percent: (configuration, model ID) -> metric key -> value."""


def model_label(model: str) -> str:
    """Display name of a model ID (the paper's, where it has one)."""
    if model in _FIXED:
        return _FIXED[model][1]
    family, backbone = _llm_parts(model)
    name = BACKBONES.get(backbone, backbone)
    return {"llm": name, "llm_med3d": f"{name}+Med3D", "rgenima": f"R-GenIMA ({name})"}.get(family, model)


def _llm_parts(model: str) -> tuple[str, str]:
    """(table family, backbone) of an LLM model ID."""
    backbone, variant = llm_model_parts(model)
    return {"snp": "llm", "med3d": "llm_med3d", "rit": "rgenima"}[variant], backbone


def row_sort_key(config: str, model: str, protocol: str = "subject", decoding: str = "scored") -> tuple:
    """Sort key giving the paper's row order: section, model family, backbone, protocol, decoding."""
    section = list(SECTIONS).index(config) if config in SECTIONS else len(SECTIONS)
    if model in _FIXED:
        family, backbone = _FIXED[model][0], 0
    else:
        fam, bb = _llm_parts(model)
        family = {"llm": 2, "llm_med3d": 7, "rgenima": 8}[fam]
        backbone = list(BACKBONES).index(bb) if bb in BACKBONES else len(BACKBONES)
    return (section, config, family, backbone, model, protocol != "subject", protocol, decoding != "scored")


@dataclass
class Run:
    """One predictions table: which configuration, model, protocol and fold it belongs to."""

    config: str
    model: str
    protocol: str
    fold: int
    predictions: pd.DataFrame
    path: str = ""


def predictions_frame(subjects, stages, prob: np.ndarray) -> pd.DataFrame:
    """The shared predictions format from class probabilities.

    Parameters
    ----------
    subjects : sequence of str, length n
    stages : sequence of str, length n
        True stages.
    prob : float[n, 4]
        Class probabilities in ``STAGES`` order.

    Returns
    -------
    DataFrame: subject, stage, predicted (argmax), prob_NC, prob_SMC, prob_MCI, prob_AD.
    """
    prob = np.asarray(prob, dtype=float)
    table = pd.DataFrame({"subject": list(subjects), "stage": list(stages),
                          "predicted": [STAGES[i] for i in prob.argmax(1)] if len(prob) else []})
    for i, col in enumerate(PROB_COLUMNS):
        table[col] = np.round(prob[:, i], 6) if len(prob) else []
    return table


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read and check one predictions TSV.

    Raises
    ------
    InputDataError
        Missing columns, unknown true stage, duplicate subjects, or probabilities that are
        negative or do not sum to 1 (± 1e-3).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("predictions file not found.", path=path, fix="run the model's predict rule first.")
    table = read_tsv(path, dtype={"subject": str, "stage": str, "predicted": str, "generated_label": str,
                                  "generated_text": str}, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputDataError(f"missing column(s) {', '.join(missing)}.", path=path,
                             fix=f"write the shared format: {', '.join(REQUIRED_COLUMNS)}.")
    bad = sorted(set(table["stage"]) - set(STAGES))
    if bad:
        raise InputDataError(f"unknown true stage(s) {bad}.", path=path,
                             subject=str(table.loc[table['stage'].isin(bad), 'subject'].iloc[0]),
                             fix=f"stages must be one of {', '.join(STAGES)}.")
    dup = table["subject"][table["subject"].duplicated()]
    if len(dup):
        raise InputDataError("a subject appears twice in one fold's predictions.", path=path, subject=str(dup.iloc[0]),
                             fix="write one row per test subject.")
    prob = table[list(PROB_COLUMNS)].to_numpy(float)
    if (prob < 0).any() or (np.abs(prob.sum(1) - 1) > 1e-3).any() or not np.isfinite(prob).all():
        raise InputDataError("class probabilities must be finite, non-negative and sum to 1 per row.", path=path,
                             fix="write softmax probabilities in prob_NC..prob_AD.")
    return table


def _decodings(table: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {"scored": label_indices(table["predicted"])}
    if "generated_label" in table.columns:
        out["generated"] = label_indices(table["generated_label"])
    return out


def evaluate_runs(runs: list[Run], n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics per fold and their summary per table row.

    Parameters
    ----------
    runs : list of Run
    n_boot : int
        Bootstrap replicates for the CI over the pooled out-of-fold predictions.
    seed : int

    Returns
    -------
    folds : DataFrame
        One row per (config, model, protocol, decoding, fold): every metric (fractions).
    summary : DataFrame
        One row per (config, model, protocol, decoding), in the paper's order:
        ``n_folds``, ``n_subjects``, and for each metric ``<m>`` (pooled), ``<m>_mean``,
        ``<m>_sd``, ``<m>_ci_low``, ``<m>_ci_high``.
    """
    fold_rows, groups = [], {}
    for run in runs:
        y_true = label_indices(run.predictions["stage"])
        prob = run.predictions[list(PROB_COLUMNS)].to_numpy(float)
        for decoding, y_pred in _decodings(run.predictions).items():
            m = classification_metrics(y_true, y_pred, prob)
            fold_rows.append({"config": run.config, "model": run.model, "protocol": run.protocol,
                              "decoding": decoding, "fold": run.fold, **m})
            g = groups.setdefault((run.config, run.model, run.protocol, decoding), {"true": [], "pred": [], "prob": [], "folds": []})
            g["true"].append(y_true)
            g["pred"].append(y_pred)
            g["prob"].append(prob)
            g["folds"].append(m)
    folds = pd.DataFrame(fold_rows)
    summary_rows = []
    for key in sorted(groups, key=lambda k: row_sort_key(*k)):
        g = groups[key]
        y_true, y_pred, prob = np.concatenate(g["true"]), np.concatenate(g["pred"]), np.concatenate(g["prob"])
        pooled = classification_metrics(y_true, y_pred, prob)
        spread = summarize_folds(g["folds"])
        ci = bootstrap_ci(y_true, y_pred, prob, n_boot=n_boot, seed=seed)
        row = dict(zip(("config", "model", "protocol", "decoding"), key))
        row.update({"section": SECTIONS.get(key[0], key[0]), "method": model_label(key[1]),
                    "leaky": key[2] == "paper", "n_folds": len(g["folds"]), "n_subjects": int(y_true.size)})
        for metric, value in pooled.items():
            if metric == "n":
                continue
            row[metric] = value
            row[f"{metric}_mean"], row[f"{metric}_sd"], _ = spread[metric]
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = ci.get(metric, (np.nan, np.nan))
        summary_rows.append(row)
    return folds, pd.DataFrame(summary_rows)


# --------------------------------------------------------------------------- formatting

def _pct(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{100 * v:.2f}"


def _cell(row: pd.Series, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    if not np.isfinite(mean):
        return "–"
    return _pct(mean) if not np.isfinite(sd) else f"{_pct(mean)} ± {_pct(sd)}"


def _method(row: pd.Series) -> str:
    text = row["method"] + (" §" if row["leaky"] else "")
    return text + (" [generated]" if row["decoding"] == "generated" else "")


TABLE_SPECS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "table1": ("Table 1: overall classification (accuracy, macro-F1)",
               [("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("balanced_accuracy", "Balanced acc."),
                ("auc_macro", "AUC (OvR)")]),
    **{f"table{i + 2}": (f"Table {i + 2}: {stage} classification (precision, recall, F1, specificity)",
                         [(f"precision_{stage}", "P"), (f"recall_{stage}", "R"), (f"f1_{stage}", "F1"),
                          (f"specificity_{stage}", "Specificity")])
       for i, stage in enumerate(STAGES)},
}


def format_table(summary: pd.DataFrame, name: str) -> tuple[pd.DataFrame, str]:
    """One paper table as a machine-readable frame and as Markdown.

    Parameters
    ----------
    summary : DataFrame
        From :func:`evaluate_runs`.
    name : {"table1", ..., "table5"}

    Returns
    -------
    tsv : DataFrame
        section, method, config, model, protocol, leaky, decoding, n_folds, n_subjects, and per
        metric: mean, sd, pooled, ci_low, ci_high (fractions), plus the paper's value (percent)
        when it reports this row.
    markdown : str
        Sections as bold rows; cells "mean ± sd" in percent; CI of the first metric.
    """
    title, metrics = TABLE_SPECS[name]
    keep = ["section", "method", "config", "model", "protocol", "leaky", "decoding", "n_folds", "n_subjects"]
    tsv = summary[keep].copy()
    for m, _ in metrics:
        for suffix in ("_mean", "_sd", "", "_ci_low", "_ci_high"):
            tsv[m + suffix] = summary[m + suffix]
        tsv[f"paper_{m}"] = [PAPER.get((c, canonical_model(mo)), {}).get(m, np.nan)
                             for c, mo in zip(summary["config"], summary["model"])]
    first = metrics[0][0]
    header = ["Method", *[label for _, label in metrics], f"95% CI ({metrics[0][1]})", "folds", "n"]
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    section = None
    for _, row in summary.iterrows():
        if row["section"] != section:
            section = row["section"]
            lines.append(f"| **{section}** |" + " |" * (len(header) - 1))
        ci = f"[{_pct(row[first + '_ci_low'])}, {_pct(row[first + '_ci_high'])}]"
        cells = [_method(row), *[_cell(row, m) for m, _ in metrics], ci, str(row["n_folds"]), str(row["n_subjects"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± sd over subject-level folds, in percent; 95% CI: percentile bootstrap (subjects) of the "
              "pooled out-of-fold predictions. † concatenation fusion, ‡ cross-modal attention fusion "
              "(paper 4.5.1)."]
    if summary["leaky"].any():
        lines.append("§ leaky: the paper's protocol (augment, then split samples), so test subjects also appear "
                     "in training; shown only to compare with the honest subject-level split.")
    if (summary["decoding"] == "generated").any():
        lines.append("[generated]: the paper's greedy generation parsed strictly (unparseable = wrong); "
                     "other LLM rows use constrained scoring of the four answers.")
    return tsv, "\n".join(lines) + "\n"


def paper_vs_ours(summary: pd.DataFrame, note: str) -> str:
    """Markdown: the paper's Table 1 rows next to ours (subject-level protocol, scored decoding)."""
    ours = summary[(summary["protocol"] == "subject") & (summary["decoding"] == "scored")]
    ours = {(r.config, canonical_model(r.model)): r for r in ours.itertuples()}
    keys = sorted(set(PAPER) | set(ours), key=lambda k: row_sort_key(*k))
    lines = [f"| Configuration | Method | Paper accuracy | Paper macro-F1 | Ours accuracy ({note}) | Ours macro-F1 ({note}) |",
             "|---|---|---|---|---|---|"]
    for key in keys:
        paper = PAPER.get(key, {})
        r = ours.get(key)
        acc = "–" if r is None else (f"{_pct(r.accuracy_mean)} ± {_pct(r.accuracy_sd)}" if np.isfinite(r.accuracy_sd)
                                     else _pct(r.accuracy_mean))
        f1 = "–" if r is None else (f"{_pct(r.macro_f1_mean)} ± {_pct(r.macro_f1_sd)}" if np.isfinite(r.macro_f1_sd)
                                    else _pct(r.macro_f1_mean))
        p_acc, p_f1 = (f"{paper[k]:.2f}" if k in paper else "–" for k in ("accuracy", "macro_f1"))
        lines.append(f"| {SECTIONS.get(key[0], key[0])} | {model_label(key[1])} | {p_acc} | {p_f1} | {acc} | {f1} |")
    return "\n".join(lines) + "\n"


def plot_confusion(counts: np.ndarray, path: str | Path, title: str) -> None:
    """Confusion-matrix PNG: counts in cells, colour = row-normalised (recall) share.

    Parameters
    ----------
    counts : int[K, K + 1]
        :func:`rgenima_lib.evaluate.metrics.confusion_counts`; the unparseable column is drawn
        only when it is non-zero.
    path : str or Path
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = counts.shape[0]
    cols = list(STAGES) + (["unparsed"] if counts[:, k:].sum() else [])
    counts = counts[:, :len(cols)]
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 4.0))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(len(cols)):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(k), STAGES)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_tables(runs: list[Run], out_dir: str | Path, note: str = "", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Evaluate ``runs`` and write every table and figure under ``out_dir``.

    Parameters
    ----------
    runs : list of Run
    out_dir : str or Path
    note : str
        Shown in every Markdown table's heading, e.g. "synthetic demo cohort; demo LLM, random init".
    n_boot, seed : int
        Bootstrap CI settings.

    Returns
    -------
    DataFrame
        The summary (one row per table row).
    """
    out_dir = Path(out_dir)
    if not runs:
        raise InputDataError("no predictions to evaluate.", fix="list at least one predictions file.")
    folds, summary = evaluate_runs(runs, n_boot=n_boot, seed=seed)
    write_tsv(folds, out_dir / "metrics_folds.tsv")
    write_tsv(summary, out_dir / "metrics_summary.tsv")
    for name in TABLE_SPECS:
        tsv, md = format_table(summary, name)
        write_tsv(tsv, out_dir / f"{name}.tsv")
        with atomic_output(out_dir / f"{name}.md") as tmp:
            tmp.write_text((f"_{note}_\n\n" if note else "") + md)
    with atomic_output(out_dir / "paper_vs_ours.md") as tmp:
        tmp.write_text(paper_vs_ours(summary, note or "ours"))
    for (config, model, protocol), group in _by_row(runs).items():
        y_true = np.concatenate([label_indices(r.predictions["stage"]) for r in group])
        y_pred = np.concatenate([label_indices(r.predictions["predicted"]) for r in group])
        title = f"{model_label(model)} | {SECTIONS.get(config, config)} | protocol {protocol}" + \
            (" (leaky)" if protocol == "paper" else "") + f" | {len(group)} folds pooled" + (f"\n{note}" if note else "")
        plot_confusion(confusion_counts(y_true, y_pred), out_dir / "confusion" / f"{config}__{model}__{protocol}.png", title)
    return summary


def _by_row(runs: list[Run]) -> dict[tuple[str, str, str], list[Run]]:
    out: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.config, r.model, r.protocol), []).append(r)
    return out
