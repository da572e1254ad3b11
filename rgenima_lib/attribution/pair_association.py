"""ROI–gene pairs as a data association: within each stage, a gene's genotype against an ROI's volume.

The paper's pairs (4.3) rank a_{s,r,g}, the share of gene g's tokens in ROI token r's
rollout row: what the classifier's attention links, not whether the gene and the ROI are
associated in the subjects. This module asks the second question directly, as the
reference the attention-based pairs can be judged against (docs/interpretability.md,
"ROI-gene pairs: the association test").

Per stage and pair (r, g), on the stage's subjects with a genotype and ROI volumes:

- ROI volume: log of the voxel count times the voxel volume, adjusted for log total
  volume (the sum over the ROIs: head size) and any further covariates (age, sex) by
  least squares, as is the gene side;
- gene side (``gene_test``): ``min_snp`` (default) takes the smallest two-sided p of the
  gene's SNPs and corrects it for their number, p = 1 − (1 − p_min)^m (Šidák: exact for
  independent SNPs, conservative under LD); ``burden`` tests the sum of the gene's
  standardised dosages, which dilutes a single-SNP effect among the gene's m SNPs;
- SNPs whose minor allele occurs fewer than ``min_minor_count`` times among the stage's
  subjects are left out: one or two carriers make a single point of high leverage, and
  the t distribution's p-value then runs far below its nominal rate (in the demo's 10 SMC
  subjects, 9 pairs passed BH with no filter; in a simulated null stage of 89 subjects a SNP
  with genotype counts 72 / 13 / 2 still gave 3 at a threshold of 5, none at 20; the default
  10 keeps the demo MCI stage's planted drivers, which 20 drops in 75 subjects);
- a Pearson correlation of the residuals, t with n − c − 1 degrees of freedom (c = covariate
  columns including the intercept), two-sided p;
- Benjamini–Hochberg over all R × G pairs of the stage (statsmodels).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rgenima_lib.attribution.bootstrap import TARGET_STAGES

GENE_TESTS: tuple[str, ...] = ("min_snp", "burden")


def standardized(dosage: np.ndarray) -> np.ndarray:
    """float64[N, M]: each column centred and scaled over the given subjects; missing (< 0) -> 0 (the mean).

    Parameters
    ----------
    dosage : int or float[N, M]
        Allele counts, negative for a missing call.
    """
    d = np.asarray(dosage, dtype=np.float64).copy()
    d[d < 0] = np.nan
    mean = np.nanmean(d, axis=0)
    sd = np.nanstd(d, axis=0)
    z = (d - mean) / np.where(sd > 0, sd, np.inf)
    return np.nan_to_num(z, nan=0.0)


def minor_allele_count(dosage: np.ndarray) -> np.ndarray:
    """int64[M]: copies of the rarer allele among the called genotypes of each column (negative = missing)."""
    d = np.asarray(dosage, dtype=np.int64)
    called = d >= 0
    alt = np.where(called, d, 0).sum(0)
    return np.minimum(alt, 2 * called.sum(0) - alt)


def residualize(x: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """float64[N, P]: ``x`` minus its least-squares fit on ``covariates`` (float[N, C], intercept included)."""
    beta, *_ = np.linalg.lstsq(covariates, x, rcond=None)
    return x - covariates @ beta


def design_matrix(covariates: np.ndarray) -> np.ndarray:
    """float64[N, 1 + C']: intercept plus the centred covariates that vary (a constant one adds nothing)."""
    x = np.asarray(covariates, dtype=np.float64)
    varying = x.std(0) > 0
    return np.column_stack([np.ones(len(x)), x[:, varying] - x[:, varying].mean(0)])


def correlation_pvalues(a: np.ndarray, b: np.ndarray, n_covariates: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and two-sided p of every column of ``a`` with every column of ``b`` (residuals).

    Parameters
    ----------
    a : float[N, P]
    b : float[N, Q]
    n_covariates : int
        Columns adjusted for (intercept included): df = N − n_covariates − 1.

    Returns
    -------
    r, p : float64[P, Q]
    """
    na = np.linalg.norm(a, axis=0)
    nb = np.linalg.norm(b, axis=0)
    r = (a.T @ b) / np.outer(np.where(na > 0, na, np.inf), np.where(nb > 0, nb, np.inf))
    r = np.clip(r, -1.0, 1.0)
    df = len(a) - n_covariates - 1
    if df < 1:
        raise ValueError(f"{len(a)} subjects leave no degrees of freedom after {n_covariates} covariates")
    with np.errstate(divide="ignore"):
        t = r * np.sqrt(df / np.maximum(1.0 - r * r, 1e-300))
    return r, 2.0 * stats.t.sf(np.abs(t), df)


def gene_pvalues(z: np.ndarray, snp_genes, genes, y: np.ndarray, n_covariates: int, gene_test: str = "min_snp"):
    """Per gene and ROI: association statistic, p and the SNP that gave it.

    Parameters
    ----------
    z : float[N, M]
        Residualised standardised dosages.
    snp_genes : str[M]
        Gene of each SNP.
    genes : sequence of str, length G
    y : float[N, R]
        Residualised log volumes.
    n_covariates : int
    gene_test : {"min_snp", "burden"}

    Returns
    -------
    r, p : float64[G, R]
        Correlation (of the best SNP, or of the burden) and gene-level p; NaN for a gene without SNPs.
    best : object[G, R]
        The SNP index (``min_snp``) or -1.
    """
    if gene_test not in GENE_TESTS:
        raise ValueError(f"gene_test must be one of {GENE_TESTS}, not {gene_test!r}")
    snp_genes = np.asarray(snp_genes)
    g, nr = len(genes), y.shape[1]
    r_out, p_out = np.full((g, nr), np.nan), np.full((g, nr), np.nan)
    best = np.full((g, nr), -1, dtype=np.int64)
    if gene_test == "burden":
        burden = np.stack([z[:, snp_genes == gene].sum(1) for gene in genes], axis=1)
        r, p = correlation_pvalues(burden, y, n_covariates)
        has = np.array([(snp_genes == gene).any() for gene in genes])
        r_out[has], p_out[has] = r[has], p[has]
        return r_out, p_out, best
    r_snp, p_snp = correlation_pvalues(z, y, n_covariates)
    for i, gene in enumerate(genes):
        cols = np.flatnonzero(snp_genes == gene)
        if cols.size == 0:
            continue
        j = p_snp[cols].argmin(axis=0)
        p_min = p_snp[cols][j, np.arange(nr)]
        # 1 - (1 - p)^m without the cancellation of 1 - p near 1.
        p_out[i] = -np.expm1(cols.size * np.log1p(-np.minimum(p_min, 1.0 - 1e-16)))
        r_out[i] = r_snp[cols][j, np.arange(nr)]
        best[i] = cols[j]
    return r_out, p_out, best


def pair_association(dosage: np.ndarray, snp_genes, snp_names, genes, volumes: np.ndarray, rois, labels, *,
                     covariates: np.ndarray | None = None, gene_test: str = "min_snp", stages=TARGET_STAGES,
                     alpha: float = 0.05, min_minor_count: int = 10) -> pd.DataFrame:
    """Within-stage genotype–volume association of every ROI–gene pair, BH over the stage's pairs.

    Parameters
    ----------
    dosage : int[N, M]
        Allele counts of the N subjects (negative: missing).
    snp_genes, snp_names : str[M]
        Gene and ID of each SNP.
    genes : sequence of str, length G
        Genes tested (the panel order; a gene without SNPs gets NaN).
    volumes : float[N, R]
        ROI volumes (mm³ or voxels) of the same subjects; ≤ 0 counts as absent (1 voxel).
    rois : sequence of str, length R
    labels : str[N]
        Stage of each subject.
    covariates : float[N, C], optional
        Further adjustment (age, sex coded 0/1, ...); log total volume and the intercept are always in.
    gene_test : {"min_snp", "burden"}
    stages : sequence of str
    alpha : float
        BH level of ``significant``.
    min_minor_count : int
        Minor-allele count a SNP needs within the stage to be tested.

    Returns
    -------
    DataFrame
        stage, roi, gene, n_subjects, statistic (r), p_value, q_bh, significant, rank (1 = smallest p
        in the stage; ties by |r|), best_snp; R × G rows per stage with at least 5 subjects, ROI-major.
    """
    labels = np.asarray(labels)
    log_volume = np.log(np.maximum(np.asarray(volumes, dtype=np.float64), 1.0))
    total = np.log(np.maximum(np.asarray(volumes, dtype=np.float64), 0.0).sum(1, keepdims=True) + 1.0)
    extra = np.zeros((len(labels), 0)) if covariates is None else np.asarray(covariates, dtype=np.float64)
    snp_names = np.asarray(snp_names, dtype=object)
    out = []
    for stage in stages:
        mask = labels == stage
        n = int(mask.sum())
        if n < 5:
            continue
        cov = design_matrix(np.column_stack([total[mask], extra[mask]]))
        n_cov = np.linalg.matrix_rank(cov)
        y = residualize(log_volume[mask], cov)
        d = np.asarray(dosage)[mask]
        kept = minor_allele_count(d) >= min_minor_count
        z = residualize(standardized(d[:, kept]), cov)
        r, p, best = gene_pvalues(z, np.asarray(snp_genes)[kept], genes, y, n_cov, gene_test)
        if kept.any():  # back from the kept SNPs' columns to the input's
            best = np.where(best >= 0, np.flatnonzero(kept)[np.maximum(best, 0)], -1)
        r, p, best = r.T, p.T, best.T  # [R, G], ROI-major as the attention pairs
        flat_p = p.ravel()
        q = np.full(flat_p.shape, np.nan)
        reject = np.zeros(flat_p.shape, bool)
        ok = np.isfinite(flat_p)
        if ok.any():
            reject[ok], q[ok], _, _ = multipletests(flat_p[ok], alpha=alpha, method="fdr_bh")
        t = pd.DataFrame({"stage": stage, "roi": np.repeat(np.asarray(rois, dtype=object), len(genes)),
                          "gene": np.tile(np.asarray(genes, dtype=object), len(rois)), "n_subjects": n,
                          "statistic": r.ravel(), "p_value": flat_p, "q_bh": q, "significant": reject,
                          "best_snp": np.where(best.ravel() >= 0, snp_names[np.maximum(best.ravel(), 0)], "")})
        order = np.lexsort((-np.abs(np.nan_to_num(t["statistic"].to_numpy())), np.nan_to_num(flat_p, nan=2.0)))
        rank = np.empty(len(t), np.int64)
        rank[order] = np.arange(1, len(t) + 1)
        t["rank"] = rank
        out.append(t)
    if not out:
        raise ValueError(f"fewer than 5 subjects in every stage of {list(stages)}")
    return pd.concat(out, ignore_index=True)


def top_associations(table: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` best-ranked pairs of each stage (smallest p)."""
    return table.sort_values(["stage", "rank"], kind="stable").groupby("stage", sort=False).head(n).reset_index(
        drop=True)
