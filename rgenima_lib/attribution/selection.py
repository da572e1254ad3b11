"""Selections whose size is not fixed in advance, beside the paper's fixed top-k (docs/interpretability.md).

The paper keeps the top 45 of 105 genes (and, here, the top 10 of 109 ROIs) in each
bootstrap iteration. A fixed k caps precision at planted / k whatever the model has
learnt: with 9 planted genes, 9 / 45 = 0.20. The two selections here choose how many
items to keep from the data:

- **significance** (:func:`significance_select`): per item, the subject-mean attribution
  (``score`` mean; for ROIs with ``contrast``, the stage mean minus the NC mean) and its
  standard error over subjects. With hundreds of subjects nearly every item differs
  "significantly" from a fixed reference for reasons unrelated to the stage (token
  position, gene length, a model's idiosyncrasies), so the null is the items' own
  bulk, a random-effects empirical null (Efron 2004; DerSimonian & Laird 1986):
  centre = median of the item means, between-item variance τ² = (1.4826 · MAD)² minus
  the median squared standard error (floored at 0), and
  z = (mean − centre) / sqrt(τ² + se²). With few subjects se dominates and this is a
  one-sided z test against the median item; with many, τ does and an item must stand
  out from the spread of the other items. One-sided p, BH at ``alpha``. The null
  assumes most items carry no signal (at most about a third), which holds for 9 of
  105 genes and 5-9 of 109 ROIs.
- **stability** (:func:`stability_select`, Meinshausen & Bühlmann 2010): B subsamples
  of half the subjects without replacement, the top ``q`` items of each, and the items
  selected in at least ``threshold`` of them. ``q`` follows from the error bound
  E[V] ≤ q² / ((2·threshold − 1) · p) for a target expected number of false selections
  E[V] (:func:`stability_q`). The bound assumes exchangeable noise items and a ranking no
  worse than random; the paper's rule (bootstrap with replacement, threshold 0.5) has no
  such bound (2·0.5 − 1 = 0).

Both return one row per item with a boolean ``selected``; the stage-ROI forms run per stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rgenima_lib.attribution.bootstrap import ROI_SCORES, TARGET_STAGES

SELECTIONS: tuple[str, ...] = ("top_k", "significance", "stability")
"""Every selection rule; ``top_k`` is the paper's (:mod:`rgenima_lib.attribution.bootstrap`)."""

# 1.4826 · MAD estimates the standard deviation of a normal sample.
_MAD_TO_SD = 1.4826


def stability_q(n_items: int, expected_false: float = 1.0, threshold: float = 0.9) -> int:
    """Items kept per subsample so that the Meinshausen–Bühlmann bound gives E[V] ≤ ``expected_false``.

    Parameters
    ----------
    n_items : int
        p, the items ranked.
    expected_false : float
        Target bound on the expected number of false selections.
    threshold : float
        Selection-frequency threshold, in (0.5, 1].

    Returns
    -------
    int
        q = floor(sqrt(E[V] · (2·threshold − 1) · p)), at least 1.
    """
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"the stability threshold must be in (0.5, 1], not {threshold}")
    return max(1, int(np.floor(np.sqrt(expected_false * (2 * threshold - 1) * n_items))))


def stability_bound(n_items: int, q: int, threshold: float) -> float:
    """E[V] ≤ q² / ((2·threshold − 1) · p): the bound the selection of :func:`stability_select` carries."""
    return q * q / ((2 * threshold - 1) * n_items)


def empirical_null_pvalues(mean: np.ndarray, se: np.ndarray, two_sided: bool = False
                           ) -> tuple[np.ndarray, float, float]:
    """One-sided (or two-sided) p-values of item means against the random-effects null of the items' bulk.

    Parameters
    ----------
    mean : float[P]
        Item statistic (mean attribution, or a difference of means).
    se : float[P]
        Its standard error over subjects.

    Returns
    -------
    p : float64[P]
        1 − Φ((mean − centre) / sqrt(τ² + se²)); twice 1 − Φ(|…|) when ``two_sided``.
    centre, tau : float
        Median of the means and the between-item standard deviation.
    """
    m = np.asarray(mean, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    centre = float(np.median(m))
    spread = _MAD_TO_SD * float(np.median(np.abs(m - centre)))
    tau2 = max(0.0, spread ** 2 - float(np.median(se ** 2)))
    scale = np.sqrt(tau2 + se ** 2)
    floor = 1e-12 * max(1.0, float(np.abs(m).max(initial=0.0)))
    z = (m - centre) / np.maximum(scale, floor)
    p = np.minimum(1.0, 2.0 * stats.norm.sf(np.abs(z))) if two_sided else stats.norm.sf(z)
    return p, centre, float(np.sqrt(tau2))


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64[P] mean and standard error of each column over the rows (subjects)."""
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(len(x))


def significance_select(x: np.ndarray, reference: np.ndarray | None = None, *, alpha: float = 0.05,
                        two_sided: bool = False) -> pd.DataFrame:
    """Items whose mean attribution stands out from the bulk of items, at BH FDR ``alpha``.

    Parameters
    ----------
    x : float[N, P]
        Subject-level attribution (one row per subject).
    reference : float[N0, P], optional
        Reference subjects (NC): the statistic is then mean(x) − mean(reference) (the ``contrast``
        score, standard errors added in quadrature).
    alpha : float
        FDR level.
    two_sided : bool
        Select items that stand out in either direction (``abs_contrast``, signed attributions).

    Returns
    -------
    DataFrame, P rows in column order
        statistic (the mean or the difference), se, z, p_value, q_bh, selected.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("the significance selection needs at least 2 subjects")
    mean, se = _mean_se(x)
    if reference is not None:
        ref_mean, ref_se = _mean_se(np.asarray(reference, dtype=np.float64))
        mean, se = mean - ref_mean, np.sqrt(se ** 2 + ref_se ** 2)
    p, centre, tau = empirical_null_pvalues(mean, se, two_sided)
    reject, q, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
    z = stats.norm.isf(np.clip(p, 1e-300, 1.0))
    return pd.DataFrame({"statistic": mean, "se": se, "z": z, "p_value": p, "q_bh": q, "selected": reject})


def stability_select(x: np.ndarray, reference: np.ndarray | None = None, *, n_subsamples: int = 100,
                     expected_false: float = 1.0, threshold: float = 0.9, seed: int = 0,
                     two_sided: bool = False) -> pd.DataFrame:
    """Stability selection (Meinshausen–Bühlmann): top q of half-subsamples, kept in ≥ ``threshold`` of them.

    Parameters
    ----------
    x : float[N, P]
        Subject-level attribution.
    reference : float[N0, P], optional
        Reference subjects (NC), subsampled independently: items ranked by the difference of means.
    n_subsamples : int
        B subsamples of floor(N / 2) subjects without replacement.
    expected_false : float
        E[V] target of the error bound (sets q, :func:`stability_q`).
    threshold : float
        Selection-frequency threshold, in (0.5, 1].
    seed : int
    two_sided : bool
        Rank the subsample statistics by size (``abs_contrast``, signed attributions).

    Returns
    -------
    DataFrame, P rows in column order
        frequency, selected, q (items per subsample), bound (E[V] bound of this q and threshold).
    """
    x = np.asarray(x, dtype=np.float32)
    n, p = x.shape
    q = stability_q(p, expected_false, threshold)
    rng = np.random.default_rng([seed, 20])
    means = _half_means(x, n_subsamples, rng)
    if reference is not None:
        means = means - _half_means(np.asarray(reference, dtype=np.float32), n_subsamples, rng)
    if two_sided:
        means = np.abs(means)
    top = np.argpartition(-means, q - 1, axis=1)[:, :q]
    freq = np.bincount(top.ravel(), minlength=p) / n_subsamples
    return pd.DataFrame({"frequency": freq, "selected": freq >= threshold, "q": q,
                         "bound": stability_bound(p, q, threshold)})


def _half_means(x: np.ndarray, n_subsamples: int, rng: np.random.Generator) -> np.ndarray:
    """float32[B, P]: means over B random halves of the rows (without replacement)."""
    n = len(x)
    if n < 2:
        raise ValueError("stability selection needs at least 2 subjects per group")
    half = n // 2
    member = np.argsort(rng.random((n_subsamples, n)), axis=1)[:, :half]
    weights = np.zeros((n_subsamples, n), np.float32)
    np.put_along_axis(weights, member, 1.0 / half, axis=1)
    return weights @ x


def gene_scores(importance: np.ndarray, tokens: np.ndarray | None = None, score: str = "sum") -> np.ndarray:
    """float32[N, G]: the gene score the bootstrap ranks (``sum``; ``per_token`` divides by the token count)."""
    x = np.asarray(importance, dtype=np.float32)
    if score == "per_token":
        if tokens is None:
            raise ValueError("score='per_token' needs the token counts")
        return x / np.maximum(np.asarray(tokens, dtype=np.float32), 1.0)
    if score != "sum":
        raise ValueError(f"score must be 'sum' or 'per_token', not {score!r}")
    return x


def select_items(x: np.ndarray, method: str, reference: np.ndarray | None = None, *, alpha: float = 0.05,
                 n_subsamples: int = 100, expected_false: float = 1.0, threshold: float = 0.9,
                 seed: int = 0, two_sided: bool = False) -> pd.DataFrame:
    """One of the non-fixed selections by name (``significance`` or ``stability``); P rows, column ``selected``."""
    if method == "significance":
        return significance_select(x, reference, alpha=alpha, two_sided=two_sided)
    if method == "stability":
        return stability_select(x, reference, n_subsamples=n_subsamples, expected_false=expected_false,
                                threshold=threshold, seed=seed, two_sided=two_sided)
    raise ValueError(f"selection must be 'significance' or 'stability' here, not {method!r}")


def select_genes(importance: np.ndarray, genes, *, methods=("significance", "stability"), tokens=None,
                 score: str = "sum", **options) -> pd.DataFrame:
    """Genes selected by each method over all test subjects.

    Parameters
    ----------
    importance : float[N, G]
    genes : sequence of str, length G
    methods : sequence of str
        Among ``significance``, ``stability``.
    tokens : int[N, G], optional
        Needed by ``score="per_token"``.
    score : {"sum", "per_token"}
    **options
        Passed to :func:`select_items` (alpha, n_subsamples, expected_false, threshold, seed).

    Returns
    -------
    DataFrame
        what ("genes"), stage ("all"), item, selection, selected, plus the method's statistics.
    """
    x = gene_scores(importance, tokens, score)
    out = [select_items(x, m, **options).assign(what="genes", stage="all", item=list(genes), selection=m)
           for m in methods]
    return _ordered(pd.concat(out, ignore_index=True))


def select_stage_rois(importance: np.ndarray, labels, rois, *, methods=("significance", "stability"),
                      score: str = "mean", stages=TARGET_STAGES, **options) -> pd.DataFrame:
    """ROIs selected by each method within each stage (``contrast``: against NC).

    Parameters
    ----------
    importance : float[N, R]
    labels : str[N]
    rois : sequence of str, length R
    methods : sequence of str
    score : {"mean", "contrast", "abs_contrast"}
        ``abs_contrast``: the contrast, selected in either direction (signed attributions).
    stages : sequence of str
    **options
        Passed to :func:`select_items`.

    Returns
    -------
    DataFrame
        what ("stage ROIs"), stage, item, selection, selected, plus the statistics; stages
        with fewer than 2 subjects are left out.
    """
    if score not in ROI_SCORES:
        raise ValueError(f"score must be one of {ROI_SCORES}, not {score!r}")
    x = np.asarray(importance, dtype=np.float32)
    labels = np.asarray(labels)
    reference = x[labels == "NC"] if score != "mean" else None
    if reference is not None and len(reference) < 2:
        raise ValueError(f"score={score!r} needs at least 2 NC subjects")
    out = []
    for stage in stages:
        xs = x[labels == stage]
        if len(xs) < 2:
            continue
        for m in methods:
            out.append(select_items(xs, m, reference, two_sided=score == "abs_contrast", **options).assign(
                what="stage ROIs", stage=stage, item=list(rois), selection=m))
    if not out:
        raise ValueError(f"fewer than 2 subjects in every stage of {list(stages)}")
    return _ordered(pd.concat(out, ignore_index=True))


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """The key columns first."""
    keys = ["what", "stage", "item", "selection", "selected"]
    return table[keys + [c for c in table.columns if c not in keys]]
