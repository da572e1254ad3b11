"""Panel extraction and SNP quality control with the real PLINK 2 (paper 4.4.1).

Two steps, each one rule:

1. ``extract_panel``: the variants inside the panel genes (± window), of the
   genotyped subjects that have a clinical row, after the input checks of
   ``check_plink_trio`` (``.bed`` magic, size and padding against the
   ``.fam`` / ``.bim`` line counts), ``check_sex`` (``.fam`` sex against the
   clinical table) and ``rgenima_lib.genetics.panel`` (chromosomes, genome
   build, gene coverage); non-ACGT variants are removed and counted.
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
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.genetics.plink_io import BED_MAGIC, read_fam
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.panel import (acgt_alleles, check_allele_coding, check_build, check_gene_coverage,
                                        check_panel_chromosomes, map_variants_to_genes, read_bim,
                                        read_reference_snps)

log = logging.getLogger("rgenima")

QC_FILTERS = ("geno", "maf", "hwe")
"""The paper's filters, in the order they are applied."""

REMOVED_BY = ("alleles", *QC_FILTERS)
"""Values of ``removed_by`` ('' = kept): non-ACGT alleles, then the three filters."""

VARIANT_COLUMNS = ["snp", "chrom", "pos", "a1", "a2", "gene", "distance_bp"]


# --------------------------------------------------------------------------
# plink2
# --------------------------------------------------------------------------

class Plink2NoVariantsLeft(InputDataError):
    """plink2 stopped because its filters left no variant (``run_plink2(allow_no_variants=True)``)."""


def run_plink2(args: list[str], *, plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024,
               input_path=None, log_hint: str | None = None, allow_no_variants: bool = False) -> str:
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
    log_hint : str, optional
        Where this command's stderr ends up (the rule's log file), named in an error.
    allow_no_variants : bool
        A filter that leaves no variant raises ``Plink2NoVariantsLeft`` quietly
        (the caller counts it) instead of logging a failure.

    Raises
    ------
    InputDataError
        plink2 is not installed, or it stopped with an error. The message holds
        the full command line and the last lines plink2 printed; its whole
        output is written to stderr (the rule's log) just before.
    """
    exe = shutil.which(plink2)
    if exe is None:
        raise InputDataError(f"'{plink2}' (PLINK 2) is not on PATH.",
                             fix="install it (apt-get install plink2, or conda env envs/genetics.yaml with "
                                 "bioconda's plink2) or pass --plink2 /path/to/plink2.")
    cmd = [exe, "--threads", str(threads), "--memory", str(memory_mb), *args]
    log.debug("running %s", shlex.join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 and allow_no_variants and "variants remaining" in proc.stdout:
        raise Plink2NoVariantsLeft("plink2: no variants remaining after the filter.", path=input_path)
    if proc.returncode != 0:
        log.error("plink2 failed (exit %d); command:\n  %s\nplink2 output:\n%s", proc.returncode, shlex.join(cmd),
                  proc.stdout.rstrip())
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if line.startswith("Error")), max(len(lines) - 6, 0))
        tail = " | ".join(lines[start:start + 6]) or "(no output)"
        where = f"the rule's log, {log_hint}" if log_hint else "this command's stderr (the rule's log file)"
        raise InputDataError(
            f"plink2 failed (exit {proc.returncode}). Command: {shlex.join(cmd)} -- plink2 said: {tail}",
            path=input_path,
            fix=f"act on plink2's message; its full output is printed just above, in {where}; rerun the command "
                "above by hand to reproduce it.")
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


BED_SAMPLE_MAJOR = bytes([0x6C, 0x1B, 0x00])
PGEN_MODES = frozenset({0x02, 0x03, 0x04, 0x10, 0x11, 0x20, 0x21})
"""Third bytes after 0x6c 0x1b of PLINK 2 ``.pgen`` files (plink2's storage modes)."""


def count_lines(path) -> int:
    """Non-blank lines of a text file (a ``.fam`` or ``.bim`` row count)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                n += 1
    return n


def check_plink_trio(prefix) -> tuple[int, int]:
    """Check that a ``.bed`` fits its ``.fam`` and ``.bim`` before PLINK reads them.

    Parameters
    ----------
    prefix : str or Path
        The trio's prefix.

    Returns
    -------
    (n_samples, n_variants) : the ``.fam`` and ``.bim`` line counts.

    Raises
    ------
    InputDataError
        A file missing or empty; a ``.bed`` whose first bytes are not the
        PLINK 1 variant-major magic (sample-major PLINK 1.0 and PLINK 2 .pgen
        named); a ``.bed`` size other than 3 + n_variants x ceil(n_samples / 4)
        (both counts and both files named); non-zero padding bits in the last
        byte of a variant's block (first such variant named), which is what a
        ``.fam`` that lost a line looks like when the size still fits.

    Notes
    -----
    The padding check reads the last byte of every variant's block through a
    numpy memmap (one strided column, no full read). Not detectable here: a
    ``.fam`` row deleted when every variant's last sample is homozygous for
    allele 1 (code 00) and the byte count is unchanged, swapped or reordered
    rows, and any corruption inside the genotype bits (docs/genotype_checks.md).
    """
    bed, bim, fam = _trio(prefix)
    for path in (bed, bim, fam):
        if not path.is_file():
            raise InputDataError("PLINK file not found.", path=path,
                                 fix="set data.genotypes to the prefix of a PLINK 1 .bed/.bim/.fam trio.")
    n_samples, n_variants = count_lines(fam), count_lines(bim)
    if n_samples == 0:
        raise InputDataError(".fam holds no samples (the file is empty).", path=fam,
                             fix="pass the .fam written together with this .bed (one line per sample: FID IID "
                                 "father mother sex phenotype).")
    if n_variants == 0:
        raise InputDataError(".bim holds no variants (the file is empty).", path=bim,
                             fix="pass the .bim written together with this .bed (one line per variant).")
    size = bed.stat().st_size
    with open(bed, "rb") as fh:
        head = fh.read(3)
    if head != BED_MAGIC:
        shown = " ".join(f"0x{b:02x}" for b in head) or "nothing (empty file)"
        if head == BED_SAMPLE_MAJOR:
            kind = " It is a sample-major (individual-major) PLINK 1.0 .bed."
            fix = "rewrite it variant-major with 'plink --bfile <prefix> --make-bed --out <new>' (PLINK 1.9)."
        elif len(head) == 3 and head[:2] == BED_MAGIC[:2] and head[2] in PGEN_MODES:
            kind = " Its header is that of a PLINK 2 .pgen, not a .bed."
            fix = ("convert it with 'plink2 --pfile <prefix> --make-bed --out <new>' (after renaming it .pgen, with "
                   "its .pvar / .psam), or point data.genotypes at the PLINK 1 trio.")
        else:
            kind = ""
            fix = ("give the PLINK 1 binary trio (.bed/.bim/.fam), e.g. from 'plink2 --pfile <prefix> --make-bed' "
                   "or 'plink --vcf <file> --make-bed'; re-copy the file if it was damaged in transfer.")
        raise InputDataError(f"not a PLINK 1 variant-major .bed: it starts with {shown}, not 0x6c 0x1b 0x01.{kind}",
                             path=bed, fix=fix)
    block = (n_samples + 3) // 4
    expected = 3 + n_variants * block
    if size != expected:
        payload = size - 3
        hints = []
        if payload % block == 0:
            hints.append(f"the size fits {payload // block} variants of {n_samples} samples: the .bim's "
                         f"{n_variants} lines do not match")
        if payload % n_variants == 0 and payload // n_variants != block:
            per = payload // n_variants
            hints.append(f"the size fits {4 * per - 3} to {4 * per} samples per variant: the .fam's {n_samples} "
                         "lines do not match")
        if size < expected and not hints:
            hints.append("the file is shorter than the counts need (truncated, e.g. an interrupted copy)")
        elif not hints:
            hints.append("the file is longer than the counts need")
        raise InputDataError(
            f".bed holds {size} bytes, but {fam.name} lists {n_samples} samples and {bim.name} lists {n_variants} "
            f"variants, which need 3 + {n_variants} x ceil({n_samples}/4) = {expected} bytes; "
            + "; ".join(hints) + ".",
            path=bed, fix=f"use the .bed, .bim and .fam written together by one PLINK run (check {fam} and {bim} "
                          "against the .bed, or re-copy the trio); a truncated .bed must be copied again.")
    if n_samples % 4:
        pad_mask = (0xFF << (2 * (n_samples % 4))) & 0xFF
        last = np.memmap(bed, dtype=np.uint8, mode="r", offset=3, shape=(n_variants, block))[:, block - 1]
        bad = np.flatnonzero(last & pad_mask)
        if bad.size:
            names = pd.read_csv(bim, sep=r"\s+", header=None, usecols=[1], dtype=str, nrows=int(bad[0]) + 1,
                                skip_blank_lines=True)[1]
            raise InputDataError(
                f"the last byte of {bad.size} of the {n_variants} variants' blocks has non-zero padding bits, first "
                f"variant {names.iloc[int(bad[0])]} (line {int(bad[0]) + 1} of {bim.name}): with {n_samples} samples "
                f"in {fam.name} the last {4 * block - n_samples} slot(s) of each block must be empty. The .bed was "
                "written for more samples than the .fam lists (a .fam line deleted?), or it is corrupted.",
                path=bed, fix=f"use the .fam written together with this .bed (one line per sample, none deleted), "
                              f"or re-export the trio; compare {fam} with the original export.")
    return n_samples, n_variants


SEX_CODES = {"1": 1, "2": 2}
_CLINICAL_SEX = {"male": 1, "m": 1, "1": 1, "female": 2, "f": 2, "2": 2}


def check_sex(fam: pd.DataFrame, sexes, fam_path, *, max_fraction: float) -> list[str]:
    """Compare the ``.fam`` sex (column 5) with the clinical table's (PTGENDER).

    Parameters
    ----------
    fam : DataFrame
        The ``.fam`` rows of the clinical subjects (``read_fam``).
    sexes : mapping subject -> str
        The manifest's ``sex`` (PTGENDER: Male / Female; blank = unknown).
    fam_path : str
        For messages.
    max_fraction : float
        ``genetics.max_sex_mismatch_fraction``: above this share of subjects
        with a known sex on both sides, the run stops.

    Returns
    -------
    list of str
        Notes: mismatches below the threshold (count and up to 10 subjects),
        or why nothing could be compared.

    Raises
    ------
    InputDataError
        Mismatches above the threshold, naming up to 10 subjects.
    """
    genetic = fam["sex"].astype(str).str.strip().map(SEX_CODES)
    clinical = fam["iid"].map(lambda s: _CLINICAL_SEX.get(str(sexes.get(s, "")).strip().lower()))
    known = genetic.notna() & clinical.notna()
    if not known.any():
        why = ("the .fam codes no sex (column 5 is 0 or missing for every subject)" if genetic.isna().all()
               else "no subject has a known sex in both the .fam and the clinical table (PTGENDER)")
        return [f"sex check skipped: {why}"]
    differ = known & (genetic != clinical)
    n_known, n_differ = int(known.sum()), int(differ.sum())
    if n_differ == 0:
        log.info("sex check: the .fam and the clinical table agree for all %d subjects with a known sex in both",
                 n_known)
        return []
    label = {1: "male", 2: "female"}
    listed = [f"{iid} (.fam {label[int(g)]}, clinical {label[int(c)]})"
              for iid, g, c in zip(fam["iid"][differ], genetic[differ], clinical[differ])][:10]
    share = n_differ / n_known
    text = (f"{n_differ} of {n_known} subjects ({100 * share:.1f} %) have another sex in the .fam (column 5) than "
            f"in the clinical table (PTGENDER): {', '.join(listed)}{' ...' if n_differ > 10 else ''}")
    if share > max_fraction:
        raise InputDataError(
            text + f". That is more than genetics.max_sex_mismatch_fraction = {max_fraction:g}: the .fam rows are "
                   "probably out of step with the genotypes or the subjects (a deleted or reordered line, swapped "
                   "samples, IIDs pointing at the wrong subjects).",
            path=fam_path, subject=str(fam["iid"][differ].iloc[0]),
            fix="use the .fam written together with the .bed and check the IIDs against ADNIMERGE's PTIDs (e.g. "
                "with 'plink --check-sex' on the X chromosome); if the clinical sex is what is wrong, correct "
                "PTGENDER; to accept known discrepancies raise genetics.max_sex_mismatch_fraction.")
    return [text + f" (at most genetics.max_sex_mismatch_fraction = {max_fraction:g} allowed: going on)"]


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
                  plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024, log_hint: str | None = None,
                  reference: pd.DataFrame | None = None, assume_build: str | None = None,
                  min_gene_fraction: float = 0.5, sexes=None,
                  max_sex_mismatch_fraction: float = 0.02) -> tuple[pd.DataFrame, dict]:
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
    plink2, threads, memory_mb, log_hint
        See ``run_plink2``.
    reference : DataFrame, optional
        ``read_reference_snps`` table for the build check (default: the shipped one).
    assume_build : {None, 'GRCh37'}
        ``genetics.assume_build`` (see ``check_build``).
    min_gene_fraction : float
        ``genetics.min_gene_fraction`` (see ``check_gene_coverage``).
    sexes : mapping subject -> str, optional
        The manifest's ``sex`` (PTGENDER); None skips the sex check.
    max_sex_mismatch_fraction : float
        ``genetics.max_sex_mismatch_fraction`` (see ``check_sex``).

    Returns
    -------
    variants : DataFrame, one row per input variant inside a panel window
        snp, chrom (normalised), pos, a1, a2, gene, distance_bp, removed_by
        ('alleles' for non-ACGT variants, else '').
    summary : dict
        Counts (input variants and samples, samples kept, panel variants,
        chromosome names normalised), the build verdict and notes.

    Raises
    ------
    InputDataError
        Missing, empty or inconsistent trio files (``check_plink_trio``), no
        variant on a panel chromosome, a build mismatch, most panel genes
        without a variant, 1/2/3/4 allele coding, duplicate or missing variant
        IDs in the panel, a ``.fam`` matching no clinical subject, too many sex
        mismatches, or a plink2 error.
    """
    bfile = Path(bfile)
    bed, bim_path, fam_path = _trio(bfile)
    check_plink_trio(bfile)
    bim = read_bim(bim_path)
    check_panel_chromosomes(bim, panel, bim_path)
    verdict = check_build(bim, bim_path, read_reference_snps() if reference is None else reference, assume_build)
    notes = list(verdict.notes)
    mapping = map_variants_to_genes(bim, panel, window_bp)
    check_gene_coverage(mapping, bim, panel, window_bp, bim_path, min_fraction=min_gene_fraction, verdict=verdict)
    in_panel = mapping["gene"].to_numpy() != ""
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
    if sexes is not None:
        notes += check_sex(keep, sexes, fam_path, max_fraction=max_sex_mismatch_fraction)
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
        run_plink2(args, plink2=plink2, threads=threads, memory_mb=memory_mb, input_path=bfile, log_hint=log_hint)
        got = read_bim(tmp / "panel.bim")["snp"]
        expected = variants.loc[variants["removed_by"] == "", "snp"]
        if set(got) != set(expected):
            # Our mapping and plink2's range semantics must agree; a difference is a bug, not bad input.
            raise RuntimeError(f"plink2 kept {len(got)} panel variants, the gene mapping expects {len(expected)}")
        _move_trio(tmp / "panel", out_prefix)

    summary = {
        "input_variants": int(len(bim)), "input_samples": int(len(fam)), "samples_kept": int(len(keep)),
        "panel_variants": int(len(variants)), "removed_alleles": n_alleles,
        "chrom_names_normalised": renamed, "window_bp": int(window_bp), "genome_build": verdict.summary(),
        "genes_with_variants": int(variants["gene"].nunique()), "notes": notes,
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
           plink2: str = "plink2", threads: int = 1, memory_mb: int = 1024,
           log_hint: str | None = None) -> pd.DataFrame:
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
    kw = dict(plink2=plink2, threads=threads, memory_mb=memory_mb, log_hint=log_hint)
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
                run_plink2(args, input_path=panel_prefix, allow_no_variants=True, **kw)
                kept = set((tmp / f"{name}.snplist").read_text().split())
            except Plink2NoVariantsLeft:
                # plink2 stops with an error when a filter leaves no variant: that filter removed them all.
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
