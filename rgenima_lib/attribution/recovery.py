"""Planted-truth recovery on the synthetic cohort (issue 7 "Show"): is the planted signal found again?

Against ``results/synthetic/truth.json`` (:mod:`rgenima_lib.synthetic.truth`):

- **causal genes** (liability genes) among the stable genes (paper 2.2 procedure);
- **stage ROIs** (planted atrophy per stage) among the stable ROIs of that stage (2.3);
- **ROI–gene pairs** (a gene's genotype driving a ROI's atrophy, in the listed
  stages) among the stage's ``top_n`` most stable pairs (4.3).

Each row gives precision and recall, and, to tell *where* a signal is lost,
the mean rank of the planted items by the observed (pre-bootstrap) score
beside the rank a random ordering would give: planted items ranked like
random items mean the model or the rollout carries no signal; ranked high but
not selected means the bootstrap threshold drops them. The model's test
accuracy sits in the same file (``model_accuracy``): at chance level the
model itself has learnt nothing to attribute.

Selections (column ``selection``): ``top_k`` is the paper's fixed rule, whose
``precision_cap`` = planted / k is the best precision it can reach whatever
the model has learnt (9 planted of 45 genes: 0.20); ``significance`` and
``stability`` (:mod:`rgenima_lib.attribution.selection`) choose their size
from the data (cap 1); ``association`` is the within-stage genotype–volume
test of the pairs (:mod:`rgenima_lib.attribution.pair_association`), a data
reference beside the attention score. The mean ranks of one item kind are
those of its own score, the same for every selection of it.

A last row per stage, "never-planted ROIs", holds the cohort's leak check
(:mod:`rgenima_lib.attribution.leak_check`): the never-planted ROI whose volume
best tells the stage from NC, its AUC, the chance level and the ``leak`` flag.
A flagged stage means the truth is incomplete or the generator leaks, and its
"false positives" may be real signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RECOVERY_COLUMNS = ["what", "stage", "selection", "precision_cap", "n_planted", "n_found", "true_positives",
                    "precision", "recall", "mean_rank_planted", "mean_rank_random", "n_ranked", "planted", "found",
                    "best_auc", "chance_best_auc", "leak"]


def _row(what, stage, planted, found, ranks=None, n_ranked=None, selection="top_k", k=None) -> dict:
    planted, found = list(dict.fromkeys(planted)), list(dict.fromkeys(found))
    tp = len(set(planted) & set(found))
    ranks = [r for r in (ranks or []) if r is not None]
    cap = min(1.0, len(planted) / k) if k else 1.0
    return {"what": what, "stage": stage, "selection": selection, "precision_cap": cap, "n_planted": len(planted), "n_found": len(found), "true_positives": tp,
            "precision": tp / len(found) if found else np.nan, "recall": tp / len(planted) if planted else np.nan,
            "mean_rank_planted": float(np.mean(ranks)) if ranks else np.nan,
            "mean_rank_random": (n_ranked + 1) / 2 if n_ranked else np.nan, "n_ranked": n_ranked or 0,
            "planted": ", ".join(planted), "found": ", ".join(found),
            "best_auc": np.nan, "chance_best_auc": np.nan, "leak": np.nan}


def recovery_table(truth: dict, genes: pd.DataFrame, rois: pd.DataFrame, pairs: pd.DataFrame,
                   top_n: int = 20, *, selections: pd.DataFrame | None = None,
                   associations: pd.DataFrame | None = None, top_genes: int | None = None,
                   top_rois: int | None = None) -> pd.DataFrame:
    """Precision / recall of the planted truth.

    Parameters
    ----------
    truth : dict
        ``truth.json``.
    genes : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_genes` (gene, stable, rank).
    rois : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_rois` (stage, roi, stable, rank).
    pairs : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_pairs` (stage, roi, gene, stability).
    top_n : int
        Pairs counted as "found" per stage.
    selections : DataFrame, optional
        :func:`~rgenima_lib.attribution.selection.select_genes` /
        :func:`~rgenima_lib.attribution.selection.select_stage_rois` rows (what, stage, item,
        selection, selected): one more row per selection.
    associations : DataFrame, optional
        :func:`~rgenima_lib.attribution.pair_association.pair_association` (stage, roi, gene,
        rank, significant): one ``association`` row per stage for the pairs.
    top_genes, top_rois : int, optional
        The k of the paper's rule, for its precision cap (pairs: ``top_n``).

    Returns
    -------
    DataFrame
        :data:`RECOVERY_COLUMNS`; per selection, one row for genes, one per stage for ROIs and for pairs.
    """
    chosen = {} if selections is None else {
        key: t.loc[t["selected"].astype(bool), "item"].tolist()
        for key, t in selections.groupby(["what", "stage", "selection"], sort=False)}
    methods = [] if selections is None else list(dict.fromkeys(selections["selection"]))
    rows = []
    rank = dict(zip(genes["gene"], genes["rank"]))
    causal = [c["gene"] for c in truth.get("causal_genes", []) if c["gene"] in rank]
    rows.append(_row("causal genes", "all", causal, genes.loc[genes["stable"], "gene"],
                     [rank[g] for g in causal], len(genes), k=top_genes))
    rows += [_row("causal genes", "all", causal, chosen.get(("genes", "all", m), []), [rank[g] for g in causal],
                  len(genes), selection=m) for m in methods]
    for stage, t in rois.groupby("stage", sort=False):
        planted = [p["roi"] for p in truth.get("stage_rois", {}).get(stage, [])]
        r = dict(zip(t["roi"], t["rank"]))
        planted = [p for p in planted if p in r]
        rows.append(_row("stage ROIs", stage, planted, t.loc[t["stable"], "roi"], [r[p] for p in planted], len(t),
                         k=top_rois))
        rows += [_row("stage ROIs", stage, planted, chosen.get(("stage ROIs", stage, m), []),
                      [r[p] for p in planted], len(t), selection=m) for m in methods]
    for stage, t in pairs.groupby("stage", sort=False):
        planted = [(p["roi"], p["gene"]) for p in truth.get("roi_gene_pairs", []) if stage in p["stages"]]
        ordered = t.assign(_s=t["stability"].fillna(-np.inf)).sort_values(
            ["_s", "roi", "gene"], ascending=[False, True, True], kind="stable")
        keys = list(zip(ordered["roi"], ordered["gene"]))
        position = {k: i + 1 for i, k in enumerate(keys)}
        planted = [p for p in planted if p in position]
        rows.append(_row("ROI-gene pairs", stage, [f"{r}~{g}" for r, g in planted],
                         [f"{r}~{g}" for r, g in keys[:top_n]], [position[p] for p in planted], len(keys), k=top_n))
    if associations is not None:
        for stage, t in associations.groupby("stage", sort=False):
            planted = [(p["roi"], p["gene"]) for p in truth.get("roi_gene_pairs", []) if stage in p["stages"]]
            position = dict(zip(zip(t["roi"], t["gene"]), t["rank"]))
            planted = [p for p in planted if p in position]
            found = t.loc[t["significant"].astype(bool)]
            rows.append(_row("ROI-gene pairs", stage, [f"{r}~{g}" for r, g in planted],
                             [f"{r}~{g}" for r, g in zip(found["roi"], found["gene"])],
                             [position[p] for p in planted], len(t), selection="association"))
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def leak_rows(leak: pd.DataFrame) -> pd.DataFrame:
    """The leak check as recovery rows ("never-planted ROIs", one per stage).

    Parameters
    ----------
    leak : DataFrame
        From :func:`rgenima_lib.attribution.leak_check.leak_check`.

    Returns
    -------
    DataFrame
        :data:`RECOVERY_COLUMNS`; ``n_ranked`` = never-planted ROIs tested, ``found`` = the best of them.
    """
    rows = [{**_row("never-planted ROIs", r.stage, [], [r.best_roi], None, r.n_never_planted, selection="volume_auc"),
             "mean_rank_random": np.nan, "best_auc": r.best_auc, "chance_best_auc": r.chance_best_auc,
             "leak": bool(r.leak)} for r in leak.itertuples()]
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
