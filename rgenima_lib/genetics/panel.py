"""The gene panel and the genotype files' variants: checks and SNP-to-gene mapping.

Paper 4.4.1 keeps the SNPs of 105 AD candidate genes (``config/gene_panel.tsv``,
GRCh37). A variant belongs to the panel when it lies inside a gene's body
extended by a window on both sides (``genetics.window_kb``; the paper states no
window, so the default is 0: the gene body).

Input checks, and what each does with bad input:

* chromosome names: ``chr19``, ``CHR19`` and ``19`` are the same chromosome,
  normalised to ``19`` (PLINK 2 does the same when it reads a ``.bim``); PLINK's
  numeric codes 23-26 become X, Y, XY, MT. Mixed naming is accepted.
* genome build: the APOE SNPs rs429358 / rs7412 must sit at their GRCh37
  positions; at their GRCh38 or NCBI36 positions, or anywhere else, the stage
  stops and says which build the file looks like. Without either SNP the build
  cannot be checked and a note says so.
* alleles: a panel variant whose alleles are not single A/C/G/T bases (indels
  coded I/D, multi-base alleles, a ``0`` allele of a monomorphic SNP) is
  removed and counted in the QC report (``removed_alleles``); a file coded
  1/2/3/4 is refused (recode it with ``plink --alleleACGT``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.cohort.genotypes import APOE_SNPS
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import read_tsv

PANEL_COLUMNS = ("gene", "chrom", "start_grch37", "end_grch37")
BIM_COLUMNS = ("chrom", "snp", "cm", "pos", "a1", "a2")

# PLINK's numeric codes for the non-autosomes.
_PLINK_CHROM_CODES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}

# Positions of the APOE SNPs in the other builds a genotype file may be in.
APOE_OTHER_BUILDS: dict[str, dict[str, int]] = {
    "GRCh38": {"rs429358": 44908684, "rs7412": 44908822},
    "NCBI36 (hg18)": {"rs429358": 50103781, "rs7412": 50103919},
}

ACGT = frozenset("ACGT")


def normalise_chrom(values) -> pd.Series:
    """Chromosome names without a ``chr`` prefix, PLINK numeric codes 23-26 as X / Y / XY / MT.

    Parameters
    ----------
    values : array-like of str, length n

    Returns
    -------
    Series of str, length n (``chr19`` -> ``19``, ``chrX`` -> ``X``, ``23`` -> ``X``).
    """
    chrom = pd.Series(values, dtype=str).str.strip()
    chrom = chrom.str.replace(r"^(?i:chr)", "", regex=True).str.upper()
    return chrom.replace(_PLINK_CHROM_CODES)


def read_gene_panel(path) -> pd.DataFrame:
    """Read and check ``config/gene_panel.tsv``.

    Returns
    -------
    DataFrame, one row per gene in file order (the canonical gene-block order
    of the SNP text): gene, chrom (normalised str), start_grch37, end_grch37
    (int, 1-based inclusive), gwas_ad (int 0/1; 0 when the column is absent).
    """
    panel = read_tsv(path, dtype={"chrom": str})
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise InputDataError(f"gene panel lacks column(s) {', '.join(missing)}.", path=path,
                             fix=f"give the columns {', '.join(PANEL_COLUMNS)} (GRCh37, 1-based).")
    dup = panel["gene"][panel["gene"].duplicated()].tolist()
    if dup:
        raise InputDataError(f"gene panel lists {', '.join(dup)} more than once.", path=path,
                             fix="keep one row per gene.")
    bad = panel["gene"][panel["end_grch37"] < panel["start_grch37"]].tolist()
    if bad:
        raise InputDataError(f"gene(s) {', '.join(bad)} end before they start.", path=path,
                             fix="give start_grch37 <= end_grch37.")
    out = panel.loc[:, list(PANEL_COLUMNS)].copy()
    out["chrom"] = normalise_chrom(out["chrom"]).to_numpy()
    out["start_grch37"] = out["start_grch37"].astype(np.int64)
    out["end_grch37"] = out["end_grch37"].astype(np.int64)
    out["gwas_ad"] = panel["gwas_ad"].astype(int) if "gwas_ad" in panel.columns else 0
    return out.reset_index(drop=True)


def read_bim(path) -> pd.DataFrame:
    """Read a PLINK ``.bim``.

    Returns
    -------
    DataFrame, one row per variant in file order: chrom (normalised), chrom_raw
    (as written), snp, cm, pos (int64), a1, a2 (str, upper case).
    """
    try:
        bim = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputDataError(".bim holds no variants.", path=path, fix="pass the PLINK trio of your genotypes.")
    if bim.shape[1] != 6:
        raise InputDataError(f"expected 6 columns (chrom, ID, cM, position, allele 1, allele 2), found {bim.shape[1]}.",
                             path=path, fix="pass the .bim of a PLINK 1 binary trio.")
    bim.columns = list(BIM_COLUMNS)
    out = pd.DataFrame({
        "chrom": normalise_chrom(bim["chrom"]).to_numpy(), "chrom_raw": bim["chrom"].to_numpy(),
        "snp": bim["snp"].to_numpy(), "cm": bim["cm"].to_numpy(),
        "pos": pd.to_numeric(bim["pos"], errors="coerce").to_numpy(),
        "a1": bim["a1"].str.upper().to_numpy(), "a2": bim["a2"].str.upper().to_numpy(),
    })
    if out["pos"].isna().any():
        row = int(np.flatnonzero(out["pos"].isna())[0])
        raise InputDataError(f"variant {out['snp'][row]} has a non-numeric position.", path=path,
                             fix="repair the .bim (column 4 is the base-pair position).")
    out["pos"] = out["pos"].astype(np.int64)
    return out


def gene_windows(panel: pd.DataFrame, window_bp: int) -> pd.DataFrame:
    """Each gene's body extended by ``window_bp`` on both sides (1-based, inclusive).

    Returns
    -------
    DataFrame gene, chrom, start, end (start clipped at 1), in panel order.
    """
    if window_bp < 0:
        raise ValueError(f"window must be >= 0 bp, got {window_bp}")
    return pd.DataFrame({
        "gene": panel["gene"].to_numpy(), "chrom": panel["chrom"].to_numpy(),
        "start": np.maximum(panel["start_grch37"].to_numpy() - window_bp, 1),
        "end": panel["end_grch37"].to_numpy() + window_bp,
    })


def map_variants_to_genes(bim: pd.DataFrame, panel: pd.DataFrame, window_bp: int) -> pd.DataFrame:
    """Assign every variant to at most one panel gene.

    Parameters
    ----------
    bim : DataFrame, n_variants rows
        From ``read_bim`` (normalised chrom, pos).
    panel : DataFrame
        From ``read_gene_panel``.
    window_bp : int
        Bases added on both sides of each gene body.

    Returns
    -------
    DataFrame, n_variants rows in ``bim`` order: gene ('' outside every
    window), distance_bp (0 inside the body, else distance to it; -1 outside).

    Notes
    -----
    A variant inside two windows (close genes such as APOE / TOMM40 / APOC1 once
    a window is added) goes to the nearer gene body, ties to the gene listed
    first in the panel, so that gene blocks in the text never share a SNP.
    Positions are searched per chromosome on sorted arrays: O(n log n) for an
    array-wide ``.bim``.
    """
    gene = np.full(len(bim), "", dtype=object)
    best = np.full(len(bim), np.iinfo(np.int64).max, dtype=np.int64)
    chrom = bim["chrom"].to_numpy()
    pos = bim["pos"].to_numpy(np.int64)
    for c, genes in panel.groupby("chrom", sort=False):
        idx = np.flatnonzero(chrom == c)
        if idx.size == 0:
            continue
        order = idx[np.argsort(pos[idx], kind="stable")]
        sorted_pos = pos[order]
        for _, g in genes.iterrows():
            lo = np.searchsorted(sorted_pos, max(g["start_grch37"] - window_bp, 1), side="left")
            hi = np.searchsorted(sorted_pos, g["end_grch37"] + window_bp, side="right")
            hits = order[lo:hi]
            dist = np.maximum(np.maximum(g["start_grch37"] - pos[hits], pos[hits] - g["end_grch37"]), 0)
            # Strictly nearer only: panel order breaks ties (genes are visited in panel order).
            take = dist < best[hits]
            gene[hits[take]] = g["gene"]
            best[hits[take]] = dist[take]
    return pd.DataFrame({"gene": gene, "distance_bp": np.where(gene == "", -1, best)})


def acgt_alleles(bim: pd.DataFrame) -> np.ndarray:
    """bool[n_variants]: both alleles are single A/C/G/T bases."""
    return (bim["a1"].isin(ACGT) & bim["a2"].isin(ACGT)).to_numpy()


def check_allele_coding(bim: pd.DataFrame, path) -> None:
    """Refuse a file whose alleles are coded 1/2/3/4 instead of A/C/G/T.

    Individual non-ACGT variants are not refused here: the caller removes and
    reports them. Only a file-wide numeric coding is an error, since it would
    otherwise silently remove every SNP.
    """
    if len(bim) == 0:
        return
    numeric = bim["a1"].isin(["0", "1", "2", "3", "4"]) & bim["a2"].isin(["0", "1", "2", "3", "4"])
    if numeric.mean() > 0.5:
        raise InputDataError(
            f"{int(numeric.sum())} of {len(bim)} panel variants have alleles coded 1/2/3/4, not A/C/G/T.",
            path=path, fix="recode the trio with 'plink --bfile <prefix> --alleleACGT --make-bed --out <new>'.")


def check_build(bim: pd.DataFrame, path) -> list[str]:
    """Check that the APOE SNPs sit at their GRCh37 positions (the panel's build).

    Parameters
    ----------
    bim : DataFrame
        From ``read_bim`` (the whole file: the SNPs are found by rsID).
    path : str
        The ``.bim``, for messages.

    Returns
    -------
    list of str
        Notes (empty when the build was confirmed).

    Raises
    ------
    InputDataError
        An APOE SNP on another chromosome or position; names the build it
        matches (GRCh38, NCBI36) when it does.
    """
    found = bim[bim["snp"].isin(list(APOE_SNPS))]
    if found.empty:
        return [f"cannot confirm the genome build: neither APOE SNP ({', '.join(APOE_SNPS)}) is in {path}; "
                "the panel assumes GRCh37 positions"]
    for _, row in found.iterrows():
        expected = APOE_SNPS[row["snp"]]
        if row["chrom"] == expected["chrom"] and row["pos"] == expected["pos"]:
            continue
        builds = [b for b, posmap in APOE_OTHER_BUILDS.items()
                  if row["chrom"] == "19" and row["pos"] == posmap[row["snp"]]]
        looks = f"; that is its {builds[0]} position, so the file looks like {builds[0]}" if builds else ""
        raise InputDataError(
            f"build mismatch: APOE SNP {row['snp']} is at chr{row['chrom']}:{row['pos']}, not at its GRCh37 "
            f"position chr{expected['chrom']}:{expected['pos']}{looks}. The gene panel is GRCh37.",
            path=path, fix="lift the genotypes over to GRCh37 (e.g. UCSC liftOver on the .bim positions, then "
                           "plink2 --update-map), or give a GRCh37 export.")
    return []
