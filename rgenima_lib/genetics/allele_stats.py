"""Allele counts, frequencies and the Hardy-Weinberg exact test, computed independently of PLINK.

The synthetic genotypes are drawn so that they pass (or, where planted, fail) PLINK's QC with margin, judged
by these functions; the tests use them to check plink2's own statistics on the same ``.bed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

def hwe_exact_p(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """Hardy-Weinberg exact test p-value (Wigginton, Cutler & Abecasis 2005).

    The distribution of the heterozygote count given the allele counts is
    evaluated in closed form in log space (vectorised over all possible
    heterozygote counts) instead of the paper's recurrence; the p-value is the
    total probability of tables no more likely than the observed one, as in
    PLINK without ``midp``.

    Parameters
    ----------
    n_het, n_hom1, n_hom2 : int
        Genotype counts (non-negative).

    Returns
    -------
    float
        p in (0, 1]; 1.0 when no genotype is observed.
    """
    n_het, n_hom1, n_hom2 = int(n_het), int(n_hom1), int(n_hom2)
    if min(n_het, n_hom1, n_hom2) < 0:
        raise ValueError(f"genotype counts must be >= 0, got {n_het}, {n_hom1}, {n_hom2}")
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return 1.0
    n_rare = 2 * min(n_hom1, n_hom2) + n_het
    hets = np.arange(n_rare % 2, n_rare + 1, 2, dtype=np.float64)
    hom_rare = (n_rare - hets) / 2
    hom_common = n - hets - hom_rare
    # log P(hets | n, n_rare) without the constant terms, which cancel on normalising.
    log_p = (hets * np.log(2.0) - special.gammaln(hets + 1)
             - special.gammaln(hom_rare + 1) - special.gammaln(hom_common + 1))
    log_p_obs = log_p[(n_het - n_rare % 2) // 2]
    # Relative tolerance so that exact ties (and lgamma rounding) count as "as
    # likely", like PLINK's epsilon in HweP.
    tail = log_p <= log_p_obs + 1e-9
    weights = np.exp(log_p - log_p.max())
    return float(min(1.0, weights[tail].sum() / weights.sum()))


def allele_summary(dosage: np.ndarray) -> pd.DataFrame:
    """Per-SNP call rate, allele frequency and HWE p, as PLINK would report them.

    Parameters
    ----------
    dosage : int8[n_subjects, n_variants]
        Count of allele a1 (0/1/2), -1 = missing.

    Returns
    -------
    DataFrame, one row per variant (same order), columns
        ``n_obs`` (called subjects), ``n_missing``, ``missing_frac`` (PLINK
        F_MISS), ``hom_a1``, ``het``, ``hom_a2`` (genotype counts),
        ``freq_a1`` (among called alleles; NaN when none), ``maf``,
        ``hwe_p`` (``hwe_exact_p``).
    """
    dosage = np.asarray(dosage)
    if dosage.ndim != 2:
        raise ValueError(f"dosage must be 2-D [n_subjects, n_variants], got shape {dosage.shape}")
    hom_a1 = (dosage == 2).sum(axis=0)
    het = (dosage == 1).sum(axis=0)
    hom_a2 = (dosage == 0).sum(axis=0)
    n_obs = hom_a1 + het + hom_a2
    n_missing = dosage.shape[0] - n_obs
    with np.errstate(invalid="ignore", divide="ignore"):
        freq_a1 = (2 * hom_a1 + het) / (2 * n_obs)
    table = pd.DataFrame({
        "n_obs": n_obs, "n_missing": n_missing,
        "missing_frac": n_missing / max(dosage.shape[0], 1),
        "hom_a1": hom_a1, "het": het, "hom_a2": hom_a2,
        "freq_a1": freq_a1, "maf": np.minimum(freq_a1, 1 - freq_a1),
    })
    table["hwe_p"] = [hwe_exact_p(h, a, b) for h, a, b in zip(het, hom_a1, hom_a2)]
    return table
