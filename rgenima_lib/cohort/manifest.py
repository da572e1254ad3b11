"""Ingestion: who has what. One row per subject with stage and data availability.

Works the same on a real ADNI export (ADNIMERGE.csv, the PLINK ``.fam``, a BIDS
tree and a FreeSurfer SUBJECTS_DIR) as on the synthetic cohort.

What "has an image" means is decided here, once, per FreeSurfer mode
(``image_availability``), and every consumer reads the manifest's columns:

- ``has_rois``: ROI extraction can run (precomputed: ``mri/aparc+aseg.mgz`` and
  the intensity image ``imaging.intensity_image``; recon_all: a T1);
- ``has_wholebrain``: the Med3D baseline's input exists (precomputed:
  ``imaging.wholebrain.image``; recon_all: a T1);
- ``has_image``: both, i.e. the subject enters the image-gene data
  configurations, where R-GenIMA (RiT) and the Med3D baselines are compared on
  the same samples;
- ``image_status``: ``ok`` or why the subject has no image (``IMAGE_STATUSES``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rgenima_lib.cohort.clinical import baseline_stages
from rgenima_lib.cohort.layout import (BASELINE_SESSIONS, DEFAULT_INTENSITY_IMAGE, DEFAULT_SUBJECT_ID_PATTERN,
                                       DEFAULT_WHOLEBRAIN_IMAGE, find_t1w)
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.plink_io import read_fam
from rgenima_lib.vocabulary import STAGES

log = logging.getLogger("rgenima")

FREESURFER_LABELS = "aparc+aseg.mgz"
"""Under ``<subject>/mri/``: the parcellation ROI extraction needs (a failed recon-all lacks it)."""

IMAGE_STATUSES = {
    "ok": "image inputs complete",
    "no_image": "no T1 and no FreeSurfer folder",
    "no_t1w": "no T1 in the BIDS folder (recon_all mode)",
    "t1w_only": "a T1 but no FreeSurfer folder (precomputed mode: ROI patches come from FreeSurfer)",
    "freesurfer_failed": "FreeSurfer folder without mri/aparc+aseg.mgz, scripts/recon-all.error present",
    "freesurfer_incomplete": "FreeSurfer folder without mri/aparc+aseg.mgz (recon-all unfinished)",
    "no_intensity_image": "FreeSurfer folder without the intensity image (imaging.intensity_image)",
    "no_wholebrain_image": "FreeSurfer folder without the whole-brain image (imaging.wholebrain.image)",
}
"""Manifest ``image_status`` codes and what each means (the log counts subjects per code)."""

MANIFEST_COLUMNS = ["subject", "stage", "dx_bl", "age", "sex", "has_genotype", "has_t1w", "has_freesurfer",
                    "has_rois", "has_wholebrain", "has_image", "image_status", "t1w", "t1w_session",
                    "t1w_candidates", "freesurfer_dir"]

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


def freesurfer_folder_status(fs_subject_dir: Path, *, intensity_image: str = DEFAULT_INTENSITY_IMAGE,
                             wholebrain_image: str = DEFAULT_WHOLEBRAIN_IMAGE) -> str:
    """``IMAGE_STATUSES`` code of a FreeSurfer subject folder that exists.

    One rule, no fallbacks: ROI extraction reads ``mri/aparc+aseg.mgz`` and
    ``mri/<intensity_image>`` (rule roi_extract reads the same
    ``imaging.intensity_image``), the whole-brain input ``mri/<wholebrain_image>``.
    """
    mri = fs_subject_dir / "mri"
    if not (mri / FREESURFER_LABELS).is_file():
        failed = (fs_subject_dir / "scripts" / "recon-all.error").is_file()
        return "freesurfer_failed" if failed else "freesurfer_incomplete"
    if not (mri / intensity_image).is_file():
        return "no_intensity_image"
    if not (mri / wholebrain_image).is_file():
        return "no_wholebrain_image"
    return "ok"


def image_availability(*, mode: str, t1w: Path | None, fs_subject_dir: Path | None,
                       intensity_image: str = DEFAULT_INTENSITY_IMAGE,
                       wholebrain_image: str = DEFAULT_WHOLEBRAIN_IMAGE) -> dict:
    """What a subject's images allow in a FreeSurfer mode: the manifest's image columns.

    Parameters
    ----------
    mode : {"precomputed", "recon_all"}
    t1w : Path or None
        The chosen BIDS T1 (``find_t1w``), None when there is none.
    fs_subject_dir : Path or None
        ``<SUBJECTS_DIR>/<subject>`` when that folder exists (precomputed mode).
    intensity_image, wholebrain_image : str
        File names under ``mri/``.

    Returns
    -------
    dict with has_freesurfer, has_rois, has_wholebrain, has_image (bool) and image_status (str).
    """
    if mode == "recon_all":
        # recon-all makes every FreeSurfer file from the T1, so the T1 is all a subject needs.
        has = t1w is not None
        return {"has_freesurfer": False, "has_rois": has, "has_wholebrain": has, "has_image": has,
                "image_status": "ok" if has else "no_t1w"}
    if fs_subject_dir is None:
        status = "t1w_only" if t1w is not None else "no_image"
        return {"has_freesurfer": False, "has_rois": False, "has_wholebrain": False, "has_image": False,
                "image_status": status}
    status = freesurfer_folder_status(fs_subject_dir, intensity_image=intensity_image,
                                      wholebrain_image=wholebrain_image)
    mri = fs_subject_dir / "mri"
    has_rois = (mri / FREESURFER_LABELS).is_file() and (mri / intensity_image).is_file()
    has_wholebrain = (mri / wholebrain_image).is_file()
    return {"has_freesurfer": has_rois, "has_rois": has_rois, "has_wholebrain": has_wholebrain,
            "has_image": has_rois and has_wholebrain, "image_status": status}


def build_manifest(clinical: pd.DataFrame, fam: pd.DataFrame | None, *, bids_dir: Path | None,
                   freesurfer_dir: Path | None, freesurfer_mode: str | None = None,
                   intensity_image: str = DEFAULT_INTENSITY_IMAGE,
                   wholebrain_image: str = DEFAULT_WHOLEBRAIN_IMAGE,
                   subject_id_pattern: str = DEFAULT_SUBJECT_ID_PATTERN,
                   clinical_path: str | Path = "clinical table",
                   fam_path: str | Path = ".fam") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One row per clinically staged subject, with genotype and image availability.

    Parameters
    ----------
    clinical : DataFrame
        ADNIMERGE-style table (``read_clinical``: PTID, DX_bl, optional
        VISCODE / AGE / PTGENDER).
    fam : DataFrame or None
        From ``read_fam``; None when no genotypes are configured.
    bids_dir, freesurfer_dir : Path or None
        Where T1 images (``find_t1w``) and FreeSurfer subject folders (named
        by PTID) are looked for.
    freesurfer_mode : {"precomputed", "recon_all"}, optional
        ``freesurfer.mode``; by default precomputed when ``freesurfer_dir`` is
        given, else recon_all. In recon_all mode ``freesurfer_dir`` is not
        read (recon-all writes its own SUBJECTS_DIR).
    intensity_image, wholebrain_image : str
        ``imaging.intensity_image`` and ``imaging.wholebrain.image``.
    subject_id_pattern : str
        ``cohort.subject_id_pattern``: IDs that may enter the manifest.
    clinical_path, fam_path : str or Path
        File names for messages.

    Returns
    -------
    manifest : DataFrame
        ``MANIFEST_COLUMNS``, one row per staged subject, sorted by subject
        (module docstring for the image columns; ``t1w_candidates`` counts the
        subject's T1w files, the chosen one is ``t1w``).
    excluded : DataFrame
        Columns subject, reason, has_genotype: subjects of the clinical table
        or the ``.fam`` that are not in the manifest ("blank DX_bl", "no
        baseline row", "no clinical row").
    notes : list of str
        Counts for the log; no subject ID beyond the manifest.

    Raises
    ------
    InputDataError
        Unknown diagnosis, blank or unsafe IDs, disagreeing duplicate rows, or
        an unreadable image.
    """
    mode = freesurfer_mode or ("precomputed" if freesurfer_dir else "recon_all")
    if mode not in ("precomputed", "recon_all"):
        raise ValueError(f"freesurfer_mode must be 'precomputed' or 'recon_all', got {mode!r}")
    staged, blank_dx = baseline_stages(clinical, path=clinical_path, subject_id_pattern=subject_id_pattern)
    subjects = staged["subject"].tolist()
    genotyped = set() if fam is None else set(fam["iid"])
    # An IID enters the manifest only as a staged PTID, and those passed check_subject_ids above:
    # an unsafe IID can match no staged subject, so it is counted as an orphan and never used.
    in_clinical = set(clinical["PTID"].astype(str).str.strip())
    not_baseline = sorted(in_clinical - set(subjects) - set(blank_dx["subject"]))
    no_row = sorted(genotyped - in_clinical)
    excluded = pd.concat([
        blank_dx.assign(reason="blank DX_bl"),
        pd.DataFrame({"subject": not_baseline, "reason": "no baseline row"}),
        pd.DataFrame({"subject": no_row, "reason": "no clinical row"}),
    ], ignore_index=True)
    excluded["has_genotype"] = excluded["subject"].isin(genotyped)
    notes = []
    for reason, where in (("blank DX_bl", f"blank DX_bl in {clinical_path}"),
                          ("no baseline row", f"in {clinical_path} without a baseline row (VISCODE bl / m00)"),
                          ("no clinical row", f"in {fam_path} but not in {clinical_path}")):
        rows = excluded[excluded["reason"] == reason]
        if len(rows):
            notes.append(f"{len(rows)} subject(s) excluded: {where} ({int(rows['has_genotype'].sum())} genotyped)")
    rows = []
    for subject in tqdm(subjects, desc="manifest", unit="subject", disable=None):
        chosen, n_t1w = find_t1w(bids_dir, subject) if bids_dir else (None, 0)
        t1w = chosen.path if chosen is not None else None
        fs_dir = Path(freesurfer_dir) / subject if freesurfer_dir and mode == "precomputed" else None
        fs_dir = fs_dir if fs_dir is not None and fs_dir.is_dir() else None
        image = image_availability(mode=mode, t1w=t1w, fs_subject_dir=fs_dir, intensity_image=intensity_image,
                                   wholebrain_image=wholebrain_image)
        if t1w is not None:
            check_image_readable(t1w, subject)
        if fs_dir is not None:
            for name in (FREESURFER_LABELS, intensity_image, wholebrain_image):
                if (fs_dir / "mri" / name).is_file():
                    check_image_readable(fs_dir / "mri" / name, subject)
        rows.append({
            "has_genotype": subject in genotyped,
            "has_t1w": t1w is not None,
            **image,
            "t1w": str(t1w) if t1w is not None else "",
            "t1w_session": (chosen.session or "") if chosen is not None else "",
            "t1w_candidates": n_t1w,
            "freesurfer_dir": str(fs_dir) if image["has_freesurfer"] else "",
        })
    manifest = pd.concat([staged, pd.DataFrame(rows, index=staged.index)], axis=1)
    for col in ("age", "sex"):
        if col not in manifest:
            manifest[col] = np.nan
    manifest = manifest[MANIFEST_COLUMNS].sort_values("subject", kind="stable").reset_index(drop=True)
    notes += image_notes(manifest, mode=mode, bids_dir=bids_dir)
    return manifest, excluded.sort_values(["reason", "subject"], kind="stable").reset_index(drop=True), notes


def image_notes(manifest: pd.DataFrame, *, mode: str, bids_dir: Path | None) -> list[str]:
    """Log lines about the manifest's images: subjects without one per ``image_status``, T1 choices (counts only)."""
    notes = []
    for status, n in manifest["image_status"].value_counts().items():
        if status != "ok":
            notes.append(f"{n} subject(s) without image ({mode} mode): {status}: {IMAGE_STATUSES[status]}")
    incomplete = manifest["image_status"].isin(["freesurfer_incomplete", "freesurfer_failed"])
    if incomplete.any():
        notes.append(f"incomplete FreeSurfer folders: {int(incomplete.sum())} (no mri/aparc+aseg.mgz; rerun recon-all "
                     "for them, see image_status in the manifest)")
    if bids_dir:
        several = int((manifest["t1w_candidates"] > 1).sum())
        if several:
            notes.append(f"{several} subject(s) have several T1w images: the chosen one is in the manifest's t1w "
                         "column (baseline session, lowest run; docs/inputs.md)")
        later = int(((manifest["t1w_session"] != "") & manifest["has_t1w"]
                     & ~manifest["t1w_session"].str.lower().isin(sorted(BASELINE_SESSIONS))).sum())
        if later:
            notes.append(f"{later} subject(s) have no baseline-session T1: their earliest session is used "
                         "(t1w_session in the manifest)")
    return notes


def manifest_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Subjects per stage (paper order, then a total row): totals, with genotype / image / both, then per image_status.

    Returns
    -------
    DataFrame stage, subjects, with_genotype, with_image, with_both, with_rois, with_wholebrain,
    and one count column per non-ok ``IMAGE_STATUSES`` code (``freesurfer_incomplete``, ...).
    """
    rows = []
    for stage in [*STAGES, "all"]:
        m = manifest if stage == "all" else manifest[manifest["stage"] == stage]
        row = {
            "stage": stage, "subjects": len(m), "with_genotype": int(m["has_genotype"].sum()),
            "with_image": int(m["has_image"].sum()),
            "with_both": int((m["has_genotype"] & m["has_image"]).sum()),
            "with_rois": int(m["has_rois"].sum()), "with_wholebrain": int(m["has_wholebrain"].sum()),
        }
        row.update({status: int((m["image_status"] == status).sum()) for status in IMAGE_STATUSES if status != "ok"})
        rows.append(row)
    return pd.DataFrame(rows)
