"""Reading FreeSurfer / NIfTI volumes with the checks every imaging command needs.

Each check names the subject and the file and says what to do, and runs before
anything is written, so a bad volume never leaves a partial output behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from rgenima_lib.errors import InputDataError

#: Largest difference (mm, or unitless for the rotation part) tolerated between two affines
#: that are meant to describe the same voxel grid (FreeSurfer writes them as float32).
AFFINE_TOLERANCE = 1e-3


@dataclass
class Volume:
    """A 3D image and where it came from.

    Attributes
    ----------
    data : ndarray[X, Y, Z]
        Voxel values in the file's own dtype (uint8 for ``norm.mgz``, int32 for ``aparc+aseg.mgz``).
    affine : float64[4, 4]
        Voxel -> scanner RAS (mm).
    path : Path
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))


def load_volume(path: str | Path, subject: str | None) -> Volume:
    """Read a 3D volume (``.mgz``, ``.nii``, ``.nii.gz``) fully into memory.

    Parameters
    ----------
    path : str or Path
    subject : str or None
        For error messages.

    Returns
    -------
    Volume

    Raises
    ------
    InputDataError
        Missing, unreadable or truncated file; not a 3D volume.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("file not found.", path=path, subject=subject,
                             fix="run FreeSurfer for this subject (rule recon_all) or correct the subjects folder.")
    try:
        img = nib.load(str(path))
        # dataobj keeps the stored dtype (get_fdata would turn 16 MB of uint8 into 128 MB of float64);
        # a truncated .mgz fails here, when the compressed stream ends early.
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, np.float64)
    except Exception as exc:  # nibabel / gzip / zlib raise many types for broken files
        raise InputDataError(f"cannot read the image ({type(exc).__name__}: {exc}).", path=path, subject=subject,
                             fix="the file is truncated or corrupt: re-run FreeSurfer (or re-copy the file) "
                                 "for this subject.") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise InputDataError(f"expected a 3D volume, found shape {data.shape}.", path=path, subject=subject,
                             fix="pass a single 3D FreeSurfer volume (mri/norm.mgz, mri/aparc+aseg.mgz).")
    return Volume(data=data, affine=affine, path=path)


def check_intensity(vol: Volume, subject: str | None) -> np.ndarray:
    """The intensity volume as float32, refusing NaN / infinite or all-zero (constant) images.

    Parameters
    ----------
    vol : Volume
    subject : str or None

    Returns
    -------
    float32[X, Y, Z]
    """
    data = np.asarray(vol.data, np.float32)
    if not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise InputDataError(f"intensity image has {n_bad} NaN or infinite voxels.", path=vol.path, subject=subject,
                             fix="re-run FreeSurfer for this subject; a NaN volume means the processing failed.")
    if data.max() == data.min():
        raise InputDataError(f"intensity image is constant ({float(data.max()):g} everywhere, e.g. all zero).",
                             path=vol.path, subject=subject,
                             fix="re-run FreeSurfer for this subject; the skull-stripped volume is empty.")
    return data


def check_labels(vol: Volume, subject: str | None) -> np.ndarray:
    """The label volume as int32, refusing non-integer or negative values.

    Returns
    -------
    int32[X, Y, Z]
    """
    data = vol.data
    if not np.issubdtype(data.dtype, np.integer):
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise InputDataError("label image holds non-integer values.", path=vol.path, subject=subject,
                                 fix="pass FreeSurfer's mri/aparc+aseg.mgz (integer labels), not an intensity image.")
    if data.min() < 0:
        raise InputDataError(f"label image holds negative values (min {data.min()}).", path=vol.path, subject=subject,
                             fix="pass FreeSurfer's mri/aparc+aseg.mgz.")
    return np.asarray(data, np.int32)


def same_grid(a: Volume, b: Volume) -> bool:
    """Whether two volumes share shape and affine (within ``AFFINE_TOLERANCE``)."""
    return a.data.shape[:3] == b.data.shape[:3] and np.allclose(a.affine, b.affine, atol=AFFINE_TOLERANCE, rtol=0)


def resample_labels_nearest(labels: Volume, target: Volume) -> Volume:
    """Move a label image onto another volume's grid by nearest-neighbour interpolation.

    Nearest neighbour keeps labels integer (no averaging of label numbers); voxels
    of ``target`` outside the label image's field of view get label 0.

    Parameters
    ----------
    labels : Volume
        int labels[X', Y', Z'] with its own affine.
    target : Volume
        The grid to resample onto (shape [X, Y, Z], affine).

    Returns
    -------
    Volume
        int32[X, Y, Z] labels on ``target``'s grid (``path`` stays the label file's).
    """
    # target voxel -> world -> label voxel
    matrix = np.linalg.inv(labels.affine) @ target.affine
    data = ndimage.affine_transform(np.asarray(labels.data, np.int32), matrix[:3, :3], offset=matrix[:3, 3],
                                    output_shape=target.data.shape[:3], order=0, mode="constant", cval=0)
    return Volume(data=data.astype(np.int32), affine=target.affine.copy(), path=labels.path)


def align_labels(labels: Volume, intensity: Volume, subject: str | None, on_mismatch: str) -> tuple[Volume, bool]:
    """Make sure labels and intensity share one voxel grid.

    Parameters
    ----------
    labels, intensity : Volume
    subject : str or None
    on_mismatch : {"error", "resample_labels"}
        ``error`` refuses differing grids (the default: FreeSurfer's own outputs
        always share the conformed 256^3 grid, so a mismatch means files of two
        different runs or subjects were mixed); ``resample_labels`` moves the
        labels onto the intensity grid with nearest neighbour.

    Returns
    -------
    labels : Volume
        On the intensity image's grid.
    resampled : bool
        True when the labels were resampled.
    """
    if same_grid(labels, intensity):
        return labels, False
    if on_mismatch == "resample_labels":
        return resample_labels_nearest(labels, intensity), True
    raise InputDataError(
        f"label image (shape {labels.data.shape}) and intensity image {intensity.path} (shape {intensity.data.shape}) "
        "are on different voxel grids (shape or affine differ).", path=labels.path, subject=subject,
        fix="use the aparc+aseg.mgz and norm.mgz of the same FreeSurfer run, or set "
            "imaging.grid_mismatch: resample_labels to resample the labels with nearest neighbour.")
