"""Reading FreeSurfer / NIfTI volumes with the checks every imaging command needs.

Each check names the subject and the file and says what to do, and runs before
anything is written, so a bad volume never leaves a partial output behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from rgenima_lib.errors import InputDataError

#: Largest difference (mm, or unitless for the rotation part) tolerated between two affines
#: that are meant to describe the same voxel grid (FreeSurfer writes them as float32).
AFFINE_TOLERANCE = 1e-3

# Cortical label ranges of FreeSurfer's parcellations (config/FreeSurferColorLUT.txt), half-open.
#: Desikan-Killiany, aparc+aseg: ctx-lh-* 1000-1035, ctx-rh-* 2000-2035 (also the DKT atlas's numbers).
DESIKAN_CORTEX = ((1000, 1036), (2000, 2036))
#: Destrieux, aparc.a2009s+aseg: ctx_lh_* 11100-11175, ctx_rh_* 12100-12175.
DESTRIEUX_CORTEX = ((11100, 11176), (12100, 12176))
#: The older Destrieux atlas, aparc.a2005s+aseg: ctx-lh-* 1100-1181, ctx-rh-* 2100-2181.
A2005S_CORTEX = ((1100, 1182), (2100, 2182))
#: Desikan parcels the DKT atlas (aparc.DKTatlas+aseg) removed: bankssts, frontalpole, temporalpole.
DKT_REMOVED = (1001, 1032, 1033, 2001, 2032, 2033)
#: Above this label value the present labels are found by sorting rather than by a bincount
#: (whose memory grows with the largest label).
_BINCOUNT_MAX_LABEL = 1_000_000

#: What the label image looks like -> the words the error uses.
PARCELLATION_NAMES = {
    "aparc+aseg": "FreeSurfer aparc+aseg (Desikan-Killiany)",
    "aparc.a2009s+aseg": "Destrieux aparc.a2009s+aseg (cortical labels 11100-12175)",
    "aparc.a2005s+aseg": "Destrieux aparc.a2005s+aseg (cortical labels 1100-2181)",
    "aparc.DKTatlas+aseg": "DKT aparc.DKTatlas+aseg (no bankssts, frontalpole or temporalpole labels)",
    "aseg": "aseg only: no cortical labels",
    "empty": "all zero: no voxel carries a label",
}


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
        what = f"a 4-D image of {data.shape[3]} frames" if data.ndim == 4 else f"a {data.ndim}-D image"
        raise InputDataError(f"expected a 3D volume, found {what} (shape {data.shape}).", path=path,
                             subject=subject,
                             fix="pass a single 3D FreeSurfer volume of this subject (mri/norm.mgz, "
                                 "mri/aparc+aseg.mgz), not a time series or a stack of several volumes.")
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
    # A float image whose values are all whole numbers (aparc+aseg converted to float by a tool) is
    # read as those labels: float32 holds every integer below 2^24 exactly, FreeSurfer's labels are < 15000.
    if not np.issubdtype(data.dtype, np.integer):
        finite = np.isfinite(data)
        fractional = ~finite | (data != np.round(data))
        if fractional.any():
            example = data[fractional].flat[0]
            raise InputDataError(
                f"label image holds non-integer values ({int(fractional.sum())} voxels, e.g. {float(example):g}; "
                f"dtype {data.dtype}): it looks like an intensity image, not a label image.",
                path=vol.path, subject=subject,
                fix="pass FreeSurfer's mri/aparc+aseg.mgz of this subject (integer labels) as --aparc-aseg.")
    if data.min() < 0:
        raise InputDataError(f"label image holds negative values (min {data.min()}).", path=vol.path, subject=subject,
                             fix="pass FreeSurfer's mri/aparc+aseg.mgz.")
    return np.asarray(data, np.int32)


def present_labels(labels: np.ndarray) -> np.ndarray:
    """The distinct non-zero labels of a label volume.

    Parameters
    ----------
    labels : int[X, Y, Z], non-negative

    Returns
    -------
    int64[n] : sorted, 0 excluded
    """
    top = int(labels.max()) if labels.size else 0
    if top <= _BINCOUNT_MAX_LABEL:
        found = np.flatnonzero(np.bincount(labels.ravel(), minlength=1))
    else:
        found = np.unique(labels)
    return found[found > 0].astype(np.int64)


def _in_ranges(values: np.ndarray, ranges) -> np.ndarray:
    return np.logical_or.reduce([(values >= lo) & (values < hi) for lo, hi in ranges])


def identify_parcellation(labels: np.ndarray) -> str:
    """Which FreeSurfer label image this looks like, from the label numbers it holds.

    Parameters
    ----------
    labels : int[X, Y, Z], non-negative

    Returns
    -------
    str
        A key of ``PARCELLATION_NAMES``: ``aparc+aseg`` (Desikan cortical labels
        1000-1035 / 2000-2035), ``aparc.a2009s+aseg`` (11100+ / 12100+),
        ``aparc.a2005s+aseg`` (1100-1181 / 2100-2181), ``aparc.DKTatlas+aseg``
        (Desikan numbers without the three parcels DKT removed), ``aseg`` (no
        cortical parcel: aseg.mgz, or any subcortical-only segmentation) or ``empty``.
    """
    found = present_labels(labels)
    if found.size == 0:
        return "empty"
    if _in_ranges(found, DESTRIEUX_CORTEX).any():
        return "aparc.a2009s+aseg"
    # a2005s numbers lie beyond Desikan's 1035 / 2035, so the two ranges never overlap.
    if _in_ranges(found, A2005S_CORTEX).any():
        return "aparc.a2005s+aseg"
    desikan = found[_in_ranges(found, DESIKAN_CORTEX)]
    if desikan.size == 0:
        return "aseg"
    if not np.isin(DKT_REMOVED, desikan).any():
        return "aparc.DKTatlas+aseg"
    return "aparc+aseg"


def check_parcellation(vol: Volume, labels: np.ndarray, roi_label_ids, subject: str | None) -> str:
    """Refuse a label image that is not the parcellation the ROI table is written for.

    An aseg.mgz or a Destrieux parcellation given as aparc+aseg would otherwise
    give zero patches for every cortical ROI of every subject, silently.

    Parameters
    ----------
    vol : Volume
        The label image as read (for its path).
    labels : int32[X, Y, Z]
        Its labels (``check_labels``).
    roi_label_ids : sequence of int
        The ROI table's labels (``config/rois.tsv``).
    subject : str or None

    Returns
    -------
    str
        The parcellation found (``identify_parcellation``).

    Raises
    ------
    InputDataError
        All-zero image; or the table needs Desikan cortical labels (1000-2035) and
        the image holds another parcellation or none.
    """
    kind = identify_parcellation(labels)
    fix = ("give FreeSurfer's mri/aparc+aseg.mgz of this subject (--aparc-aseg; the workflow reads "
           "<subjects_dir>/<subject>/mri/aparc+aseg.mgz).")
    if kind == "empty":
        raise InputDataError("label image is all zero: no voxel carries a label.", path=vol.path, subject=subject,
                             fix="the segmentation failed or the file was overwritten: re-run recon-all for this "
                                 "subject, then " + fix)
    wanted = np.asarray(list(roi_label_ids), np.int64)
    needs_desikan = _in_ranges(wanted, DESIKAN_CORTEX)
    if not needs_desikan.any() or kind == "aparc+aseg":
        return kind
    # The DKT atlas shares Desikan's numbers: it is refused only when the table asks for a parcel DKT lacks.
    if kind == "aparc.DKTatlas+aseg" and not np.isin(wanted, DKT_REMOVED).any():
        return kind
    found = present_labels(labels)
    raise InputDataError(
        f"not an aparc+aseg label image: it looks like {PARCELLATION_NAMES[kind]}; it holds {found.size} labels "
        f"from {found.min()} to {found.max()}, and the ROI table needs the Desikan cortical labels 1000-2035.",
        path=vol.path, subject=subject, fix=fix)


def _grid_text(vol: Volume) -> str:
    """Shape and affine of a volume, on one line."""
    rows = "; ".join(" ".join(f"{v:.4g}" for v in row) for row in vol.affine[:3])
    return f"shape {tuple(vol.data.shape[:3])}, affine [{rows}]"


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
    # Imported here: only this repair needs scipy, and the whole-brain rule job starts faster without it.
    from scipy import ndimage

    # target voxel -> world -> label voxel
    matrix = np.linalg.inv(labels.affine) @ target.affine
    # grid-constant: a label voxel covers up to half a voxel past its centre, also at the edge of the
    # field of view ("constant" would drop target voxels that fall in the outer half of edge voxels).
    data = ndimage.affine_transform(np.asarray(labels.data, np.int32), matrix[:3, :3], offset=matrix[:3, 3],
                                    output_shape=target.data.shape[:3], order=0, mode="grid-constant", cval=0)
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
        f"label image and intensity image are on different voxel grids: label image {labels.path} "
        f"({_grid_text(labels)}), intensity image {intensity.path} ({_grid_text(intensity)}).",
        path=labels.path, subject=subject,
        fix="use the aparc+aseg.mgz and norm.mgz of the same FreeSurfer run of this subject (both on its "
            "conformed grid), or set imaging.grid_mismatch: resample_labels (roi-extract --grid-mismatch "
            "resample_labels) to move the labels onto the intensity grid with nearest neighbour.")
