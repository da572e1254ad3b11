"""Every attribution method's recovery of the planted truth, side by side (rule ``method_recovery``).

The pipeline's own chain (bootstrap, selection, recovery; :mod:`~rgenima_lib.attribution.recovery`)
runs on one method, ``attribution.method``. To tell which method finds what, each method in
``attribution.compare_methods`` attributes the same model's test subjects (rule
``attribute_method``, the dump format of every method) and is scored here the same way:

- ``top_k``: the k items with the highest *observed* score (the mean over subjects; for stage ROIs
  with ``roi_score: contrast`` the stage mean minus the NC mean, and its size for the signed methods,
  :func:`~rgenima_lib.attribution.bootstrap.stage_roi_score`; for pairs the stage mean of the
  ROI-gene share), k = ``top_genes`` / ``top_rois`` / ``top_pairs``. The pipeline's own top-k is the
  bootstrap selection frequency of the same rule; without the resampling the comparison costs
  seconds and ranks the same observed scores the recovery's mean ranks use;
- ``significance`` (BH against the items' own bulk) and ``stability`` where configured
  (:mod:`~rgenima_lib.attribution.selection`), exactly as rule ``attribution_select``.

Methods that define no ROI-gene share (the gradient methods write zeros) get no pair rows, a dump
without ROIs (a gene-only LLM) no ROI rows, and one whose genes are all zero no gene rows (the
gradient methods on gene tokens, ``llm.gene_input: tokens``, whose path moves the text embeddings the
gene tokens replace).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from rgenima_lib.attribution.bootstrap import TARGET_STAGES, stage_roi_score
from rgenima_lib.attribution.dump_format import AttentionDump
from rgenima_lib.attribution.recovery import RECOVERY_COLUMNS, recovery_table
from rgenima_lib.attribution.selection import gene_scores, select_genes, select_stage_rois


def observed_ranks(score: np.ndarray) -> np.ndarray:
    """int64[P] rank of each item by score, 1 = highest (ties by position, so the order is reproducible)."""
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _stage_contrast(x: np.ndarray, labels: np.ndarray, stage: str, contrast: bool) -> np.ndarray:
    """Mean over the stage's subjects, minus the NC mean when ``contrast``: float64[...] over the item axes."""
    mean = x[labels == stage].astype(np.float64).mean(0)
    return mean - x[labels == "NC"].astype(np.float64).mean(0) if contrast else mean


def observed_tables(dump: AttentionDump, *, top_genes: int, top_rois: int, gene_score: str = "per_token",
                    roi_score: str = "contrast", stages=TARGET_STAGES):
    """The recovery's gene, stage-ROI and pair tables from observed scores (no bootstrap).

    Parameters
    ----------
    dump : AttentionDump
        Pooled over folds; n subjects, G genes, R ROIs.
    top_genes, top_rois : int
        k of the ``top_k`` rows ("stable" = rank <= k).
    gene_score : {"sum", "per_token"}
    roi_score : {"mean", "contrast", "abs_contrast"}
        ROIs only (pairs keep the signed contrast: only the rollouts define them, and they are shares).
    stages : sequence of str

    Returns
    -------
    genes : DataFrame
        gene, score, rank, stable (G rows).
    rois : DataFrame
        stage, roi, score, rank, stable (R rows per stage with at least 2 subjects).
    pairs : DataFrame
        stage, roi, gene, stability (the observed stage score; R * G rows per stage), empty when the
        method defines no ROI-gene share.
    """
    labels = np.asarray(dump.label)
    g = gene_scores(dump.gene_importance, dump.gene_tokens, gene_score).mean(0)
    rank = observed_ranks(g)
    genes = pd.DataFrame({"gene": list(dump.genes), "score": g, "rank": rank, "stable": rank <= top_genes})
    present = [s for s in stages if (labels == s).sum() >= 2] if len(dump.rois) else []
    contrast = roi_score != "mean"
    roi_parts, pair_parts = [], []
    for stage in present:
        s = _stage_contrast(dump.roi_importance, labels, stage, contrast)
        if roi_score == "abs_contrast":
            s = np.abs(s)
        r = observed_ranks(s)
        roi_parts.append(pd.DataFrame({"stage": stage, "roi": list(dump.rois), "score": s, "rank": r,
                                       "stable": r <= top_rois}))
        if np.any(dump.roi_gene):
            p = _stage_contrast(dump.roi_gene, labels, stage, contrast)
            pair_parts.append(pd.DataFrame({"stage": stage, "roi": np.repeat(list(dump.rois), len(dump.genes)),
                                            "gene": np.tile(list(dump.genes), len(dump.rois)),
                                            "stability": p.ravel()}))
    rois = pd.concat(roi_parts, ignore_index=True) if roi_parts else pd.DataFrame(
        columns=["stage", "roi", "score", "rank", "stable"])
    pairs = pd.concat(pair_parts, ignore_index=True) if pair_parts else pd.DataFrame(
        columns=["stage", "roi", "gene", "stability"])
    return genes, rois, pairs


def method_recovery(truth: dict, dumps: Mapping[str, AttentionDump], *, top_genes: int, top_rois: int,
                    top_pairs: int, selections=("significance",), gene_score: str = "per_token",
                    roi_score: str = "contrast", **options) -> pd.DataFrame:
    """The recovery table of every method, one block of rows per method.

    Parameters
    ----------
    truth : dict
        ``truth.json``.
    dumps : mapping of str to AttentionDump
        Method name -> that method's dump of the same model, pooled over folds.
    top_genes, top_rois, top_pairs : int
    selections : sequence of str
        Besides ``top_k``: ``significance`` and / or ``stability``.
    gene_score, roi_score : str
    **options
        Passed to the selections (alpha, n_subsamples, threshold, expected_false, seed).

    Returns
    -------
    DataFrame
        ``method``, ``roi_score`` (the stage-ROI score used) and :data:`RECOVERY_COLUMNS`.
    """
    out = []
    for method, dump in dumps.items():
        score = stage_roi_score(roi_score, method)
        genes, rois, pairs = observed_tables(dump, top_genes=top_genes, top_rois=top_rois, gene_score=gene_score,
                                             roi_score=score)
        chosen = [m for m in selections if m != "top_k"]
        parts = []
        if chosen:
            parts.append(select_genes(dump.gene_importance, dump.genes, methods=chosen, tokens=dump.gene_tokens,
                                      score=gene_score, **options))
            if len(rois):
                parts.append(select_stage_rois(dump.roi_importance, dump.label, dump.rois, methods=chosen,
                                               score=score, **options))
        table = recovery_table(truth, genes, rois, pairs, top_n=top_pairs,
                               selections=pd.concat(parts, ignore_index=True) if parts else None,
                               top_genes=top_genes, top_rois=top_rois)
        if not len(rois):
            table = table[table["what"] == "causal genes"]
        if not np.any(dump.gene_importance):  # gene tokens: the gradient methods' path does not reach them
            table = table[table["what"] != "causal genes"]
        out.append(table.assign(method=method, roi_score=score))
    columns = ["method", "roi_score", *RECOVERY_COLUMNS]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)
