"""PLINK 1 binary trio I/O: the ``.fam`` reader every stage uses, and a writer / reader of SNP-major ``.bed``.

The pipeline runs the real PLINK 2 for QC (``plink_qc``); these functions are for what PLINK does not
do for us: reading the ``.fam`` into the manifest, and writing and reading small trios (the synthetic
cohort, the tests' independent checks of PLINK's output).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output

FAM_COLUMNS = ("fid", "iid", "father", "mother", "sex", "phenotype")
BIM_COLUMNS = ("chrom", "snp", "cm", "pos", "a1", "a2")

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
"""PLINK 1 ``.bed`` magic number and variant-major (SNP-major) mode byte."""
# 2-bit codes indexed by (a1 count + 1): -1 (missing) -> 01, 0 -> 11 (hom .bim
# column 6), 1 -> 10 (het), 2 -> 00 (hom .bim column 5 = a1).
_DOSAGE_TO_CODE = np.array([0b01, 0b11, 0b10, 0b00], dtype=np.uint8)
# Inverse: code -> a1 count, missing = -1.
_CODE_TO_DOSAGE = np.array([2, -1, 1, 0], dtype=np.int8)


def read_fam(path: str | Path) -> pd.DataFrame:
    """Read a PLINK ``.fam`` (whitespace-separated, no header) and refuse duplicate IIDs.

    Returns
    -------
    DataFrame with columns fid, iid, father, mother, sex, phenotype (all str).

    Raises
    ------
    InputDataError
        The file is empty, not 6 columns, or lists an IID twice.
    """
    try:
        fam = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    except pd.errors.EmptyDataError as exc:
        raise InputDataError("the .fam is empty (no sample).", path=path,
                             fix="pass the .fam of the PLINK 1 trio (one line per sample: FID IID father mother "
                                 "sex phenotype).") from exc
    except pd.errors.ParserError as exc:
        raise InputDataError(f"not a PLINK .fam ({exc}).".replace("\n", " "), path=path,
                             fix="pass the .fam of a PLINK 1 binary trio (6 whitespace-separated columns).") from exc
    if fam.shape[1] != 6:
        raise InputDataError(f"expected 6 columns (FID IID father mother sex phenotype), found {fam.shape[1]}.",
                             path=path, fix="pass the .fam of a PLINK 1 binary trio.")
    fam.columns = list(FAM_COLUMNS)
    dup = fam["iid"][fam["iid"].duplicated()].unique().tolist()
    if dup:
        raise InputDataError(f"duplicate individual ID(s) {', '.join(dup[:10])}.", path=path, subject=dup[0],
                             fix="keep one sample per subject (e.g. plink2 --remove the duplicate samples).")
    return fam


def pack_bed(dosage: np.ndarray) -> bytes:
    """SNP-major .bed payload (without the magic) for ``dosage``.

    Parameters
    ----------
    dosage : int8[n_subjects, n_variants]
        Count of the .bim column-5 allele, -1 = missing.

    Returns
    -------
    bytes
        n_variants blocks of ceil(n_subjects / 4) bytes; subject i of a block
        in bits 2*(i % 4) .. 2*(i % 4)+1 of byte i // 4; padding bits 00.
    """
    n_subjects, n_variants = dosage.shape
    codes = _DOSAGE_TO_CODE[dosage.T.astype(np.int16) + 1]
    pad = (-n_subjects) % 4
    codes = np.pad(codes, ((0, 0), (0, pad))).reshape(n_variants, -1, 4)
    packed = codes[..., 0] | codes[..., 1] << 2 | codes[..., 2] << 4 | codes[..., 3] << 6
    return packed.astype(np.uint8).tobytes()


def unpack_bed(payload: bytes, n_subjects: int, n_variants: int) -> np.ndarray:
    """Inverse of ``pack_bed``: int8[n_subjects, n_variants] counts of the .bim column-5 allele."""
    n_bytes = (n_subjects + 3) // 4
    raw = np.frombuffer(payload, dtype=np.uint8)
    if raw.size != n_bytes * n_variants:
        raise InputDataError(f".bed holds {raw.size} genotype bytes, expected "
                             f"{n_bytes * n_variants} for {n_subjects} x {n_variants}",
                             fix="regenerate the .bed/.bim/.fam trio together.")
    codes = (raw.reshape(n_variants, n_bytes, 1) >> np.array([0, 2, 4, 6], np.uint8)) & 0b11
    return _CODE_TO_DOSAGE[codes.reshape(n_variants, -1)[:, :n_subjects]].T.copy()


def _check_trio(dosage: np.ndarray, variants: pd.DataFrame, fam: pd.DataFrame) -> None:
    """Raise InputDataError unless dosage, variants and fam describe one dataset."""
    if dosage.ndim != 2 or dosage.shape != (len(fam), len(variants)):
        raise InputDataError(f"dosage shape {dosage.shape} does not match {len(fam)} fam rows x "
                             f"{len(variants)} variants", fix="pass matching tables.")
    if not np.isin(dosage, (-1, 0, 1, 2)).all():
        raise InputDataError("dosage holds values other than -1, 0, 1, 2",
                             fix="code a1 counts 0/1/2 and missing as -1.")
    for table, columns in ((variants, BIM_COLUMNS), (fam, FAM_COLUMNS)):
        lacking = [c for c in columns if c not in table.columns]
        if lacking:
            raise InputDataError(f"table lacks columns {lacking}", fix=f"provide {list(columns)}.")
    if not variants["snp"].is_unique:
        raise InputDataError("duplicate SNP IDs", fix="make rsIDs unique.")
    ids = pd.concat([fam["fid"], fam["iid"], variants["snp"]]).astype(str)
    if ids.str.contains(r"\s").any():
        raise InputDataError("an ID contains whitespace, which PLINK cannot read",
                             fix="remove spaces from fid / iid / snp.")


def write_plink_bed(prefix: str | Path, dosage: np.ndarray, variants: pd.DataFrame,
                    fam: pd.DataFrame) -> None:
    """Write ``prefix.bed/.bim/.fam`` (PLINK 1 binary, SNP-major), atomically.

    Parameters
    ----------
    prefix : str or Path
        Output path without extension.
    dosage : int8[n_subjects, n_variants]
        Count of a1, -1 = missing.
    variants : DataFrame
        ``chrom, snp, cm, pos, a1, a2`` (as from ``simulate_panel_genotypes``);
        a1 goes to .bim column 5, so PLINK counts a1 (PLINK 2: ALT = a1).
    fam : DataFrame, n_subjects rows
        ``fid, iid, father, mother, sex`` (1 = male, 2 = female, 0 = unknown),
        ``phenotype`` (-9 = missing).

    Notes
    -----
    The three files are written under temporary names and renamed only when
    all are complete; if any step fails, none of the three final paths is
    left from this call.
    """
    dosage = np.asarray(dosage)
    _check_trio(dosage, variants, fam)
    prefix = Path(prefix)
    paths = [prefix.with_name(prefix.name + ext) for ext in (".bed", ".bim", ".fam")]
    written_inodes: set[int] = set()
    try:
        with contextlib.ExitStack() as stack:
            bed, bim, famf = (stack.enter_context(atomic_output(p)) for p in paths)
            bed.write_bytes(BED_MAGIC + pack_bed(dosage))
            variants.loc[:, list(BIM_COLUMNS)].to_csv(bim, sep="\t", header=False,
                                                               index=False)
            fam.loc[:, list(FAM_COLUMNS)].to_csv(famf, sep=" ", header=False, index=False)
            written_inodes = {os.stat(t).st_ino for t in (bed, bim, famf)}
    except BaseException:
        # A failed rename after another succeeded would leave a mixed trio: drop our part.
        for path in paths:
            if path.exists() and path.stat().st_ino in written_inodes:
                path.unlink()
        raise


def read_plink_bed(prefix: str | Path) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Read ``prefix.bed/.bim/.fam`` written in SNP-major mode.

    Returns
    -------
    dosage : int8[n_subjects, n_variants]
        Count of the .bim column-5 allele (a1), -1 = missing.
    variants : DataFrame
        chrom (str), snp, cm, pos, a1, a2.
    fam : DataFrame
        fid, iid, father, mother, sex, phenotype.
    """
    prefix = Path(prefix)
    bim_path, fam_path, bed_path = (prefix.with_name(prefix.name + e) for e in (".bim", ".fam", ".bed"))
    variants = pd.read_csv(bim_path, sep=r"\s+", header=None, names=list(BIM_COLUMNS),
                           dtype={"chrom": str, "snp": str, "a1": str, "a2": str})
    fam = pd.read_csv(fam_path, sep=r"\s+", header=None, names=list(FAM_COLUMNS),
                      dtype={"fid": str, "iid": str, "father": str, "mother": str})
    raw = bed_path.read_bytes()
    if raw[:3] != BED_MAGIC:
        raise InputDataError("not a SNP-major PLINK 1 .bed (bad magic bytes)", path=bed_path,
                             fix="convert it with plink --make-bed.")
    return unpack_bed(raw[3:], len(fam), len(variants)), variants, fam
