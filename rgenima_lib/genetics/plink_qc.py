"""Panel extraction and SNP quality control with the real PLINK 2 (paper 4.4.1).

Two steps, each one rule:

1. ``extract_panel``: the variants inside the panel genes (± window), of the
   genotyped subjects that have a clinical row, after the input checks of
   ``rgenima_lib.genetics.panel``; non-ACGT variants are removed and counted.
2. ``run_qc``: the paper's three filters in the paper's order, each a separate
   plink2 call so that every removed SNP is attributed to the first filter it
   fails: ``--geno`` (missing call rate; the paper removes SNPs with > 95 %
   missing, i.e. ``--geno 0.95``; 0.05 is the usual choice), ``--maf``
   (0.05), ``--hwe`` (exact test, 1e-6). A SNP with no call at all is always
   removed by the missingness step, whatever ``geno`` is, since neither its
   frequency nor its imputation is defined.

plink2 computes frequencies and HWE on founders only (its default); ADNI's
``.fam`` has no pedigree, so that is every subject.

Departure: plink2 applies ``--maf`` / ``--hwe`` to allele counts of the
subjects kept, i.e. the whole genotyped cohort, as the paper does; this QC is
label-free and fixed before the folds, while the imputation that follows is
fitted per fold (``genotype_matrix.impute_expected_dosage``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.cohort.manifest import read_fam
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.panel import acgt_alleles, check_allele_coding, check_build, map_variants_to_genes, read_bim

log = logging.getLogger("rgenima")

QC_FILTERS = ("geno", "maf", "hwe")
"""The paper's filters, in the order they are applied."""

REMOVED_BY = ("alleles", *QC_FILTERS)
"""Values of ``removed_by`` ('' = kept): non-ACGT alleles, then the three filters."""

VARIANT_COLUMNS = ["snp", "chrom", "pos", "a1", "a2", "gene", "distance_bp"]


# --------------------------------------------------------------------------
# plink2
# --------------------------------------------------------------------------

def run_plink2(args: list[str], *, plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024,
               input_path=None) -> str:
    """Run plink2 and return its console output.

    Parameters
    ----------
    args : list of str
        Arguments after the executable (``--threads`` / ``--memory`` are added).
    plink2 : str
        Executable name or path.
    threads, memory_mb : int
        Passed to plink2, which otherwise takes every core and half the RAM.
    input_path : str, optional
        The input named in an error.

    Raises
    ------
    InputDataError
        plink2 is not installed, or it stopped with an error (its message quoted).
    """
    exe = shutil.which(plink2)
    if exe is None:
        raise InputDataError(f"'{plink2}' (PLINK 2) is not on PATH.",
                             fix="install it (apt-get install plink2, or conda env envs/genetics.yaml with "
                                 "bioconda's plink2) or pass --plink2 /path/to/plink2.")
    cmd = [exe, "--threads", str(threads), "--memory", str(memory_mb), *args]
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = proc.stdout.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("Error")), max(len(lines) - 3, 0))
        message = " ".join(line.strip() for line in lines[start:start + 4] if line.strip())
        raise InputDataError(f"plink2 failed (exit {proc.returncode}): {message}", path=input_path,
                             fix="see plink2's message; the full command is in the rule's log with -v.")
    return proc.stdout


def _trio(prefix) -> list[Path]:
    prefix = Path(prefix)
    return [prefix.with_name(prefix.name + ext) for ext in (".bed", ".bim", ".fam")]


def _move_trio(src_prefix, dst_prefix) -> None:
    """Rename a finished .bed/.bim/.fam trio into place (each rename is atomic)."""
    for src, dst in zip(_trio(src_prefix), _trio(dst_prefix)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.replace(dst)


def read_plink2_table(path) -> pd.DataFrame:
    """A plink2 report (``.afreq``, ``.vmiss``, ``.hardy``) with the leading ``#`` dropped from its header."""
    return pd.read_csv(path, sep="\t", dtype={"#CHROM": str, "ID": str}).rename(columns=lambda c: c.lstrip("#"))


# --------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------

def check_fam_subjects(fam: pd.DataFrame, subjects, fam_path) -> pd.DataFrame:
    """The ``.fam`` rows whose IID is a clinical subject; refuse a ``.fam`` matching none.

    Parameters
    ----------
    fam : DataFrame
        From ``read_fam`` (fid, iid, ...).
    subjects : iterable of str
        Subject IDs (PTIDs) of the manifest.
    fam_path : str
        For messages.

    Returns
    -------
    DataFrame, the matching rows in ``.fam`` order.
    """
    subjects = set(subjects)
    hit = fam["iid"].isin(subjects)
    if not hit.any():
        hint = ""
        if fam["fid"].isin(subjects).any():
            hint = " Its FIDs do match: FID and IID look swapped."
        raise InputDataError(
            f"none of the {len(fam)} individual IDs (IID, column 2) matches a subject (PTID) of the clinical "
            f"table.{hint}", path=fam_path,
            fix="set each IID to the subject's ADNIMERGE PTID (e.g. 011_S_0002), for instance with "
                "'plink2 --update-ids', or point data.genotypes at the genotypes of this cohort.")
    return fam[hit]


def extract_panel(bfile, panel: pd.DataFrame, window_bp: int, subjects, out_prefix, *,
                  plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024) -> tuple[pd.DataFrame, dict]:
    """Keep the panel variants (gene ± window) of the clinical subjects, with plink2.

    Parameters
    ----------
    bfile : str or Path
        PLINK 1 prefix of the input genotypes.
    panel : DataFrame
        From ``read_gene_panel``.
    window_bp : int
        Bases added on both sides of every gene body.
    subjects : iterable of str
        The manifest's subjects; ``.fam`` samples outside it are dropped.
    out_prefix : str or Path
        Where the panel trio is written (``.bed/.bim/.fam``).
    plink2, threads, memory_mb
        See ``run_plink2``.

    Returns
    -------
    variants : DataFrame, one row per input variant inside a panel window
        snp, chrom (normalised), pos, a1, a2, gene, distance_bp, removed_by
        ('alleles' for non-ACGT variants, else '').
    summary : dict
        Counts (input variants and samples, samples kept, panel variants,
        chromosome names normalised) and notes.

    Raises
    ------
    InputDataError
        Missing files, a build mismatch, 1/2/3/4 allele coding, no panel
        variant at all, duplicate or missing variant IDs in the panel, a
        ``.fam`` matching no clinical subject, or a plink2 error.
    """
    bfile = Path(bfile)
    bed, bim_path, fam_path = _trio(bfile)
    for path in (bed, bim_path, fam_path):
        if not path.is_file():
            raise InputDataError("PLINK file not found.", path=path,
                                 fix="set data.genotypes to the prefix of a PLINK 1 .bed/.bim/.fam trio.")
    bim = read_bim(bim_path)
    notes = check_build(bim, bim_path)
    mapping = map_variants_to_genes(bim, panel, window_bp)
    in_panel = mapping["gene"].to_numpy() != ""
    if not in_panel.any():
        found = ", ".join(sorted(set(bim["chrom_raw"].astype(str)))[:12])
        raise InputDataError(
            f"no variant lies in a panel gene (± {window_bp} bp); chromosome names found: {found}.",
            path=bim_path, fix="check that the genotypes are GRCh37 with chromosomes named 1-22 or chr1-chr22.")
    variants = pd.concat([bim.loc[in_panel, ["snp", "chrom", "pos", "a1", "a2"]].reset_index(drop=True),
                          mapping.loc[in_panel].reset_index(drop=True)], axis=1)
    check_allele_coding(variants, bim_path)
    bad_ids = variants["snp"][variants["snp"].duplicated(keep=False) | (variants["snp"] == ".")]
    if len(bad_ids):
        raise InputDataError(
            f"{len(bad_ids)} panel variants have a duplicate or missing ID (e.g. '{bad_ids.iloc[0]}').",
            path=bim_path, fix="give unique IDs, e.g. 'plink2 --set-missing-var-ids @:#:$r:$a --rm-dup "
                               "exclude-all --make-bed'.")
    variants["removed_by"] = np.where(acgt_alleles(variants), "", "alleles")

    fam = read_fam(fam_path)
    keep = check_fam_subjects(fam, subjects, fam_path)
    changed = bim["chrom_raw"].astype(str) != bim["chrom"]
    renamed = int(changed.sum())
    if renamed:
        notes.append(f"{renamed} chromosome names normalised (e.g. '{bim.loc[changed, 'chrom_raw'].iloc[0]}' -> "
                     f"'{bim.loc[changed, 'chrom'].iloc[0]}'), as plink2 does")
    n_alleles = int((variants["removed_by"] == "alleles").sum())
    if n_alleles:
        notes.append(f"{n_alleles} panel variants with non-ACGT alleles removed (indels, '0' alleles)")
    if len(keep) < len(fam):
        notes.append(f"{len(fam) - len(keep)} genotyped samples without a clinical row left out")

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".panel-extract-", dir=out_prefix.parent) as tmp:
        tmp = Path(tmp)
        # bed1: 1-based, closed intervals, as the panel's coordinates.
        panel_ranges = pd.DataFrame({
            "chrom": panel["chrom"], "start": np.maximum(panel["start_grch37"] - window_bp, 1),
            "end": panel["end_grch37"] + window_bp, "gene": panel["gene"]})
        panel_ranges.to_csv(tmp / "ranges.bed1", sep="\t", header=False, index=False)
        keep[["fid", "iid"]].to_csv(tmp / "keep.txt", sep="\t", header=["#FID", "IID"], index=False)
        excluded = variants.loc[variants["removed_by"] != "", "snp"]
        args = ["--bfile", str(bfile), "--allow-extra-chr", "--extract", "bed1", str(tmp / "ranges.bed1"),
                "--keep", str(tmp / "keep.txt")]
        if len(excluded):
            excluded.to_csv(tmp / "exclude.txt", header=False, index=False)
            args += ["--exclude", str(tmp / "exclude.txt")]
        args += ["--make-bed", "--out", str(tmp / "panel")]
        run_plink2(args, plink2=plink2, threads=threads, memory_mb=memory_mb, input_path=bfile)
        got = read_bim(tmp / "panel.bim")["snp"]
        expected = variants.loc[variants["removed_by"] == "", "snp"]
        if set(got) != set(expected):
            # Our mapping and plink2's range semantics must agree; a difference is a bug, not bad input.
            raise RuntimeError(f"plink2 kept {len(got)} panel variants, the gene mapping expects {len(expected)}")
        _move_trio(tmp / "panel", out_prefix)

    summary = {
        "input_variants": int(len(bim)), "input_samples": int(len(fam)), "samples_kept": int(len(keep)),
        "panel_variants": int(len(variants)), "removed_alleles": n_alleles,
        "chrom_names_normalised": renamed, "window_bp": int(window_bp), "notes": notes,
    }
    return variants, summary


def read_variant_table(path) -> pd.DataFrame:
    """Read a per-variant table of this module (IDs and alleles as text, '' kept as '')."""
    text = {c: str for c in ("snp", "chrom", "a1", "a2", "gene", "removed_by")}
    numeric_na = {c: [""] for c in ("f_miss", "maf", "hwe_p")}
    return pd.read_csv(path, sep="\t", dtype=text, keep_default_na=False, na_values=numeric_na)


# --------------------------------------------------------------------------
# QC
# --------------------------------------------------------------------------

def plink_variant_stats(bfile, workdir, **plink_kw) -> pd.DataFrame:
    """Per-variant missing fraction, MAF and HWE exact p, as plink2 computes them.

    Returns
    -------
    DataFrame indexed by snp: f_miss, alt_freq (frequency of .bim allele 1 =
    plink2's ALT), maf, hwe_p (NaN where nothing is called).
    """
    out = Path(workdir) / "stats"
    run_plink2(["--bfile", str(bfile), "--freq", "--missing", "variant-only", "--hardy", "--out", str(out)],
               input_path=bfile, **plink_kw)
    freq = read_plink2_table(f"{out}.afreq").set_index("ID")
    vmiss = read_plink2_table(f"{out}.vmiss").set_index("ID")
    hardy = read_plink2_table(f"{out}.hardy").set_index("ID")
    alt = pd.to_numeric(freq["ALT_FREQS"], errors="coerce")
    stats = pd.DataFrame({"f_miss": vmiss["F_MISS"].astype(float), "alt_freq": alt,
                          "maf": np.minimum(alt, 1 - alt)})
    stats["hwe_p"] = pd.to_numeric(hardy["P"], errors="coerce").reindex(stats.index)
    return stats


def run_qc(panel_prefix, variants: pd.DataFrame, out_prefix, *, geno: float, maf: float, hwe: float,
           plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024) -> pd.DataFrame:
    """Apply ``--geno``, ``--maf``, ``--hwe`` in turn and write the QC'd trio.

    Parameters
    ----------
    panel_prefix : str or Path
        The trio from ``extract_panel``.
    variants : DataFrame
        ``extract_panel``'s table (every panel variant, ``removed_by``).
    out_prefix : str or Path
        Where the QC'd trio is written.
    geno : float
        Remove SNPs with a missing call rate above this (paper: 0.95).
    maf : float
        Remove SNPs with minor allele frequency below this (0.05).
    hwe : float
        Remove SNPs with HWE exact-test p below this (1e-6).

    Returns
    -------
    DataFrame: ``variants`` plus f_miss, maf, hwe_p (plink2's values; NaN for
    variants removed at extraction) and ``removed_by`` filled in ('' = kept).

    Raises
    ------
    InputDataError
        QC leaves no SNP at all, or plink2 fails.
    """
    kw = dict(plink2=plink2, threads=threads, memory_mb=memory_mb)
    table = variants.copy().reset_index(drop=True)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".plink-qc-", dir=out_prefix.parent) as tmp:
        tmp = Path(tmp)
        stats = plink_variant_stats(panel_prefix, tmp, **kw)
        table = table.join(stats[["f_miss", "maf", "hwe_p"]], on="snp")
        current = set(stats.index)
        # A SNP with no call: its frequency and its 2p imputation are undefined; drop it
        # with the missingness filter even when geno = 1 keeps it.
        all_missing = stats.index[stats["f_miss"] >= 1.0]
        if len(all_missing):
            pd.Series(all_missing).to_csv(tmp / "all_missing.txt", header=False, index=False)
        for name, value in zip(QC_FILTERS, (geno, maf, hwe)):
            if not current:
                break
            pd.Series(sorted(current)).to_csv(tmp / "in.txt", header=False, index=False)
            args = ["--bfile", str(panel_prefix), "--extract", str(tmp / "in.txt"), f"--{name}", repr(value),
                    "--write-snplist", "--out", str(tmp / name)]
            if name == "geno" and len(all_missing):
                args += ["--exclude", str(tmp / "all_missing.txt")]
            if name == QC_FILTERS[-1]:
                args += ["--make-bed"]
            try:
                run_plink2(args, input_path=panel_prefix, **kw)
                kept = set((tmp / f"{name}.snplist").read_text().split())
            except InputDataError as exc:
                # plink2 stops with an error when a filter leaves no variant.
                if "No variants remaining" not in str(exc) and "variants remaining" not in str(exc):
                    raise
                kept = set()
            removed = current - kept
            table.loc[table["snp"].isin(removed), "removed_by"] = name
            current = kept
        if not current:
            raise InputDataError(
                f"QC (--geno {geno} --maf {maf} --hwe {hwe}) removed every one of the {len(stats)} panel SNPs.",
                path=panel_prefix, fix="check the genotypes (call rates, allele coding) or loosen genetics.plink.")
        _move_trio(tmp / QC_FILTERS[-1], out_prefix)
    return table


def qc_report(table: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """SNPs per gene: in the window, removed by each step, left (paper: 76K -> 1,079 SNPs in 105 genes).

    Parameters
    ----------
    table : DataFrame
        ``run_qc``'s per-variant table.
    panel : DataFrame
        From ``read_gene_panel``.

    Returns
    -------
    DataFrame, one row per panel gene in panel order, then a ``TOTAL`` row:
    gene, chrom, start_grch37, end_grch37, gwas_ad, in, removed_alleles,
    removed_geno, removed_maf, removed_hwe, left, status ('kept', or
    'empty: dropped from the SNP text' when no SNP is left).
    """
    counts = pd.crosstab(table["gene"], table["removed_by"]).reindex(panel["gene"], fill_value=0)
    report = panel[["gene", "chrom", "start_grch37", "end_grch37", "gwas_ad"]].copy().reset_index(drop=True)
    report["in"] = counts.sum(axis=1).to_numpy()
    for step in REMOVED_BY:
        report[f"removed_{step}"] = counts[step].to_numpy() if step in counts else 0
    report["left"] = counts[""].to_numpy() if "" in counts else 0
    report["status"] = np.where(report["left"] > 0, "kept", "empty: dropped from the SNP text")
    total = {"gene": "TOTAL", "chrom": "", "start_grch37": "", "end_grch37": "",
             "gwas_ad": int(report["gwas_ad"].sum()),
             **{c: int(report[c].sum()) for c in ["in", *[f"removed_{s}" for s in REMOVED_BY], "left"]},
             "status": f"{int((report['left'] > 0).sum())} of {len(report)} genes kept"}
    return pd.concat([report, pd.DataFrame([total])], ignore_index=True)
