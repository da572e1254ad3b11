"""Bootstrap stability of genes, stage ROIs and ROI–gene pairs (paper 2.2, 2.3, 4.3 eqs. 13–17).

Design: docs/design.md, "Bootstrap stability".

All three procedures resample subjects with replacement and are vectorised
over the B iterations: iteration b is a row of multinomial counts w_b
(float32[N], summing to n_draw), and the B resampled means of every feature
are one matrix product of ``W / n_draw`` with the data (``resampled_means``;
for ROI–gene pairs stored pairs × iterations so that each pair's B means are
contiguous for its percentiles). ROI–gene pairs are taken in column chunks so that
memory stays at B × chunk floats whatever the number of pairs; the default
chunk fills ``CHUNK_BUDGET_BYTES``, because every extra product and
percentile call costs time (4,096-pair chunks were 1.5x slower than one
product at B = 200).

- **Genes** (paper 2.2): B resamples of the test subjects (paper: 1,000 of
  1,000 subjects), rank genes by mean importance, keep the top 45; a gene is
  stable if kept in more than 50% of iterations. The paper's importance sums
  the gene's tokens, so it grows with the gene's SNP count; ``score="per_token"``
  ranks the share per token instead.
- **ROIs per stage** (paper 2.3): likewise within the subjects of one stage
  (SMC, MCI, AD), top ``top_k`` ROIs. ``score="mean"`` ranks by the stage's
  mean ROI importance (the paper); ``score="contrast"`` by the stage mean
  minus the NC mean (NC resampled independently), which asks which ROIs the
  model attends to *more* in the stage. The paper gives no top-k for ROIs;
  10 is our default.
- **ROI–gene pairs per stage** (paper 4.3): bootstrap mean (eq. 16), the
  2.5th / 97.5th percentiles of the B means, and
  Stability = mean / (CI97.5 − CI2.5) (eq. 17); NaN where the interval has
  zero width.

Seeds: every call takes ``seed``; different procedures and stages draw from
``np.random.default_rng([seed, stream])`` streams so that adding a stage or a
procedure never changes another's draws.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

TARGET_STAGES: tuple[str, ...] = ("SMC", "MCI", "AD")
"""Stages of the ROI and ROI–gene analyses (paper 2.3–2.4); NC is the reference."""

ROI_SCORES: tuple[str, ...] = ("mean", "contrast", "abs_contrast")
"""Stage-ROI scores: the stage mean (paper), the stage mean minus the NC mean, and the size of that
difference. A signed attribution (integrated gradients, gradient x input) is evidence for or against the
explained stage; a ROI tells a stage from NC when its evidence differs between them in either direction
(a planted ROI's normal volume is strong evidence *for* NC in NC subjects, so its signed contrast is
negative), hence ``abs_contrast`` for those methods (:func:`stage_roi_score`)."""

SIGNED_METHODS: tuple[str, ...] = ("integrated_gradients", "gradient_input")
"""Attribution methods whose ROI values take either sign (the others are shares or positive relevances)."""


def stage_roi_score(score: str, method: str) -> str:
    """The stage-ROI score a method's dump is ranked by: ``contrast`` is two-sided for a signed method."""
    return "abs_contrast" if score == "contrast" and method in SIGNED_METHODS else score

#: Random stream of each procedure: ``default_rng([seed, STREAMS[name], ...])``.
STREAMS = {"genes": 0, "rois": 1, "pairs": 2, "reference": 3}

#: Memory of one chunk of the ROI–gene bootstrap: its data promoted to float32[N, chunk] and its means
#: float32[chunk, B]. 128 MB holds all 11,445 pairs in one chunk up to N + B = 2,900.
CHUNK_BUDGET_BYTES = 128 * 2**20


def resample_weights(n_subjects: int, n_boot: int, rng: np.random.Generator, n_draw: int | None = None) -> np.ndarray:
    """Bootstrap weights: row b = counts of each subject in resample b, divided by the draw size.

    Parameters
    ----------
    n_subjects : int
        N.
    n_boot : int
        B.
    rng : numpy Generator
    n_draw : int, optional
        Subjects drawn per resample (default N; the paper draws 1,000).

    Returns
    -------
    float32[B, N]
        Rows sum to 1, so ``W @ X`` is the B resampled means.
    """
    if n_subjects < 1:
        raise ValueError("no subjects to resample")
    n_draw = n_subjects if n_draw is None else int(n_draw)
    counts = rng.multinomial(n_draw, np.full(n_subjects, 1.0 / n_subjects), size=n_boot)
    # Divided in float32: the counts and n_draw are exact in float32, and a float32 quotient equals the
    # float64 quotient rounded to float32 (double rounding is harmless for division from 53 to 24 bits),
    # so the weights are those of ``(counts / n_draw).astype(np.float32)`` without its float64 [B, N] copy.
    return np.divide(counts, n_draw, dtype=np.float32)


def map_in_threads(function, items: list) -> list:
    """``[function(item) for item in items]``, run in threads on the CPUs this process may use.

    For work on independent random streams: the multinomial draw, most of a bootstrap's time, and
    the matrix products both release the GIL, and each stream has its own generator, so the results
    are those of the plain loop, bit for bit.
    """
    # The CPUs this process may use (a SLURM job's allocation), not the node's.
    workers = min(len(items), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def resampled_means(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """float32[B, P]: the B resampled means of every column of ``x``, ``weights @ x``.

    Parameters
    ----------
    x : float[N, P]
        One row per subject (float16 dumps are promoted).
    weights : float32[B, N]
        From :func:`resample_weights`.

    Returns
    -------
    float32[B, P]
        Row b: the means of resample b (``pair_stability`` takes the same products transposed).
    """
    return weights @ np.asarray(x, dtype=np.float32)


def pair_chunk(n_subjects: int, n_boot: int) -> int:
    """Columns per ROI–gene product whose float32 data [N, chunk] and means [chunk, B] fit ``CHUNK_BUDGET_BYTES``."""
    return max(1, CHUNK_BUDGET_BYTES // (4 * (int(n_subjects) + int(n_boot))))


def top_k_frequency(means: np.ndarray, top_k: int) -> np.ndarray:
    """float64[P]: share of iterations in which each feature is among the ``top_k`` largest.

    Parameters
    ----------
    means : float[B, P]
    top_k : int
        Clipped to P.
    """
    b, p = means.shape
    k = min(int(top_k), p)
    if k <= 0:
        return np.zeros(p)
    top = np.argpartition(-means, k - 1, axis=1)[:, :k]
    return np.bincount(top.ravel(), minlength=p) / b


def feature_names(names, n_features: int, what: str) -> np.ndarray:
    """The names of the ``n_features`` columns as an array, refusing a count that does not match.

    Parameters
    ----------
    names : sequence of str
    n_features : int
        Columns of the importance matrix.
    what : str
        Argument name in the error message.
    """
    names = np.asarray(list(names))
    if names.shape != (n_features,):
        raise ValueError(f"{len(names)} {what} for {n_features} importance columns")
    return names


def ranked_order(score: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Row order by ``score`` descending, ties by name ascending, equal rows in input order, NaN last.

    The order of ``DataFrame.sort_values([score, name], ascending=[False, True], kind="stable")``,
    without building the frame first: the tables are assembled once, already in rank order.
    """
    return np.lexsort((names, -score))


def bootstrap_genes(importance: np.ndarray, genes, *, n_boot: int = 1000, top_k: int = 45,
                    threshold: float = 0.5, n_draw: int | None = None, seed: int = 0, tokens: np.ndarray | None = None,
                    score: str = "sum") -> pd.DataFrame:
    """Stable genes (paper 2.2).

    Parameters
    ----------
    importance : float[N, G]
        Gene importance per test subject (all stages): rollout share summed over the gene's tokens.
    genes : sequence of str, length G
    tokens : int[N, G], optional
        Tokens per gene block (the dump's ``gene_tokens``); needed by ``score="per_token"``.
    score : {"sum", "per_token"}
        ``sum`` ranks the summed share (paper); ``per_token`` divides it by the gene's token count,
        so that a gene with many SNPs does not rank high for its length alone.
    n_boot : int
        B (paper 1,000).
    top_k : int
        Genes kept per iteration (paper 45).
    threshold : float
        Stable if selected in more than this share of iterations (paper 0.5).
    n_draw : int, optional
        Subjects per resample (default N).
    seed : int

    Returns
    -------
    DataFrame
        gene, mean_importance (over subjects, of the ranked score), bootstrap_mean, frequency,
        stable (bool), rank (1 = highest mean importance), mean_tokens (when ``tokens``); rows by rank.
    """
    if score not in ("sum", "per_token"):
        raise ValueError(f"score must be 'sum' or 'per_token', not {score!r}")
    x = np.asarray(importance, dtype=np.float32)
    if score == "per_token":
        if tokens is None:
            raise ValueError("score='per_token' needs the token counts")
        x = x / np.maximum(np.asarray(tokens, dtype=np.float32), 1.0)
    names = feature_names(genes, x.shape[1], "genes")
    rng = np.random.default_rng([seed, STREAMS["genes"]])
    weights = resample_weights(x.shape[0], n_boot, rng, n_draw)
    means = resampled_means(x, weights)
    freq = top_k_frequency(means, top_k)
    mean_importance = x.mean(0).astype(np.float64)
    order = ranked_order(mean_importance, names)
    columns = {"gene": names[order], "mean_importance": mean_importance[order],
               "bootstrap_mean": means.mean(0).astype(np.float64)[order], "frequency": freq[order],
               "stable": freq[order] > threshold}
    if tokens is not None:
        columns["mean_tokens"] = np.asarray(tokens, dtype=np.float64).mean(0)[order]
    columns["rank"] = np.arange(1, len(order) + 1)
    return pd.DataFrame(columns)


def bootstrap_rois(importance: np.ndarray, labels, rois, *, stages=TARGET_STAGES, n_boot: int = 1000,
                   top_k: int = 10, threshold: float = 0.5, score: str = "mean", n_draw: int | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Stable ROIs per stage (paper 2.3).

    Parameters
    ----------
    importance : float[N, R]
        ROI importance per test subject.
    labels : str[N]
        True stage of each subject.
    rois : sequence of str, length R
    stages : sequence of str
        Stages analysed (SMC, MCI, AD).
    n_boot, top_k, threshold, n_draw, seed
        As :func:`bootstrap_genes` (``n_draw`` defaults to each stage's size).
    score : {"mean", "contrast", "abs_contrast"}
        Rank by the stage mean (paper), the stage mean minus the NC mean, or the size of that
        difference (``abs_contrast``, for signed attributions: :data:`ROI_SCORES`).

    Returns
    -------
    DataFrame
        stage, roi, n_subjects, mean_importance, nc_mean_importance, score
        (observed), frequency, stable, rank (within stage, by score); a stage
        without subjects is left out.
    """
    if score not in ROI_SCORES:
        raise ValueError(f"score must be one of {ROI_SCORES}, not {score!r}")
    x = np.asarray(importance, dtype=np.float32)
    labels = np.asarray(labels)
    nc = x[labels == "NC"]
    if score != "mean" and len(nc) == 0:
        raise ValueError(f"score={score!r} needs NC subjects")
    nc_mean = nc.mean(0) if len(nc) else np.full(x.shape[1], np.nan, np.float32)
    names = feature_names(rois, x.shape[1], "rois")
    # Columns are gathered per stage in rank order and framed once: a sorted frame per stage and their
    # concat cost 7 ms, more than the three stages' products.
    stage_names, sizes, orders, mean_importance, observed_score, frequency = [], [], [], [], [], []
    present = [(s_index, stage, x[labels == stage]) for s_index, stage in enumerate(stages)
               if (labels == stage).any()]

    def stage_frequency(entry) -> np.ndarray:
        # One stage's resamples (and its NC reference's), each from its own stream: the stages run in threads.
        s_index, _, xs = entry
        rng = np.random.default_rng([seed, STREAMS["rois"], s_index])
        means = resampled_means(xs, resample_weights(len(xs), n_boot, rng, n_draw))
        if score != "mean":
            ref_rng = np.random.default_rng([seed, STREAMS["reference"], s_index])
            means = means - resampled_means(nc, resample_weights(len(nc), n_boot, ref_rng, n_draw))
            if score == "abs_contrast":
                means = np.abs(means)
        return top_k_frequency(means, top_k)

    for (_, stage, xs), stage_frequencies in zip(present, map_in_threads(stage_frequency, present)):
        stage_mean = xs.mean(0)
        observed = stage_mean
        if score != "mean":
            observed = stage_mean - nc_mean
            if score == "abs_contrast":
                observed = np.abs(observed)
        observed = observed.astype(np.float64)
        order = ranked_order(observed, names)
        stage_names.append(stage)
        sizes.append(len(xs))
        orders.append(order)
        mean_importance.append(stage_mean.astype(np.float64)[order])
        observed_score.append(observed[order])
        frequency.append(stage_frequencies[order])
    if not orders:
        raise ValueError(f"no subjects in any of the stages {list(stages)}")
    n_rois = len(names)
    frequency = np.concatenate(frequency)
    order = np.concatenate(orders)
    return pd.DataFrame({
        "stage": np.repeat(np.asarray(stage_names, dtype=object), n_rois), "roi": names[order],
        "n_subjects": np.repeat(np.asarray(sizes, dtype=np.int64), n_rois),
        "mean_importance": np.concatenate(mean_importance), "nc_mean_importance": nc_mean.astype(np.float64)[order],
        "score": np.concatenate(observed_score), "frequency": frequency, "stable": frequency > threshold,
        "rank": np.tile(np.arange(1, n_rois + 1), len(orders))})


def pair_stability(association: np.ndarray, *, n_boot: int = 1000, n_draw: int | None = None, seed: int = 0,
                   stream: int = 0, chunk: int | None = None, ci: float = 0.95) -> dict[str, np.ndarray]:
    """Bootstrap mean, CI and stability of every ROI–gene pair of one stage (paper 4.3, eqs. 13–17).

    Parameters
    ----------
    association : float[N, R, G]
        a[s, r, g] of the stage's subjects (eq. 13: X_{r,g} over s).
    n_boot : int
        B (eq. 14–15).
    n_draw : int, optional
        Values per replicate (paper: N).
    seed, stream : int
        Random stream ``[seed, pairs, stream]``.
    chunk : int, optional
        Pairs per matrix product (default :func:`pair_chunk`: all 11,445 pairs while N + B <= 2,900).
    ci : float
        Central interval (paper 95%).

    Returns
    -------
    dict of float64[R, G]
        ``mean`` (eq. 16), ``ci_low``, ``ci_high`` (percentiles), ``stability`` (eq. 17, NaN where
        ci_high == ci_low), ``observed`` (plain mean over subjects).
    """
    a = np.asarray(association)
    n, r, g = a.shape
    flat = a.reshape(n, r * g)
    rng = np.random.default_rng([seed, STREAMS["pairs"], stream])
    weights = resample_weights(n, n_boot, rng, n_draw)
    q = [50 * (1 - ci), 100 - 50 * (1 - ci)]
    out = {k: np.empty(r * g) for k in ("mean", "ci_low", "ci_high", "observed")}
    chunk = pair_chunk(n, n_boot) if chunk is None else int(chunk)
    for start in tqdm(range(0, r * g, chunk), desc="bootstrap ROI-gene", unit="chunk", disable=None, leave=False):
        cols = slice(start, min(start + chunk, r * g))
        # Promoted once per chunk: float16 -> float32 is exact, and the observed mean reads it too.
        data = np.asarray(flat[:, cols], dtype=np.float32)
        out["observed"][cols] = data.mean(0, dtype=np.float64)
        # The products of resampled_means, stored pairs x iterations: each pair's B means are one
        # contiguous row, and numpy sorts and partitions contiguous rows several times faster.
        means = data.T @ weights.T
        out["mean"][cols] = means.mean(1, dtype=np.float64)
        # Sorted first, in place (the means are this loop's own; their mean is taken): numpy's
        # vectorised sort of contiguous float32 rows and a percentile of sorted rows take 1.7-3x less
        # time than the percentile's own partition, and a percentile depends on the values only.
        means.sort(axis=1)
        out["ci_low"][cols], out["ci_high"][cols] = np.percentile(means, q, axis=1, overwrite_input=True)
    width = out["ci_high"] - out["ci_low"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["stability"] = np.where(width > 0, out["mean"] / np.where(width > 0, width, 1.0), np.nan)
    return {k: v.reshape(r, g) for k, v in out.items()}


def bootstrap_pairs(association: np.ndarray, labels, rois, genes, *, stages=TARGET_STAGES, n_boot: int = 1000,
                    n_draw: int | None = None, seed: int = 0, chunk: int | None = None) -> pd.DataFrame:
    """ROI–gene stability per stage, as one long table.

    Parameters
    ----------
    association : float[N, R, G]
    labels : str[N]
    rois : sequence of str, length R
    genes : sequence of str, length G
    stages, n_boot, n_draw, seed, chunk
        As :func:`pair_stability`.

    Returns
    -------
    DataFrame
        stage, roi, gene, n_subjects, observed_mean, bootstrap_mean, ci_low, ci_high, stability;
        R × G rows per stage with subjects, ROI-major (token order), genes in panel order.
    """
    labels = np.asarray(labels)
    a = np.asarray(association)
    out = []
    for s_index, stage in enumerate(stages):
        mask = labels == stage
        if not mask.any():
            continue
        res = pair_stability(a[mask], n_boot=n_boot, n_draw=n_draw, seed=seed, stream=s_index, chunk=chunk)
        r, g = res["mean"].shape
        out.append(pd.DataFrame({
            "stage": stage, "roi": np.repeat(np.asarray(rois, dtype=object), g),
            "gene": np.tile(np.asarray(genes, dtype=object), r), "n_subjects": int(mask.sum()),
            "observed_mean": res["observed"].ravel(), "bootstrap_mean": res["mean"].ravel(),
            "ci_low": res["ci_low"].ravel(), "ci_high": res["ci_high"].ravel(),
            "stability": res["stability"].ravel()}))
    if not out:
        raise ValueError(f"no subjects in any of the stages {list(stages)}")
    return pd.concat(out, ignore_index=True)


def top_pairs(pairs: pd.DataFrame, n: int = 20, rois=None) -> pd.DataFrame:
    """The ``n`` most stable pairs of each stage (optionally only among ``rois[stage]``).

    Parameters
    ----------
    pairs : DataFrame
        From :func:`bootstrap_pairs`.
    n : int
    rois : dict stage -> collection of ROI names, optional

    Returns
    -------
    DataFrame
        Same columns plus ``rank`` (1 = most stable within the stage).
    """
    out = []
    for stage, t in pairs.groupby("stage", sort=False):
        if rois is not None:
            t = t[t["roi"].isin(rois.get(stage, ()))]
        t = t.dropna(subset=["stability"]).sort_values(["stability", "roi", "gene"], ascending=[False, True, True],
                                                       kind="stable").head(n).copy()
        t["rank"] = np.arange(1, len(t) + 1)
        out.append(t)
    return pd.concat(out, ignore_index=True) if out else pairs.head(0).assign(rank=[])
