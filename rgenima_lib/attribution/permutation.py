"""Label-permutation test of stage ROIs against NC, with Benjamini–Hochberg FDR (paper 2.3).

For a stage S and each ROI r, the statistic is the difference of mean ROI
importance, mean_S(r) − mean_NC(r). Under the null the stage labels of the
pooled S + NC subjects are exchangeable: P random relabellings (keeping the
group sizes) give the null distribution, all at once as one matrix product
(float32[P, n_pool] group indicators @ float32[n_pool, R]). The p-value is
(1 + #{perm ≥ observed}) / (P + 1) (never 0; Phipson & Smyth 2010) for
``alternative="greater"``, and uses |statistic| for ``"two-sided"`` (the
default: the paper does not say). BH FDR over the ROIs of each stage, by
``statsmodels.stats.multitest.multipletests(method="fdr_bh")``.

How many permutations: the smallest attainable p is 1 / (P + 1), and BH over
m = 109 ROIs gives the k-th smallest p the q-value p · m / k, so with the
paper's P = 1,000 an ROI can only reach q < 0.05 when at least 3 ROIs sit at
the floor. The pipeline's default is P = 10,000 (vectorised: a few seconds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from rgenima_lib.attribution.bootstrap import TARGET_STAGES


def permutation_pvalues(x_stage: np.ndarray, x_ref: np.ndarray, *, n_perm: int = 1000,
                        alternative: str = "two-sided", rng: np.random.Generator | None = None,
                        chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Permutation p-values of mean differences, per column.

    Parameters
    ----------
    x_stage : float[n1, R]
    x_ref : float[n0, R]
    n_perm : int
        P relabellings (paper: ≥ 1,000).
    alternative : {"two-sided", "greater", "less"}
    rng : numpy Generator, optional
    chunk : int
        Permutations per matrix product (memory P_chunk × n_pool).

    Returns
    -------
    statistic : float64[R]
        mean(x_stage) − mean(x_ref).
    p : float64[R]
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    rng = np.random.default_rng() if rng is None else rng
    x1 = np.asarray(x_stage, dtype=np.float64)
    x0 = np.asarray(x_ref, dtype=np.float64)
    n1, n0 = len(x1), len(x0)
    if n1 == 0 or n0 == 0:
        raise ValueError("both groups need subjects")
    pooled = np.concatenate([x1, x0]).astype(np.float32)
    n = n1 + n0
    total = pooled.sum(0, dtype=np.float64)
    observed = x1.mean(0) - x0.mean(0)

    def side(v):
        return np.abs(v) if alternative == "two-sided" else (v if alternative == "greater" else -v)

    # Tolerance: the permuted statistic equal to the observed one up to float32 rounding counts as ≥.
    obs_side = side(observed) - 1e-6 * np.abs(observed).max(initial=0.0)
    exceed = np.zeros(pooled.shape[1])
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        # A random n1-subset per row: the ranks of uniform keys (argsort is a uniform permutation).
        member = np.argsort(rng.random((m, n)), axis=1)[:, :n1]
        group = np.zeros((m, n), np.float32)
        np.put_along_axis(group, member, 1.0, axis=1)
        s1 = (group @ pooled).astype(np.float64)
        stat = s1 / n1 - (total - s1) / n0
        exceed += (side(stat) >= obs_side).sum(0)
        done += m
    return observed, (1.0 + exceed) / (n_perm + 1.0)


def stage_permutation_tests(importance: np.ndarray, labels, rois, *, stages=TARGET_STAGES, n_perm: int = 1000,
                            alternative: str = "two-sided", alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per stage against NC, per ROI: difference of means, permutation p, BH q.

    Parameters
    ----------
    importance : float[N, R]
    labels : str[N]
    rois : sequence of str, length R
    stages : sequence of str
    n_perm : int
    alternative : str
    alpha : float
        FDR level of the ``significant`` column.
    seed : int

    Returns
    -------
    DataFrame
        stage, roi, n_stage, n_nc, mean_difference, p_perm, q_bh, significant; stages without
        subjects (or no NC at all) are left out.
    """
    x = np.asarray(importance, dtype=np.float64)
    labels = np.asarray(labels)
    ref = x[labels == "NC"]
    out = []
    if len(ref) == 0:
        return pd.DataFrame(columns=["stage", "roi", "n_stage", "n_nc", "mean_difference", "p_perm", "q_bh",
                                     "significant"])
    for s_index, stage in enumerate(stages):
        xs = x[labels == stage]
        if len(xs) == 0:
            continue
        stat, p = permutation_pvalues(xs, ref, n_perm=n_perm, alternative=alternative,
                                      rng=np.random.default_rng([seed, 10, s_index]))
        reject, q, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
        out.append(pd.DataFrame({"stage": stage, "roi": list(rois), "n_stage": len(xs), "n_nc": len(ref),
                                 "mean_difference": stat, "p_perm": p, "q_bh": q, "significant": reject}))
    return pd.concat(out, ignore_index=True)
