"""Which subjects the imaging stage runs on, and where their FreeSurfer files are (used by imaging.smk)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rgenima_lib.io import read_tsv


def imaging_subjects(manifest: pd.DataFrame | str | Path, mode: str) -> list[str]:
    """Manifest subjects whose imaging jobs run in this FreeSurfer mode, in manifest order.

    The manifest decides (``rgenima_lib.cohort.manifest``): ``has_image`` is true
    when both the ROI patches (RiT) and the whole-brain input (Med3D) can be
    made, so rules roi_extract and wholebrain get the same subjects, and
    exactly those enter the image-gene data sets (``has_image`` of folds.tsv).
    The mode's own input is required as well, so a manifest built for the
    other mode never sends a subject without its files to a job.

    Parameters
    ----------
    manifest : DataFrame or path of manifest.tsv
        Columns subject, has_image, has_freesurfer, has_t1w.
    mode : {"precomputed", "recon_all"}
        precomputed needs the subject's complete FreeSurfer folder, recon_all its T1.

    Returns
    -------
    list of str
    """
    if not isinstance(manifest, pd.DataFrame):
        manifest = read_tsv(manifest, dtype={"subject": str})
    need = "has_freesurfer" if mode == "precomputed" else "has_t1w"
    keep = manifest["has_image"].astype(bool) & manifest[need].astype(bool)
    return manifest.loc[keep, "subject"].tolist()


def freesurfer_file(subjects_dir: str | Path, subject: str, name: str) -> str:
    """``<subjects_dir>/<subject>/mri/<name>``."""
    return f"{subjects_dir}/{subject}/mri/{name}"


def freesurfer_job_inputs(subjects_dir: str | Path, subject: str, mode: str, names: list[str]) -> dict[str, str]:
    """A per-subject rule's FreeSurfer inputs.

    precomputed: the files themselves (named ``aparc_aseg``, ``norm``, ...);
    recon_all: the subject folder, the ``directory()`` output of rule recon_all
    (Snakemake cannot depend on a file inside another rule's directory output).
    """
    if mode == "precomputed":
        return {name.split(".")[0].replace("+", "_"): freesurfer_file(subjects_dir, subject, name) for name in names}
    return {"subject_dir": f"{subjects_dir}/{subject}"}
