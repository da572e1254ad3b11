"""The gene panel and the genotype files' variants: checks and SNP-to-gene mapping.

Paper 4.4.1 keeps the SNPs of 105 AD candidate genes (``config/gene_panel.tsv``,
GRCh37). A variant belongs to the panel when it lies inside a gene's body
extended by a window on both sides (``genetics.window_kb``; the paper states no
window, so the default is 0: the gene body).

Input checks, and what each does with bad input:

* chromosome names: ``chr19``, ``CHR19`` and ``19`` are the same chromosome,
  normalised to ``19`` (PLINK 2 does the same when it reads a ``.bim``); PLINK's
  numeric codes 23-26 become X, Y, XY, MT. Mixed naming is accepted.
* genome build (``check_build``): every reference SNP of
  ``config/build_reference_snps.tsv`` (31 AD GWAS lead and common array SNPs,
  positions in GRCh37, GRCh38 and NCBI36) that the ``.bim`` holds, found by
  rsID or by a ``chr:pos`` style ID, votes for the build its position matches.
  At least 90 % at GRCh37: go on (the count is logged); most at another build:
  stop naming it, with examples and the lift-over fix; none present: stop
  unless ``genetics.assume_build: GRCh37``. Independently of the IDs, a file
  leaving most panel genes without a variant stops (``check_gene_coverage``).
* alleles: a panel variant whose alleles are not single A/C/G/T bases (indels
  coded I/D, multi-base alleles, a ``0`` allele of a monomorphic SNP) is
  removed and counted in the QC report (``removed_alleles``); a file coded
  1/2/3/4 is refused (recode it with ``plink --alleleACGT``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.plink_io import BIM_COLUMNS
from rgenima_lib.io import read_tsv

PANEL_COLUMNS = ("gene", "chrom", "start_grch37", "end_grch37")

# PLINK's numeric codes for the non-autosomes.
_PLINK_CHROM_CODES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}

ACGT = frozenset("ACGT")

log = logging.getLogger("rgenima")

REFERENCE_SNPS_PATH = Path(__file__).resolve().parents[2] / "config" / "build_reference_snps.tsv"
"""The reference SNP table shipped with the pipeline (``genetics.build_reference_snps``)."""

BUILDS = ("GRCh37", "GRCh38", "NCBI36")
"""Genome builds the reference table knows, the panel's first."""

BUILD_COLUMNS = {"GRCh37": "pos_grch37", "GRCh38": "pos_grch38", "NCBI36": "pos_ncbi36"}
BUILD_NAMES = {"GRCh37": "GRCh37 (hg19)", "GRCh38": "GRCh38 (hg38)", "NCBI36": "NCBI36 (hg18)"}

GRCH37_MIN_FRACTION = 0.9
"""Share of the reference SNPs found that must sit at their GRCh37 positions for the build to pass."""

REFERENCE_COLUMNS = ("rsid", "chrom", "pos_grch37", "pos_grch38", "pos_ncbi36", "gene")

# Chromosome parts of a positional ID (19:45411941, chr19:45411941:C:T, 19_45411941, chrX:123), lower case.
_POSITIONAL_CHROMS = frozenset([str(i) for i in range(1, 27)] + ["x", "y", "xy", "mt", "m"])


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




# --------------------------------------------------------------------------
# Genome build
# --------------------------------------------------------------------------

def read_reference_snps(path=None) -> pd.DataFrame:
    """Read the build reference table (``config/build_reference_snps.tsv``).

    Parameters
    ----------
    path : str or Path, optional
        Default: the table shipped with the pipeline (``REFERENCE_SNPS_PATH``).

    Returns
    -------
    DataFrame, one row per SNP: rsid (lower-case ``rs...``), chrom (normalised),
    pos_grch37 (int64), pos_grch38, pos_ncbi36 (nullable Int64; NA where a
    build's position is unknown), gene.
    """
    path = REFERENCE_SNPS_PATH if path is None else Path(path)
    if not Path(path).is_file():
        raise InputDataError("genome-build reference table not found.", path=path,
                             fix="point genetics.build_reference_snps at config/build_reference_snps.tsv.")
    table = read_tsv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise InputDataError(f"reference SNP table lacks column(s) {', '.join(missing)}.", path=path,
                             fix=f"give the columns {', '.join(REFERENCE_COLUMNS)}.")
    out = pd.DataFrame({"rsid": table["rsid"].str.strip().str.lower(),
                        "chrom": normalise_chrom(table["chrom"]).to_numpy(), "gene": table["gene"].to_numpy()})
    for build, column in BUILD_COLUMNS.items():
        values = pd.to_numeric(table[column].replace("", None), errors="coerce").astype("Int64")
        if build == "GRCh37" and values.isna().any():
            row = int(np.flatnonzero(values.isna())[0])
            raise InputDataError(f"reference SNP {out['rsid'][row]} has no GRCh37 position.", path=path,
                                 fix="give every row its pos_grch37 (the panel's build).")
        out[column] = values.astype(np.int64) if build == "GRCh37" else values
    if out["rsid"].duplicated().any():
        raise InputDataError(f"reference SNP {out['rsid'][out['rsid'].duplicated()].iloc[0]} is listed twice.",
                             path=path, fix="keep one row per rsID.")
    return out


def reference_positions(reference: pd.DataFrame, gene: str, build: str = "GRCh37") -> dict[str, int]:
    """rsID -> position in ``build`` of the reference SNPs of one gene (e.g. APOE's rs429358 / rs7412)."""
    rows = reference[(reference["gene"] == gene) & reference[BUILD_COLUMNS[build]].notna()]
    return {r: int(p) for r, p in zip(rows["rsid"], rows[BUILD_COLUMNS[build]])}


def parse_variant_ids(ids) -> pd.DataFrame:
    """What a variant ID says: an rsID, or a chromosome and position.

    Parameters
    ----------
    ids : array-like of str, length n
        ``.bim`` column 2.

    Returns
    -------
    DataFrame, n rows: rsid (lower-case, '' when the ID is not an rsID), chrom
    (normalised, '' when the ID is not positional), pos (int64, -1 when not
    positional). ``rs429358`` and ``rs429358:C:T`` give an rsID;
    ``19:45411941``, ``chr19:45411941:C:T`` and ``19_45411941`` a position.
    """
    low = pd.Series(ids, dtype=str).str.strip().str.lower().reset_index(drop=True)
    rs = pd.Series("", index=low.index, dtype=object)
    chrom = pd.Series("", index=low.index, dtype=object)
    pos = np.full(len(low), -1, dtype=np.int64)
    # Plain string operations (no regex): an array-wide .bim of millions of IDs takes a second or two.
    unified = low.str.replace("_", ":", regex=False).str.replace(";", ":", regex=False).str.replace(
        ",", ":", regex=False)
    starts_rs = low.str.startswith("rs")
    if starts_rs.any():
        head = unified[starts_rs].str.split(":", n=1).str[0]
        good = head.str[2:].str.isdecimal() & (head.str.len() > 2)
        rs[head.index[good]] = head[good].to_numpy()
    maybe_pos = ~starts_rs & unified.str.contains(":", regex=False)
    if maybe_pos.any():
        parts = unified[maybe_pos].str.split(":", n=2, expand=True)
        c = parts[0].str.removeprefix("chr")
        good = c.isin(_POSITIONAL_CHROMS) & parts[1].str.isdecimal() & (parts[1].str.len() > 0)
        index = parts.index[good]
        chrom[index] = normalise_chrom(c[good]).to_numpy()
        pos[index.to_numpy()] = parts.loc[good, 1].astype(np.int64).to_numpy()
    return pd.DataFrame({"rsid": rs.to_numpy(), "chrom": chrom.to_numpy(), "pos": pos})


@dataclass
class BuildVerdict:
    """The genome build a ``.bim`` looks like, from the reference SNPs it holds.

    Attributes
    ----------
    build : str or None
        ``GRCh37``, ``GRCh38`` or ``NCBI36`` when the rule decided; None when
        no reference SNP was found or their positions fit no single build.
    matched : DataFrame
        One row per reference SNP found: rsid, variant_id (as in the
        ``.bim``), matched_by ('rsID' or 'chr:pos ID'), chrom, pos (the
        ``.bim``'s), expected_chrom, pos_grch37, pos_grch38, pos_ncbi36, and a
        bool column per build (its position there).
    counts : dict
        Build -> reference SNPs at their position in it.
    n_reference : int
        Rows of the reference table.
    notes : list of str
        What ``check_build`` reports (logged as warnings by the command).
    """

    build: str | None
    matched: pd.DataFrame
    counts: dict[str, int]
    n_reference: int
    notes: list[str] = field(default_factory=list)

    @property
    def n_matched(self) -> int:
        return len(self.matched)

    def examples(self, build: str, k: int = 3) -> str:
        """Up to ``k`` reference SNPs found off their GRCh37 position: found and expected positions."""
        rows = self.matched[~self.matched["GRCh37"]]
        if build in BUILD_COLUMNS and build != "GRCh37":
            rows = pd.concat([rows[rows[build]], rows[~rows[build]]])
        parts = []
        for r in rows.head(k).itertuples():
            where = f"chr{r.chrom}:{r.pos}"
            other = [b for b in BUILDS[1:] if getattr(r, b)]
            tag = f"its {other[0]} position; " if other else ""
            ident = r.rsid if r.matched_by == "rsID" else f"{r.rsid} (ID {r.variant_id})"
            parts.append(f"{ident} at {where} ({tag}GRCh37: chr{r.expected_chrom}:{r.pos_grch37})")
        return "; ".join(parts)

    def summary(self) -> dict:
        """JSON-ready counts for the extraction summary."""
        return {"build": self.build, "reference_snps_found": self.n_matched, "reference_snps": self.n_reference,
                "at_position_of": dict(self.counts)}


def decide_build(bim: pd.DataFrame, reference: pd.DataFrame) -> BuildVerdict:
    """Which build the reference SNPs of a ``.bim`` point to (no exception; see ``check_build``).

    Parameters
    ----------
    bim : DataFrame
        From ``read_bim`` (the whole file).
    reference : DataFrame
        From ``read_reference_snps``.

    Returns
    -------
    BuildVerdict

    Notes
    -----
    A reference SNP is found by its rsID in the variant ID (``rs429358``,
    ``rs429358:C:T``) or, for positional IDs (``19:45411941``,
    ``chr19:45411941:C:T``, ``19_45411941``), by the ID's chromosome and
    position equal to its position in any build; each reference SNP counts
    once (an rsID match first). Its ``.bim`` chromosome and position (columns
    1 and 4, what the gene mapping uses) are then compared with its position
    in each build. Rule: GRCh37 when at least ``GRCH37_MIN_FRACTION`` (90 %)
    of the SNPs found sit at GRCh37 (so with fewer than 10, all of them); else
    the other build holding more than half of them; else None.
    """
    ids = bim["snp"].astype(str).to_numpy()
    parsed = parse_variant_ids(ids)
    ref = reference.set_index("rsid")
    hits: dict[str, tuple[int, str]] = {}
    # 1. rsIDs.
    by_rs = np.flatnonzero(parsed["rsid"].isin(ref.index).to_numpy())
    for i in by_rs:
        hits.setdefault(parsed["rsid"].iat[i], (int(i), "rsID"))
    # 2. Positional IDs: the ID's chrom:pos equal to a reference SNP's position in any build (one merge,
    #    so that an array-wide .bim of chr:pos IDs costs no Python loop).
    lookup = pd.concat([pd.DataFrame({"chrom": reference["chrom"], "pos": reference[column],
                                      "ref_rsid": reference["rsid"]}).dropna()
                        for column in BUILD_COLUMNS.values()], ignore_index=True)
    lookup["pos"] = lookup["pos"].astype(np.int64)
    lookup = lookup.drop_duplicates(["chrom", "pos"])
    positional = parsed[parsed["pos"].to_numpy() >= 0].rename_axis("row").reset_index()
    found = positional.merge(lookup, on=["chrom", "pos"], how="inner").sort_values("row")
    for i, rsid in zip(found["row"], found["ref_rsid"]):
        hits.setdefault(rsid, (int(i), "chr:pos ID"))
    rows = []
    for rsid, (i, how) in hits.items():
        r = ref.loc[rsid]
        chrom, pos = bim["chrom"].iat[i], int(bim["pos"].iat[i])
        row = {"rsid": rsid, "variant_id": ids[i], "matched_by": how, "chrom": chrom, "pos": pos,
               "expected_chrom": r["chrom"], "pos_grch37": int(r["pos_grch37"]),
               "pos_grch38": r["pos_grch38"], "pos_ncbi36": r["pos_ncbi36"]}
        for build, column in BUILD_COLUMNS.items():
            row[build] = bool(chrom == r["chrom"] and pd.notna(r[column]) and pos == int(r[column]))
        rows.append(row)
    columns = ["rsid", "variant_id", "matched_by", "chrom", "pos", "expected_chrom", "pos_grch37", "pos_grch38",
               "pos_ncbi36", *BUILDS]
    matched = pd.DataFrame(rows, columns=columns)
    for build in BUILDS:
        matched[build] = matched[build].astype(bool)
    counts = {b: int(matched[b].sum()) for b in BUILDS}
    n = len(matched)
    build = None
    if n and counts["GRCh37"] >= math.ceil(GRCH37_MIN_FRACTION * n - 1e-9):
        build = "GRCh37"
    elif n:
        best = max(BUILDS[1:], key=lambda b: counts[b])
        if counts[best] > n / 2:
            build = best
    return BuildVerdict(build=build, matched=matched, counts=counts, n_reference=len(reference))


LIFTOVER_FIX = ("lift the genotypes over to GRCh37 with the tool of your choice (UCSC liftOver or CrossMap on the "
                ".bim positions, Picard LiftoverVcf, bcftools +liftover), then apply the new positions with "
                "'plink2 --bfile <prefix> --update-map <ID_newpos.txt> --sort-vars --make-pgen --out <tmp>' and "
                "'plink2 --pfile <tmp> --make-bed --out <prefix>_grch37', or give a GRCh37 export.")


def check_build(bim: pd.DataFrame, path, reference: pd.DataFrame | None = None,
                assume_build: str | None = None) -> BuildVerdict:
    """Check that the genotypes are on GRCh37 (the panel's build), from the reference SNPs they hold.

    Parameters
    ----------
    bim : DataFrame
        From ``read_bim`` (the whole file: the SNPs are found by rsID or chr:pos ID).
    path : str
        The ``.bim``, for messages.
    reference : DataFrame, optional
        From ``read_reference_snps`` (default: the shipped table).
    assume_build : {None, 'GRCh37'}
        ``genetics.assume_build``: go on as GRCh37 when no reference SNP is found.

    Returns
    -------
    BuildVerdict
        ``build == 'GRCh37'`` (or None when assumed), with notes.

    Raises
    ------
    InputDataError
        Most reference SNPs at another build's positions (named, with three
        examples and the lift-over fix); positions fitting no single build;
        no reference SNP at all without ``assume_build``.
    """
    reference = read_reference_snps() if reference is None else reference
    verdict = decide_build(bim, reference)
    n, counts = verdict.n_matched, verdict.counts
    if n == 0:
        if assume_build == "GRCh37":
            verdict.notes.append(
                f"none of the {verdict.n_reference} reference SNPs of the build check (AD GWAS lead and common "
                "array SNPs) is in the .bim, by rsID or chr:pos ID: the genome build is not checked; GRCh37 is "
                "assumed because genetics.assume_build says so")
            return verdict
        raise InputDataError(
            f"cannot tell the genome build: none of the {verdict.n_reference} reference SNPs "
            "(config/build_reference_snps.tsv: APOE rs429358 / rs7412 and other AD GWAS lead and common array "
            "SNPs) is in the file, by rsID or by a chr:pos variant ID, and the gene panel needs GRCh37 positions.",
            path=path,
            fix="if you know the genotypes are GRCh37, set genetics.assume_build: GRCh37 (the run then relies on "
                "the gene-coverage check alone); otherwise give the variants rsIDs (e.g. 'plink2 --bfile <prefix> "
                "--update-name <dbSNP_map.txt> --make-bed') so the build can be checked.")
    at37 = counts["GRCh37"]
    if verdict.build == "GRCh37":
        log.info("genome build GRCh37 confirmed: %d of %d reference SNPs found in %s sit at their GRCh37 positions "
                 "(%d in the table)", at37, n, path, verdict.n_reference)
        if at37 < n:
            verdict.notes.append(f"{n - at37} of {n} reference SNPs are not at their GRCh37 position (the other "
                                 f"{at37} are): {verdict.examples('GRCh37')}")
        return verdict
    tally = ", ".join(f"{counts[b]} at {b}" for b in BUILDS) + f", {n - sum(counts.values())} at none of them"
    if verdict.build is not None:
        b = verdict.build
        raise InputDataError(
            f"the genotypes look like {BUILD_NAMES[b]}, not GRCh37 (the gene panel's build): {counts[b]} of the {n} "
            f"reference SNPs found sit at their {b} positions ({tally}); e.g. {verdict.examples(b)}.",
            path=path, fix=LIFTOVER_FIX)
    raise InputDataError(
        f"the positions of the {n} reference SNPs found fit no single genome build ({tally}); e.g. "
        f"{verdict.examples('GRCh37')}. The gene panel needs GRCh37 positions.",
        path=path, fix="check that the variant IDs and positions belong together (a partly lifted or merged file?) "
                       "and re-export the genotypes in one build; " + LIFTOVER_FIX)


def check_panel_chromosomes(bim: pd.DataFrame, panel: pd.DataFrame, path) -> None:
    """Refuse a file with no variant on any chromosome of the panel genes (not a build problem).

    Raises
    ------
    InputDataError
        Naming the chromosomes the file has and those the panel needs.
    """
    have = set(bim["chrom"])
    need = set(panel["chrom"])
    if have & need:
        return
    raise InputDataError(
        f"none of the {len(bim)} variants is on a chromosome of the panel genes: the file has chromosome(s) "
        f"{_chrom_list(have)}, the 105 panel genes lie on {_chrom_list(need)}. This is not a genome-build "
        "problem: the file holds other chromosomes.",
        path=path, fix="point data.genotypes at the autosomal genotypes of the cohort (merge per-chromosome files "
                       "first, e.g. 'plink --merge-list' or 'plink2 --pmerge-list').")


def check_gene_coverage(mapping: pd.DataFrame, bim: pd.DataFrame, panel: pd.DataFrame, window_bp: int, path, *,
                        min_fraction: float, verdict: BuildVerdict | None = None) -> None:
    """Refuse a file leaving most panel genes without a variant, whatever its IDs say.

    Parameters
    ----------
    mapping : DataFrame
        From ``map_variants_to_genes`` (the whole ``.bim``).
    bim, panel : DataFrame
        From ``read_bim`` and ``read_gene_panel``.
    window_bp : int
    path : str
        The ``.bim``, for messages.
    min_fraction : float
        ``genetics.min_gene_fraction``: genes with at least one variant must
        be at least this share of the panel (default 0.5, i.e. most genes).
    verdict : BuildVerdict, optional
        The build check's result, quoted in the message.

    Raises
    ------
    InputDataError
        Saying how many genes are empty, which of them lie on chromosomes the
        file does not hold, and that genes empty on chromosomes it does hold
        are what another genome build looks like.
    """
    covered = set(mapping.loc[mapping["gene"] != "", "gene"])
    n_genes = len(panel)
    if len(covered) >= min_fraction * n_genes and covered:
        return
    empty = panel[~panel["gene"].isin(covered)]
    have = set(bim["chrom"])
    off_file = empty[~empty["chrom"].isin(have)]
    on_file = empty[empty["chrom"].isin(have)]
    on_panel_chroms = int(bim["chrom"].isin(set(panel["chrom"])).sum())
    what = (f"{len(empty)} of the {n_genes} panel genes (± {window_bp} bp) hold no variant of the file"
            if covered else f"no variant lies in a panel gene (± {window_bp} bp)")
    parts = [f"{what}; the file has {len(bim)} variants, {on_panel_chroms} of them on the panel genes' "
             f"chromosomes ({_chrom_list(have)})."]
    if len(on_file):
        parts.append(f"{len(on_file)} of the empty genes lie on chromosomes the file does hold (e.g. "
                     f"{', '.join(on_file['gene'].head(5))}): this is what genotypes on another genome build look "
                     "like, their positions shifted off the GRCh37 gene bodies.")
    if len(off_file):
        parts.append(f"{len(off_file)} lie on chromosomes the file lacks ({_chrom_list(set(off_file['chrom']))}).")
    confirmed = verdict is not None and verdict.build == "GRCh37" and verdict.n_matched > 0
    if confirmed:
        parts.append(f"The {verdict.n_matched} reference SNPs found do sit at GRCh37 positions, so the file may "
                     "rather cover only part of the genome (a targeted or regional export), or be partly lifted.")
    elif verdict is not None and verdict.n_matched == 0:
        parts.append("No reference SNP was found to check the build by ID.")
    if len(on_file):
        fix = ("check the genome build (the gene panel is GRCh37): " + LIFTOVER_FIX
               + " If the build is right, give genotypes covering the panel genes (merge per-chromosome or "
                 "per-region files first).")
    else:
        fix = "give genotypes covering all chromosomes of the panel (merge per-chromosome files first)."
    fix += (" A targeted array that really covers only these genes can lower genetics.min_gene_fraction "
            f"(now {min_fraction:g}).")
    raise InputDataError(" ".join(parts), path=path, fix=fix)


def _chrom_list(chroms) -> str:
    """Chromosome names in genome order, as text (``1-12, 14-22`` style runs for numbers)."""
    numeric = sorted(int(c) for c in chroms if str(c).isdigit())
    other = sorted(str(c) for c in chroms if not str(c).isdigit())
    runs, start, prev = [], None, None
    for c in numeric:
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            runs.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = prev = c
    if start is not None:
        runs.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(runs + other) or "none"
