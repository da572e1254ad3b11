"""Synthetic panel genotypes for the synthetic ADNI-like cohort (written with ``genetics.plink_io``).

The paper (section 4.4.1) keeps the ADNI array SNPs that fall inside a 105-gene
AD panel (~1,500 SNPs) after PLINK QC (``--geno 0.95 --maf 0.05 --hwe 1e-6``).
Real ADNI genotypes cannot be shipped, so the demo cohort gets simulated ones:

* SNP positions inside the panel genes (GRCh37), more SNPs in longer genes;
* valid SNPs under Hardy-Weinberg with realistic allele frequencies, each
  *guaranteed on the realised data* to pass that QC with margin, so a QC stage
  can be judged on removing exactly the planted failures;
* planted failures (``planted`` column): rare SNPs (``low_maf``), strong
  Hardy-Weinberg violations (``hwe``) and near-empty columns (``missing``);
* the two real APOE SNPs (rs429358 = epsilon4, rs7412 = epsilon2), always valid.

Departures from real data: SNPs are independent (no linkage disequilibrium) and
allele frequencies are drawn, not taken from a reference panel. The risk effect
of APOE epsilon4 is planted elsewhere (clinical stage), not here.

Each valid SNP is checked on the realised data with ``genetics.allele_stats`` (independent
re-implementations of PLINK's statistics).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy import stats

from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.allele_stats import allele_summary, hwe_exact_p
from rgenima_lib.genetics.plink_io import BIM_COLUMNS

APOE_SNPS: dict[str, dict] = {
    "rs429358": dict(chrom="19", pos=45411941, a1="C", a2="T", freq=0.14),
    "rs7412": dict(chrom="19", pos=45412079, a1="T", a2="C", freq=0.08),
}
"""The real APOE SNPs (GRCh37). a1 is the counted allele: C of rs429358 marks
epsilon4, T of rs7412 marks epsilon2; freq is a European-ancestry a1 frequency."""

APOE_GENE = "APOE"

BUILD_CHECK_SNPS: dict[str, tuple[str, int, str]] = {
    "rs2075650": ("19", 45395619, "TOMM40"),
    "rs11136000": ("8", 27464519, "CLU"),
    "rs6656401": ("1", 207692049, "CR1"),
    "rs11218343": ("11", 121435587, "SORL1"),
    "rs1801133": ("1", 11856378, "MTHFR"),
    "rs4680": ("22", 19951271, "COMT"),
}
"""Real SNPs (chrom, GRCh37 position, gene) of config/build_reference_snps.tsv, besides APOE's, that the
simulator places so that the genome-build check of panel_extract sees GRCh37 on several chromosomes. Each
takes the place of a drawn SNP of its gene next to it in genomic order (``_place_build_check_snps``), so
that no random draw and no row order changes: the genotypes are those the simulator drew before."""

VARIANT_COLUMNS = (*BIM_COLUMNS, "gene", "freq_a1", "planted")
PLANTED_KINDS = ("low_maf", "hwe", "missing")
_PANEL_COLUMNS = ("gene", "chrom", "start_grch37", "end_grch37")

# The QC the planted failures are designed against (docs/design.md, "Genetics QC").
QC_GENO, QC_MAF, QC_HWE = 0.95, 0.05, 1e-6
# Margins every valid SNP keeps on the realised data, so small cohorts cannot
# let a valid SNP drift across a QC threshold by chance.
VALID_MIN_MAF, VALID_MIN_HWE_P, VALID_MAX_MISSING = 0.07, 1e-3, 0.05
VALID_FREQ_RANGE = (0.08, 0.5)
# Beta(0.9, 2.2) truncated to VALID_FREQ_RANGE: more SNPs at low than at
# intermediate frequency, as on genotyping arrays.
VALID_FREQ_BETA = (0.9, 2.2)
VALID_MAX_RATE_MISSING = 0.03
VALID_FRACTION_NO_MISSING = 0.3
LOW_MAF_RANGE = (0.002, 0.04)
HWE_PLANTED_MAX_P = 1e-8
MISSING_PLANTED_MIN_PERCENT = 97
PLANTED_FRACTION = {"low_maf": 0.04, "hwe": 0.02, "missing": 0.002}
MIN_SNPS_PER_GENE = 2
# Every gene keeps this many valid SNPs, so no gene vanishes after QC.
MIN_VALID_PER_GENE = 2
# A sanity floor (tested down to 8). Below 20 subjects one missing call already
# exceeds 5 %, so valid SNPs are then complete; below 13 'low_maf' SNPs are monomorphic.
MIN_SUBJECTS = 8
MAX_REDRAWS = 200

# Strand-ambiguous pairs (A/T, C/G) are avoided, as array designs mostly do, so
# that later strand alignment against a reference never has to guess.
_ALLELE_PAIRS = (("A", "C"), ("A", "G"), ("T", "C"), ("T", "G"),
                 ("C", "A"), ("G", "A"), ("C", "T"), ("G", "T"))


# --------------------------------------------------------------------------
# Layout: how many SNPs where, which are planted
# --------------------------------------------------------------------------

def snps_per_gene(length_bp: np.ndarray, n_variants: int) -> np.ndarray:
    """Split ``n_variants`` over genes, growing with sqrt(gene length).

    Parameters
    ----------
    length_bp : int[n_genes]
        Gene lengths (end - start).
    n_variants : int
        Total, at least ``MIN_SNPS_PER_GENE * n_genes``.

    Returns
    -------
    int64[n_genes]
        Counts, each >= ``MIN_SNPS_PER_GENE``, summing to ``n_variants``.

    Notes
    -----
    Array SNP density is not uniform along the genome, and the paper's ~1,500
    SNPs over 105 genes (some > 1 Mb) would otherwise pile into a few huge
    genes; sqrt is a sub-linear compromise. Largest-remainder rounding.
    """
    length_bp = np.asarray(length_bp, dtype=np.float64)
    base = np.full(len(length_bp), MIN_SNPS_PER_GENE, dtype=np.int64)
    extra = n_variants - base.sum()
    weights = np.sqrt(length_bp)
    exact = extra * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: extra - counts.sum()]] += 1
    return base + counts


def _draw_positions(start: int, end: int, k: int, used: set[int],
                    rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct positions strictly inside (start, end), none in ``used``."""
    n_inside = end - start - 1
    free = n_inside - sum(start < p < end for p in used)
    if k > free:
        raise InputDataError(f"gene spanning {start}-{end} cannot hold {k} distinct SNPs",
                             fix="lower n_variants.")
    chosen: list[int] = []
    while len(chosen) < k:
        # Overlapping genes are the only source of clashes, so one or two rounds suffice.
        draw = start + 1 + rng.choice(n_inside, size=k - len(chosen), replace=False)
        for p in draw.tolist():
            if p not in used:
                used.add(p)
                chosen.append(p)
    return np.sort(np.array(chosen, dtype=np.int64))


def _layout_variants(gene_panel: pd.DataFrame, n_variants: int,
                     rng: np.random.Generator) -> pd.DataFrame:
    """Variant table (no frequencies yet), sorted by chrom then pos."""
    counts = snps_per_gene((gene_panel["end_grch37"] - gene_panel["start_grch37"]).to_numpy(),
                           n_variants)
    used = {v["pos"] for v in APOE_SNPS.values()}
    rows = []
    for (_, gene), k in zip(gene_panel.iterrows(), counts):
        chrom = str(gene["chrom"]).removeprefix("chr")
        start, end = int(gene["start_grch37"]), int(gene["end_grch37"])
        if gene["gene"] == APOE_GENE:
            for rsid, snp in APOE_SNPS.items():
                rows.append(dict(chrom=chrom, snp=rsid, pos=snp["pos"], a1=snp["a1"],
                                 a2=snp["a2"], gene=APOE_GENE, apoe=True))
            k -= len(APOE_SNPS)
        pairs = rng.integers(len(_ALLELE_PAIRS), size=k)
        for pos, pair in zip(_draw_positions(start, end, k, used, rng), pairs):
            a1, a2 = _ALLELE_PAIRS[pair]
            # Synthetic rsID from position: unique, stable across n_variants, and the
            # leading 9 keeps it clear of the real rsIDs in use today.
            rows.append(dict(chrom=chrom, snp=f"rs9{int(chrom):02d}{pos:09d}", pos=int(pos),
                             a1=a1, a2=a2, gene=gene["gene"], apoe=False))
    variants = pd.DataFrame(rows)
    variants["cm"] = 0.0
    variants["chrom_num"] = variants["chrom"].astype(int)
    variants = variants.sort_values(["chrom_num", "pos"], kind="stable", ignore_index=True)
    return _place_build_check_snps(variants.drop(columns="chrom_num"))


def _place_build_check_snps(variants: pd.DataFrame) -> pd.DataFrame:
    """Move one drawn SNP per ``BUILD_CHECK_SNPS`` entry to the real SNP's GRCh37 position and rsID.

    The SNP replaced is a non-APOE SNP of the same gene adjacent to the real
    position in genomic order (the nearer of the two neighbours), so the table
    stays sorted without reordering and no random number is drawn. A real SNP
    whose gene is absent, or whose neighbours both belong to other genes, is
    skipped.
    """
    variants = variants.copy()
    for rsid, (chrom, pos, gene) in BUILD_CHECK_SNPS.items():
        if rsid in set(variants["snp"]):
            continue
        on_chrom = np.flatnonzero(variants["chrom"].to_numpy() == chrom)
        if on_chrom.size == 0 or pos in set(variants["pos"].to_numpy()[on_chrom]):
            continue
        positions = variants["pos"].to_numpy()[on_chrom]
        k = int(np.searchsorted(positions, pos))  # positions[k - 1] < pos < positions[k]
        candidates = [on_chrom[j] for j in (k - 1, k) if 0 <= j < on_chrom.size]
        candidates = [i for i in candidates
                      if variants.at[i, "gene"] == gene and not variants.at[i, "apoe"]]
        if not candidates:
            continue
        i = min(candidates, key=lambda i: abs(int(variants.at[i, "pos"]) - pos))
        variants.at[i, "snp"], variants.at[i, "pos"] = rsid, pos
    return variants


def planted_counts(n_variants: int, n_subjects: int) -> dict[str, int]:
    """How many SNPs of each planted kind: ~4 % low MAF, ~2 % HWE, ~0.2 % missing, >= 1 each.

    Below ``hwe_min_subjects()`` (28) subjects no het-free SNP can reach
    p < 1e-8 (at 16 subjects the most extreme table gives p = 2e-5, which
    ``--hwe 1e-6`` keeps), so no 'hwe' SNP is planted there.
    """
    counts = {kind: max(1, int(round(frac * n_variants))) for kind, frac in PLANTED_FRACTION.items()}
    if n_subjects < hwe_min_subjects():
        counts["hwe"] = 0
    return counts


def _choose_planted(variants: pd.DataFrame, n_subjects: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``planted`` labels (str[n_variants]): random non-APOE SNPs, each gene keeping valid ones."""
    eligible = []
    for _, rows in variants.groupby("gene", sort=False):
        candidates = np.array(rows.index[~rows["apoe"].to_numpy()])
        n_reserved = max(0, MIN_VALID_PER_GENE - int(rows["apoe"].sum()))
        # Reserve random valid SNPs in each gene; the rest may be planted.
        eligible.extend(rng.permutation(candidates)[n_reserved:].tolist())
    counts = planted_counts(len(variants), n_subjects)
    if sum(counts.values()) > len(eligible):
        raise InputDataError(
            f"{len(variants)} variants leave room for {len(eligible)} planted failures, "
            f"{sum(counts.values())} needed",
            fix=f"use n_variants >= {MIN_VALID_PER_GENE * variants['gene'].nunique() + sum(counts.values())}.")
    chosen = rng.choice(np.sort(np.array(eligible)), size=sum(counts.values()), replace=False)
    planted = np.full(len(variants), "", dtype=object)
    planted[chosen] = np.repeat(list(counts), list(counts.values()))
    return planted


# --------------------------------------------------------------------------
# Genotypes
# --------------------------------------------------------------------------

def _valid_freqs(n: int, rng: np.random.Generator) -> np.ndarray:
    """float64[n] a1 frequencies: Beta truncated to VALID_FREQ_RANGE (inverse CDF)."""
    dist = stats.beta(*VALID_FREQ_BETA)
    lo, hi = dist.cdf(VALID_FREQ_RANGE)
    return dist.ppf(rng.uniform(lo, hi, size=n))


def _missing_mask(n_subjects: int, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool[n_subjects, n_snps] missing calls, each SNP at its own rate."""
    return rng.random((n_subjects, len(rates))) < rates


def _missing_rates(n: int, rng: np.random.Generator) -> np.ndarray:
    """float64[n] per-SNP missing rates in [0, 3 %], a share of them exactly 0."""
    rates = rng.uniform(0.0, VALID_MAX_RATE_MISSING, size=n)
    rates[rng.random(n) < VALID_FRACTION_NO_MISSING] = 0.0
    return rates


def _hwe_genotypes(freqs: np.ndarray, miss_rates: np.ndarray, n_subjects: int,
                   rng: np.random.Generator) -> np.ndarray:
    """int8[n_subjects, n_snps] a1 counts under HWE, -1 where missing."""
    dosage = rng.binomial(2, freqs, size=(n_subjects, len(freqs))).astype(np.int8)
    dosage[_missing_mask(n_subjects, miss_rates, rng)] = -1
    return dosage


def _passes_valid_margins(summary: pd.DataFrame) -> np.ndarray:
    """bool[n_snps]: the realised SNP clears every QC threshold with margin."""
    return ((summary["maf"] >= VALID_MIN_MAF) & (summary["hwe_p"] >= VALID_MIN_HWE_P)
            & (summary["missing_frac"] <= VALID_MAX_MISSING)).to_numpy()


def _simulate_valid(fixed_freqs: np.ndarray, n_subjects: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Valid SNPs, redrawn until each passes QC with margin.

    Parameters
    ----------
    fixed_freqs : float64[n_snps]
        a1 frequency to keep (APOE) or NaN to draw one (redrawn with the SNP).

    Returns
    -------
    dosage : int8[n_subjects, n_snps]
    freqs : float64[n_snps]
        The true frequencies used.
    """
    n = len(fixed_freqs)
    freqs = np.where(np.isnan(fixed_freqs), 0.0, fixed_freqs)
    dosage = np.empty((n_subjects, n), dtype=np.int8)
    todo = np.arange(n)
    for _ in range(MAX_REDRAWS):
        drawn = _valid_freqs(len(todo), rng)
        freqs[todo] = np.where(np.isnan(fixed_freqs[todo]), drawn, fixed_freqs[todo])
        dosage[:, todo] = _hwe_genotypes(freqs[todo], _missing_rates(len(todo), rng),
                                         n_subjects, rng)
        todo = todo[~_passes_valid_margins(allele_summary(dosage[:, todo]))]
        if len(todo) == 0:
            return dosage, freqs
    raise InputDataError(f"{len(todo)} valid SNPs still fail QC margins after {MAX_REDRAWS} draws "
                         f"with {n_subjects} subjects", fix="use more subjects.")


def _simulate_low_maf(n_snps: int, n_subjects: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rare SNPs: realised MAF in LOW_MAF_RANGE, >= 1 minor copy, all carriers heterozygous."""
    freqs = rng.uniform(*LOW_MAF_RANGE, size=n_snps)
    dosage = np.zeros((n_subjects, n_snps), dtype=np.int8)
    dosage[_missing_mask(n_subjects, _missing_rates(n_snps, rng), rng)] = -1
    for j in range(n_snps):
        if 1 / (2 * (dosage[:, j] >= 0).sum()) > LOW_MAF_RANGE[1]:
            # Small cohort: missing calls would leave no room for one copy below 0.04.
            dosage[:, j] = 0
        called = np.flatnonzero(dosage[:, j] >= 0)
        n_alleles = 2 * len(called)
        lo = max(1, int(np.ceil(LOW_MAF_RANGE[0] * n_alleles)))
        hi = int(np.floor(LOW_MAF_RANGE[1] * n_alleles))
        # hi == 0 only below 13 subjects: the SNP is then monomorphic (MAF 0).
        copies = int(np.clip(round(freqs[j] * n_alleles), lo, hi)) if hi >= 1 else 0
        # Rare alleles occur in heterozygous carriers; no HWE failure on top of the MAF one.
        dosage[rng.choice(called, size=copies, replace=False), j] = 1
    return dosage, freqs


def _simulate_hwe_violation(n_snps: int, n_subjects: int,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HWE failures: common SNPs with no heterozygotes (e.g. a mis-clustered array probe)."""
    freqs = rng.uniform(0.25, 0.5, size=n_snps)
    dosage = np.zeros((n_subjects, n_snps), dtype=np.int8)
    for j in range(n_snps):
        col = np.where(rng.random(n_subjects) < freqs[j], 2, 0).astype(np.int8)
        col[_missing_mask(n_subjects, _missing_rates(1, rng), rng)[:, 0]] = -1
        dosage[:, j] = _deepen_hwe_violation(col, rng)
    return dosage, freqs


def _deepen_hwe_violation(col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move a het-free int8[n_subjects] column towards balanced homozygotes until p < 1e-8.

    Balancing the two homozygote classes, then calling missing subjects, are
    the only moves that lower the p-value of a het-free SNP; in small cohorts
    the first draw may not be extreme enough.
    """
    for _ in range(2 * len(col) + 1):
        counts = allele_summary(col[:, None]).iloc[0]
        if counts["hwe_p"] < HWE_PLANTED_MAX_P and counts["maf"] >= QC_MAF:
            return col
        rarer, common = (2, 0) if counts["hom_a1"] < counts["hom_a2"] else (0, 2)
        if counts["hom_a2"] - counts["hom_a1"] > 1 or counts["hom_a1"] - counts["hom_a2"] > 1:
            col[rng.choice(np.flatnonzero(col == common))] = rarer
        elif counts["n_missing"] > 0:
            col[rng.choice(np.flatnonzero(col < 0))] = rarer
        else:
            break
    raise InputDataError(f"cannot plant an HWE failure with {len(col)} subjects",
                         fix=f"use at least {hwe_min_subjects()} subjects.")


def hwe_min_subjects() -> int:
    """Smallest cohort in which a het-free SNP can reach HWE p < 1e-8 (28)."""
    n = 2
    while hwe_exact_p(0, n // 2, n - n // 2) >= HWE_PLANTED_MAX_P:
        n += 1
    return n


def _simulate_missing(n_snps: int, n_subjects: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Near-empty SNPs: > 97 % missing calls, the few calls under HWE."""
    # Largest call count strictly below 3 % of the cohort, in integers: the float
    # 0.03 * 300 rounds up to 9.000000000000002 and would allow exactly 97 % missing.
    max_calls = ((100 - MISSING_PLANTED_MIN_PERCENT) * n_subjects - 1) // 100
    freqs = _valid_freqs(n_snps, rng)
    dosage = np.full((n_subjects, n_snps), -1, dtype=np.int8)
    for j in range(n_snps):
        n_calls = int(rng.integers(min(1, max_calls), max_calls + 1))
        called = rng.choice(n_subjects, size=n_calls, replace=False)
        dosage[called, j] = rng.binomial(2, freqs[j], size=n_calls)
    return dosage, freqs


_PLANTERS = {"low_maf": _simulate_low_maf, "hwe": _simulate_hwe_violation,
             "missing": _simulate_missing}


def _check_panel(gene_panel: pd.DataFrame, n_subjects: int, n_variants: int) -> None:
    """Raise InputDataError for a panel or sizes the simulation cannot honour."""
    missing = [c for c in _PANEL_COLUMNS if c not in gene_panel.columns]
    if missing:
        raise InputDataError(f"gene panel lacks columns {missing}",
                             fix="use config/gene_panel.tsv's columns.")
    if APOE_GENE not in set(gene_panel["gene"]):
        raise InputDataError("gene panel has no APOE row", fix="add APOE (chr19, GRCh37).")
    if not gene_panel["gene"].is_unique:
        raise InputDataError("gene panel has duplicate gene names", fix="keep one row per gene.")
    if n_subjects < MIN_SUBJECTS:
        raise InputDataError(f"n_subjects = {n_subjects} is too small to plant and guarantee QC outcomes",
                             fix=f"use at least {MIN_SUBJECTS} subjects.")
    chrom = gene_panel["chrom"].astype(str).str.removeprefix("chr")
    if not chrom.str.fullmatch(r"\d+").all() or not chrom.astype(int).between(1, 22).all():
        raise InputDataError("gene panel has non-autosomal chromosomes",
                             fix="keep genes on chromosomes 1-22 (HWE and dosage here assume diploidy).")
    minimum = MIN_SNPS_PER_GENE * len(gene_panel)
    if n_variants < minimum:
        raise InputDataError(f"n_variants = {n_variants} < {MIN_SNPS_PER_GENE} per gene x "
                             f"{len(gene_panel)} genes", fix=f"use n_variants >= {minimum}.")


def simulate_panel_genotypes(gene_panel: pd.DataFrame, n_subjects: int, n_variants: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulate genotypes of panel SNPs, with planted QC failures (paper 4.4.1).

    Parameters
    ----------
    gene_panel : DataFrame
        ``config/gene_panel.tsv`` (gene, chrom, start_grch37, end_grch37, ...).
    n_subjects : int
        Cohort size, >= ``MIN_SUBJECTS``.
    n_variants : int
        Total SNPs (valid + planted), ~1,500 at the paper's scale.
    rng : numpy.random.Generator
        The only source of randomness: same seed, same output.

    Returns
    -------
    dosage : int8[n_subjects, n_variants]
        Count of allele a1 (0/1/2), -1 = missing.
    variants : DataFrame, n_variants rows in chrom (numeric) then pos order
        ``chrom`` (str, no "chr"), ``snp`` (unique rsID), ``cm`` (0.0), ``pos``
        (int64, GRCh37, strictly inside the gene), ``a1`` (counted, minor in
        the population), ``a2``, ``gene``, ``freq_a1`` (true population
        frequency used), ``planted`` ("" = valid, or "low_maf", "hwe", "missing").

    Notes
    -----
    Valid SNPs satisfy, on the realised data, MAF >= 0.07, HWE exact
    p >= 1e-3 and missing <= 5 % (redrawn otherwise), so PLINK's
    ``--geno 0.95 --maf 0.05 --hwe 1e-6`` removes exactly the planted SNPs:
    ``low_maf`` (realised MAF in [0.002, 0.04]), ``hwe`` (no heterozygotes,
    p < 1e-8, MAF >= 0.05) and ``missing`` (> 97 % missing). Counts follow
    ``planted_counts``; cohorts under 28 subjects get no ``hwe`` SNP (it
    cannot reach p < 1e-8 there) and, under 13, monomorphic ``low_maf`` SNPs.
    Planted SNPs avoid the APOE SNPs and leave every gene >= 2 valid SNPs.
    """
    _check_panel(gene_panel, n_subjects, n_variants)
    variants = _layout_variants(gene_panel, n_variants, rng)
    variants["planted"] = _choose_planted(variants, n_subjects, rng)

    dosage = np.empty((n_subjects, n_variants), dtype=np.int8)
    freq_a1 = np.empty(n_variants, dtype=np.float64)
    valid = np.flatnonzero(variants["planted"].to_numpy() == "")
    fixed = variants["snp"].map({k: v["freq"] for k, v in APOE_SNPS.items()}).to_numpy(np.float64)
    dosage[:, valid], freq_a1[valid] = _simulate_valid(fixed[valid], n_subjects, rng)
    for kind in PLANTED_KINDS:
        cols = np.flatnonzero(variants["planted"].to_numpy() == kind)
        dosage[:, cols], freq_a1[cols] = _PLANTERS[kind](len(cols), n_subjects, rng)

    variants["freq_a1"] = freq_a1
    variants["planted"] = variants["planted"].astype(str)
    return dosage, variants.loc[:, list(VARIANT_COLUMNS)]
