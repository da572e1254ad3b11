"""Whole-brain input of the Med3D baseline (paper 4.2.1, eq. 8): one resized skull-stripped volume per subject.

Steps: take FreeSurfer's skull-stripped ``brain.mgz`` (zero outside the brain),
crop it to the bounding box of its non-zero voxels, clip to the 0.5 / 99.5
percentiles of the brain voxels and rescale to [0, 1] (as the ROI patches),
then resize the box to a fixed shape by trilinear interpolation, each axis
independently (as MedicalNet's own data loader resizes to a fixed shape).
Stored as ``uint8[D0, D1, D2]`` (value / 255); the encoder standardises it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.resample import resize_trilinear
from rgenima_lib.imaging.roi_extract import SCALE, intensity_window, npy_layout, rebuild_fix
from rgenima_lib.io import atomic_output


def nonzero_box(volume: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the non-zero voxels (None if there are none).

    Parameters
    ----------
    volume : ndarray[X, Y, Z]

    Returns
    -------
    tuple of 3 slices, or None
    """
    mask = volume != 0
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def wholebrain_volume(brain: np.ndarray, shape: Sequence[int], clip: Sequence[float] = (0.5, 99.5)) -> tuple[np.ndarray, dict]:
    """Crop, clip, rescale and resize a skull-stripped volume.

    Parameters
    ----------
    brain : float32[X, Y, Z]
        Skull-stripped intensity, 0 outside the brain.
    shape : (D0, D1, D2)
        Output shape in voxels.
    clip : (low, high) percentiles over the non-zero voxels

    Returns
    -------
    volume : uint8[D0, D1, D2]
        round(255 * rescaled intensity).
    info : dict
        ``box`` (the crop, half-open voxel ranges) and ``window`` (clip values).
    """
    box = nonzero_box(brain)
    if box is None:
        raise ValueError("the volume has no non-zero voxel")
    crop = brain[box]
    lo, hi = intensity_window(crop, crop != 0, clip)
    x = (np.clip(crop, lo, hi) - np.float32(lo)) * np.float32(SCALE / (hi - lo))
    x *= crop != 0  # background stays 0 even when the low percentile is above 0
    out = resize_trilinear(x.astype(np.float32), tuple(int(s) for s in shape))
    np.rint(out, out=out)
    np.clip(out, 0, SCALE, out=out)
    info = {"box": [[s.start, s.stop] for s in box], "window": [lo, hi]}
    return out.astype(np.uint8), info


def write_wholebrain(npy_path: str | Path, brain: np.ndarray, shape: Sequence[int], *, clip: Sequence[float],
                     subject: str, source: str | Path) -> dict:
    """Write one subject's whole-brain array (``.npy``, uint8) atomically.

    Parameters
    ----------
    npy_path : path
    brain : float32[X, Y, Z]
    shape, clip : see ``wholebrain_volume``
    subject : str
    source : path of the brain image (for messages)

    Returns
    -------
    dict
        What ``wholebrain_volume`` returned as info, plus the output shape.
    """
    try:
        volume, info = wholebrain_volume(brain, shape, clip)
    except ValueError as exc:
        raise InputDataError(f"skull-stripped image is empty ({exc}).", path=source, subject=subject,
                             fix="re-run FreeSurfer for this subject.") from exc
    with atomic_output(npy_path) as tmp:
        np.save(tmp, volume)
    return {**info, "shape": list(volume.shape)}



def open_wholebrain(npy_path: str | Path, *, subject: str | None = None) -> np.ndarray:
    """A subject's whole-brain array, memory-mapped read-only, after checking the file is whole.

    Parameters
    ----------
    npy_path : path to ``uint8[D0, D1, D2]`` (``<subject>.npy``)
    subject : str, optional
        For messages; defaults to the file name.

    Returns
    -------
    numpy.memmap uint8[D0, D1, D2]

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file, or not a 3-D uint8 array (fix: delete it so that
        rule wholebrain rebuilds it).
    """
    npy_path = Path(npy_path)
    subject = subject or npy_path.stem
    shape, dtype, _ = npy_layout(npy_path, subject=subject, rule="wholebrain")
    if dtype != np.uint8 or len(shape) != 3:
        raise InputDataError(f"holds {dtype}{list(shape)}, not a whole-brain uint8[D0, D1, D2] array.",
                             path=npy_path, subject=subject, fix=rebuild_fix("wholebrain", npy_path))
    return np.load(npy_path, mmap_mode="r")
