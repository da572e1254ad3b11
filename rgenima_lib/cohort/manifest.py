"""Ingestion: who has what. One row per subject with stage and data availability.

Works the same on a real ADNI export (ADNIMERGE.csv, the PLINK ``.fam``, a BIDS
tree and a FreeSurfer SUBJECTS_DIR) as on the synthetic cohort.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rgenima_lib.cohort.clinical import STAGES, baseline_stages
from rgenima_lib.cohort.layout import bids_t1w_path
from rgenima_lib.errors import InputDataError

FREESURFER_REQUIRED = ("mri/aparc+aseg.mgz",)
FREESURFER_INTENSITY = ("mri/norm.mgz", "mri/brain.mgz")

FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "phenotype"]


def read_fam(path: str | Path) -> pd.DataFrame:
    """Read a PLINK ``.fam`` (whitespace-separated, no header) and refuse duplicate IIDs.

    Returns
    -------
    DataFrame with columns fid, iid, father, mother, sex, phenotype (all str).
    """
    fam = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    if fam.shape[1] != 6:
        raise InputDataError(f"expected 6 columns (FID IID father mother sex phenotype), found {fam.shape[1]}.",
                             path=path, fix="pass the .fam of a PLINK 1 binary trio.")
    fam.columns = FAM_COLUMNS
    dup = fam["iid"][fam["iid"].duplicated()].unique().tolist()
    if dup:
        raise InputDataError(f"duplicate individual ID(s) {', '.join(dup[:10])}.", path=path, subject=dup[0],
                             fix="keep one sample per subject (e.g. plink2 --remove the duplicate samples).")
    return fam


def check_image_readable(path: Path, subject: str) -> None:
    """Open an image's header with nibabel; an unreadable file is a clear error."""
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # nibabel raises several types for broken files
        raise InputDataError(f"not a readable image ({type(exc).__name__}: {exc}).", path=path, subject=subject,
                             fix="re-export or re-run FreeSurfer for this subject, or remove the file so the "
                                 "subject is treated as having no image.") from exc
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise InputDataError(f"image has shape {shape}, not a 3D volume.", path=path, subject=subject,
                             fix="point the manifest at the subject's T1 / FreeSurfer volumes.")


def freesurfer_status(fs_subject_dir: Path) -> tuple[bool, Path | None]:
    """Whether a FreeSurfer subject folder holds what ROI extraction needs, and its intensity image."""
    if not all((fs_subject_dir / rel).is_file() for rel in FREESURFER_REQUIRED):
        return False, None
    for rel in FREESURFER_INTENSITY:
        if (fs_subject_dir / rel).is_file():
            return True, fs_subject_dir / rel
    return False, None


def build_manifest(clinical: pd.DataFrame, fam: pd.DataFrame | None, *, bids_dir: Path | None,
                   freesurfer_dir: Path | None, clinical_path: str = "clinical table",
                   fam_path: str = ".fam") -> tuple[pd.DataFrame, list[str]]:
    """One row per clinically staged subject, with genotype and image availability.

    Parameters
    ----------
    clinical : DataFrame
        ADNIMERGE-style table (PTID, DX_bl, optional VISCODE / AGE / PTGENDER).
    fam : DataFrame or None
        From ``read_fam``; None when no genotypes are configured.
    bids_dir, freesurfer_dir : Path or None
        Where T1 images (``sub-<label>/anat/sub-<label>_T1w.nii.gz``) and
        FreeSurfer subject folders (named by PTID) are looked for.
    clinical_path, fam_path : str
        File names for messages.

    Returns
    -------
    manifest : DataFrame
        Columns subject, stage, dx_bl, age, sex, has_genotype, has_t1w,
        has_freesurfer, has_image, t1w, freesurfer_dir; sorted by subject.
        ``has_image`` means the ROI stage can run: FreeSurfer outputs exist
        (precomputed) or a T1 exists for recon-all.
    notes : list of str
        Subjects reported and excluded (genotyped without a clinical row,
        blank diagnosis).

    Raises
    ------
    InputDataError
        Unknown diagnosis, duplicate IDs, or an unreadable image.
    """
    staged, notes = baseline_stages(clinical, path=clinical_path)
    subjects = staged["subject"].tolist()
    genotyped = set() if fam is None else set(fam["iid"])
    orphans = sorted(genotyped - set(subjects))
    notes += [f"{iid}: in {fam_path} but has no clinical baseline row in {clinical_path}; excluded" for iid in orphans]
    rows = []
    for subject in tqdm(subjects, desc="manifest", unit="subject", disable=None):
        t1w = bids_t1w_path(bids_dir, subject) if bids_dir else None
        has_t1w = bool(t1w and t1w.is_file())
        fs_dir = Path(freesurfer_dir) / subject if freesurfer_dir else None
        has_fs, intensity = freesurfer_status(fs_dir) if fs_dir else (False, None)
        if has_t1w:
            check_image_readable(t1w, subject)
        if has_fs:
            for path in (fs_dir / FREESURFER_REQUIRED[0], intensity):
                check_image_readable(path, subject)
        rows.append({
            "has_genotype": subject in genotyped,
            "has_t1w": has_t1w,
            "has_freesurfer": has_fs,
            "has_image": has_fs or has_t1w,
            "t1w": str(t1w) if has_t1w else "",
            "freesurfer_dir": str(fs_dir) if has_fs else "",
        })
    manifest = pd.concat([staged, pd.DataFrame(rows, index=staged.index)], axis=1)
    for col in ("age", "sex"):
        if col not in manifest:
            manifest[col] = np.nan
    columns = ["subject", "stage", "dx_bl", "age", "sex", "has_genotype", "has_t1w", "has_freesurfer",
               "has_image", "t1w", "freesurfer_dir"]
    return manifest[columns].sort_values("subject", kind="stable").reset_index(drop=True), notes


def manifest_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Subjects per stage: total, with genotype, with image, with both (stages in paper order, then a total row)."""
    rows = []
    for stage in [*STAGES, "all"]:
        m = manifest if stage == "all" else manifest[manifest["stage"] == stage]
        rows.append({
            "stage": stage, "subjects": len(m), "with_genotype": int(m["has_genotype"].sum()),
            "with_image": int(m["has_image"].sum()),
            "with_both": int((m["has_genotype"] & m["has_image"]).sum()),
        })
    return pd.DataFrame(rows)
