"""A rendered subject's files, as a user's data would hold them: BIDS T1w and a FreeSurfer folder.

What is written per subject mirrors what ``recon-all`` leaves behind
(``mri/orig.mgz``, ``norm.mgz``, ``brain.mgz``, ``aparc+aseg.mgz``) plus the
BIDS ``T1w.nii.gz`` it started from.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib

from rgenima_lib.io import atomic_output
from rgenima_lib.synthetic.render import SubjectImages


def _write_gzipped(payload: bytes, path: Path, compresslevel: int) -> None:
    """Gzip ``payload`` into ``path`` atomically; the same payload always gives the same bytes."""
    with atomic_output(path) as tmp:
        # filename="": otherwise gzip stores the random temporary name in the header.
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                     compresslevel=compresslevel,
                                                     mtime=0) as gz:
            gz.write(payload)


def write_subject_images(images: SubjectImages, t1w_path: str | Path,
                         fs_subject_dir: str | Path, *, compresslevel: int = 1) -> None:
    """Write the BIDS T1w and a recon-all-like FreeSurfer subject folder.

    Parameters
    ----------
    images : SubjectImages
    t1w_path : str or Path
        BIDS ``..._T1w.nii.gz``: ``t1_raw`` as uint8 NIfTI-1 (sform/qform =
        scanner = MNI-aligned RAS mm).
    fs_subject_dir : str or Path
        Gets ``mri/orig.mgz`` (raw, uint8), ``mri/norm.mgz`` and
        ``mri/brain.mgz`` (skull-stripped, uint8) and ``mri/aparc+aseg.mgz``
        (int32), all with ``images.affine``.
    compresslevel : int
        gzip level; 1 is ~3x faster than FreeSurfer's 6 for ~10 % more bytes.

    Notes
    -----
    Each file is written under a temporary name and renamed into place.
    Gzip timestamps are zeroed so that identical images give identical bytes.
    """
    nifti = nib.Nifti1Image(images.t1_raw, images.affine)
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_qform(images.affine, code=1)
    nifti.set_sform(images.affine, code=1)
    _write_gzipped(nifti.to_bytes(), Path(t1w_path), compresslevel)
    mri = Path(fs_subject_dir) / "mri"
    for name, data in (("orig.mgz", images.t1_raw), ("norm.mgz", images.norm),
                       ("brain.mgz", images.norm), ("aparc+aseg.mgz", images.aparc_aseg)):
        _write_gzipped(nib.MGHImage(data, images.affine).to_bytes(), mri / name,
                       compresslevel)
