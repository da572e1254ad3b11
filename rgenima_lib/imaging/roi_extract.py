"""ROI patches: each of the 109 FreeSurfer ROIs cropped and resampled to S^3 (paper 4.2.1).

For each label of ``config/rois.tsv``, in that (token) order:

1. mask the intensity image by the label (voxels of other labels become 0);
2. crop the label's bounding box, widened by ``margin`` voxels on each side
   (clipped at the volume edge), so the patch shows the ROI's boundary;
3. resample the box to S x S x S by trilinear interpolation, each axis
   stretched independently (the paper resamples every ROI to 96^3; aspect is
   not kept, as in the paper);
4. store as uint8.

A label absent from the subject's aparc+aseg gives a zero patch and presence 0:
the token keeps its position (docs/design.md, "Fixed token order"), the model sees the flag.

Intensity normalisation (the paper's code clips at the 0.5 / 99.5 percentiles
and rescales): per subject, the percentiles are taken over all labelled voxels
(``aparc+aseg > 0``: the whole brain), intensities are clipped to that window
and rescaled to [0, 1], then stored as ``round(255 * value)``. A brain-wide
window, rather than one per ROI, keeps contrast between ROIs (grey vs white
matter, CSF) and between subjects of different atrophy comparable; FreeSurfer's
``norm.mgz`` is itself uint8, so 8-bit storage loses nothing that was there.

Storage: one ``.npy`` per subject, ``uint8[n_roi, S, S, S]`` (96.4 MB at S = 96,
the paper's size), opened by a training loader with ``numpy.load(mmap_mode="r")``
so that only the patches it touches are read; a JSON sidecar holds the presence
vector, voxel counts, boxes and the intensity window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.resample import resize_trilinear
from rgenima_lib.io import atomic_output, write_json

#: Stored value = round(SCALE * normalised intensity); a loader multiplies by 1 / SCALE.
SCALE = 255.0


@dataclass
class RoiPatches:
    """ROI patches of one subject.

    Attributes
    ----------
    patches : uint8[n_roi, S, S, S]
        Token order of the ROI table; zero where the ROI is missing.
    presence : uint8[n_roi]
        1 if the label has at least one voxel.
    voxel_counts : int64[n_roi]
        Voxels carrying the label (before resampling).
    boxes : int64[n_roi, 6]
        Cropped box (x0, x1, y0, y1, z0, z1), half-open, margin included; -1 when missing.
    window : (float, float)
        Intensity clip window (the percentiles), in the input image's units.
    """

    patches: np.ndarray
    presence: np.ndarray
    voxel_counts: np.ndarray
    boxes: np.ndarray
    window: tuple[float, float]


def intensity_window(intensity: np.ndarray, brain: np.ndarray, clip: Sequence[float] = (0.5, 99.5)) -> tuple[float, float]:
    """Clip window of a subject: percentiles of the intensity over brain voxels.

    Parameters
    ----------
    intensity : float32[X, Y, Z]
    brain : bool[X, Y, Z]
        Voxels the percentiles are taken over.
    clip : (low, high) percentiles in [0, 100]

    Returns
    -------
    (lo, hi) : floats with hi > lo (hi = lo + 1 if the brain is flat, so rescaling never divides by zero)
    """
    values = intensity[brain]
    if values.size == 0:
        values = intensity.ravel()
    lo, hi = np.percentile(values, [clip[0], clip[1]])
    lo, hi = float(lo), float(hi)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def label_boxes(labels: np.ndarray, label_ids: Sequence[int], margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxel counts and margin-widened bounding boxes of the wanted labels, in one pass each.

    Parameters
    ----------
    labels : int32[X, Y, Z], non-negative
    label_ids : int[n_roi]
    margin : int
        Voxels added on every side (clipped at the volume edge).

    Returns
    -------
    counts : int64[n_roi]
    boxes : int64[n_roi, 6]
        (x0, x1, y0, y1, z0, z1), half-open; -1 for absent labels.
    """
    from scipy import ndimage  # here, not at the top: the whole-brain job imports this module without needing it

    ids = np.asarray(label_ids, np.int64)
    top = int(ids.max())
    # bincount and find_objects each scan the volume once for all labels, instead of
    # one full-volume comparison per ROI (109 passes) as a naive loop does.
    all_counts = np.bincount(labels.ravel(), minlength=top + 1)
    objects = ndimage.find_objects(labels, max_label=top)
    counts = all_counts[ids]
    boxes = np.full((ids.size, 6), -1, np.int64)
    shape = labels.shape
    for k, label in enumerate(ids):
        sl = objects[label - 1] if label >= 1 else None
        if sl is None or counts[k] == 0:
            continue
        for axis in range(3):
            boxes[k, 2 * axis] = max(sl[axis].start - margin, 0)
            boxes[k, 2 * axis + 1] = min(sl[axis].stop + margin, shape[axis])
    return counts.astype(np.int64), boxes


def extract_roi_patches(intensity: np.ndarray, labels: np.ndarray, label_ids: Sequence[int], size: int, *,
                        margin: int = 2, clip: Sequence[float] = (0.5, 99.5), out: np.ndarray | None = None,
                        resize: Callable[[np.ndarray, tuple], np.ndarray] = resize_trilinear) -> RoiPatches:
    """Crop, mask, resample and normalise every ROI of one subject (paper 4.2.1).

    Parameters
    ----------
    intensity : float32[X, Y, Z]
        Skull-stripped T1 (FreeSurfer ``norm.mgz``), on the labels' grid.
    labels : int32[X, Y, Z]
        FreeSurfer ``aparc+aseg`` labels (non-negative).
    label_ids : int[n_roi]
        FreeSurfer label of each token, in token order (``config/rois.tsv``).
    size : int
        S, the patch edge in voxels (96 in the paper).
    margin : int
        Voxels of context added around each ROI's bounding box.
    clip : (low, high)
        Percentiles of the brain's intensities that bound the window.
    out : uint8[n_roi, S, S, S], optional
        Where to write the patches (e.g. a ``numpy.lib.format.open_memmap``), so a
        subject's 96 MB never needs a second copy in memory.
    resize : callable
        ``resize(float32 box, (S, S, S)) -> float32``; ``resize_naive`` for the reference. Must
        interpolate with convex weights (the box carries a 0.5 rounding offset, see below).

    Returns
    -------
    RoiPatches
    """
    n_roi = len(label_ids)
    if out is None:
        out = np.empty((n_roi, size, size, size), np.uint8)
    counts, boxes = label_boxes(labels, label_ids, margin)
    lo, hi = intensity_window(intensity, labels > 0, clip)
    # Scaled to [0, 255] once for the whole volume (the boxes overlap and together cover it
    # about twice), plus 0.5: trilinear weights are convex and sum to 1, so every resampled
    # value is its true value + 0.5 in [0.5, 255.5], and truncating to uint8 rounds it.
    shifted = np.clip(np.asarray(intensity, np.float32), lo, hi)
    shifted -= np.float32(lo)
    shifted *= np.float32(SCALE / (hi - lo))
    shifted += np.float32(0.5)
    half = np.float32(0.5)
    target = (size, size, size)
    for k, label in enumerate(label_ids):
        if counts[k] == 0:
            out[k] = 0
            continue
        x0, x1, y0, y1, z0, z1 = boxes[k]
        # Voxels of other labels in the box become 0 (0.5 shifted).
        box = np.where(labels[x0:x1, y0:y1, z0:z1] == label, shifted[x0:x1, y0:y1, z0:z1], half)
        out[k] = resize(box, target)  # float32 -> uint8 truncates: round(value) of the unshifted value
    return RoiPatches(patches=out, presence=(counts > 0).astype(np.uint8), voxel_counts=counts, boxes=boxes,
                      window=(lo, hi))


def write_roi_patches(npy_path: str | Path, info_path: str | Path, intensity: np.ndarray, labels: np.ndarray,
                      rois, size: int, *, margin: int, clip: Sequence[float], subject: str,
                      info_extra: dict | None = None) -> RoiPatches:
    """Extract one subject's patches straight into ``npy_path`` (memory-mapped) and write the sidecar.

    Both files are written under temporary names and renamed only when both are
    complete: a failure leaves neither.

    Parameters
    ----------
    npy_path, info_path : path
        ``uint8[n_roi, S, S, S]`` patches (``.npy``) and the JSON sidecar.
    intensity, labels : see ``extract_roi_patches``
    rois : DataFrame or dict of columns
        The ROI table (columns token, label_id, name), token order.
    size, margin, clip : see ``extract_roi_patches``
    subject : str
    info_extra : dict, optional
        More fields for the sidecar (source files, grid handling, voxel volume).

    Returns
    -------
    RoiPatches
        ``patches`` is the closed file's memory map (do not write to it).

    Raises
    ------
    InputDataError
        None of the table's labels occurs in the label image.
    """
    label_ids = [int(v) for v in rois["label_id"]]
    n_roi = len(label_ids)
    # Checked before anything is written, so a wrong label image leaves no output.
    present = np.isin(np.asarray(label_ids), np.unique(labels))
    if not present.any():
        found = np.unique(labels)
        raise InputDataError(
            f"none of the {n_roi} ROI labels of the ROI table occurs in the label image "
            f"(labels found: {', '.join(map(str, found[:12]))}{' ...' if found.size > 12 else ''}).",
            path=(info_extra or {}).get("aparc_aseg"), subject=subject,
            fix="pass FreeSurfer's mri/aparc+aseg.mgz (not aseg.mgz or another atlas) for this subject.")
    with atomic_output(npy_path) as tmp_npy, atomic_output(info_path) as tmp_info:
        mm = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.uint8, shape=(n_roi, size, size, size))
        result = extract_roi_patches(intensity, labels, label_ids, size, margin=margin, clip=clip, out=mm)
        mm.flush()
        del mm
        info = {
            "subject": subject,
            "format": "numpy .npy, uint8[n_roi, S, S, S]; value / 255 = clipped, rescaled intensity in [0, 1]",
            "shape": [n_roi, size, size, size],
            "scale": 1.0 / SCALE,
            "roi_size": size,
            "crop_margin_voxels": margin,
            "clip_percentiles": list(clip),
            "intensity_window": list(result.window),
            "tokens": [int(t) for t in rois["token"]],
            "names": [str(n) for n in rois["name"]],
            "label_ids": label_ids,
            "presence": result.presence.tolist(),
            "voxel_counts": result.voxel_counts.tolist(),
            "boxes": result.boxes.tolist(),
            "n_present": int(result.presence.sum()),
            **(info_extra or {}),
        }
        write_json(info, tmp_info)
    result.patches = open_roi_patches(npy_path)
    return result


def rebuild_fix(rule: str, *paths: str | Path) -> str:
    """The fix of a corrupt cached file: delete it (and its companions), then let Snakemake remake it.

    Snakemake reruns a job only when its output is missing or older than its inputs, so a
    damaged file that exists would be read again on the next run: deleting it is what
    makes ``rule`` run again, for this file alone.
    """
    quoted = " ".join(f"'{p}'" for p in paths)
    return f"delete it (rm {quoted}) and rerun the workflow: rule {rule} rebuilds it."


def npy_layout(path: str | Path, *, subject: str | None = None, rule: str,
               companions: Sequence[str | Path] = ()) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, checked against the file's size.

    Reads only the header (a few hundred bytes), so a truncated file is caught before
    anything memory-maps or reads it.

    Parameters
    ----------
    path : path to a ``.npy`` file
    subject : str, optional
        For the message.
    rule : str
        The rule that writes the file (named in the fix).
    companions : paths
        Files to delete with it (its sidecar).

    Returns
    -------
    shape : tuple of int
    dtype : numpy dtype
    offset : int
        Bytes before the array data.

    Raises
    ------
    InputDataError
        Missing file; not a ``.npy`` (bad magic / header); fewer or more bytes than the header's
        shape and dtype need (truncated, or overwritten).
    """
    path = Path(path)
    fix = rebuild_fix(rule, path, *companions)
    if not path.is_file():
        raise InputDataError("file not found.", path=path, subject=subject, fix=f"rerun the workflow: rule {rule} "
                                                                                "writes it.")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:  # format 3.0 (non-ASCII field names) has no public header reader
                shape, _, dtype = np.lib.format._read_array_header(fh, version)
            offset = fh.tell()
    except Exception as exc:  # numpy raises ValueError / EOFError / SyntaxError for broken headers
        raise InputDataError(f"not a readable .npy file ({type(exc).__name__}: {exc}).", path=path, subject=subject,
                             fix=fix) from exc
    if dtype.hasobject:
        raise InputDataError("the .npy file holds Python objects, not an array of numbers.", path=path,
                             subject=subject, fix=fix)
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size != need:
        raise InputDataError(
            f"{'truncated' if size < need else 'longer than its header says'}: {size} bytes, but a "
            f"{dtype}{list(shape)} array needs {need}.", path=path, subject=subject, fix=fix)
    return tuple(shape), dtype, offset


def check_roi_file(npy_path: str | Path, info: dict, info_path: str | Path) -> int:
    """A subject's patch file agrees with its sidecar: shape ``info["shape"]``, uint8, full size.

    Parameters
    ----------
    npy_path : path to ``uint8[n_roi, S, S, S]``
    info : dict
        The sidecar (``read_roi_info``).
    info_path : path
        Where the sidecar lives (deleted with the patches in the fix).

    Returns
    -------
    int : the file's size in bytes

    Raises
    ------
    InputDataError
        Truncated or damaged file, or one written for another ROI table or ROI size.
    """
    subject = info.get("subject")
    shape, dtype, _ = npy_layout(npy_path, subject=subject, rule="roi_extract", companions=[info_path])
    expected = tuple(int(v) for v in info.get("shape", ()))
    if shape != expected or dtype != np.uint8:
        raise InputDataError(f"holds {dtype}{list(shape)}, but its sidecar {info_path} says uint8{list(expected)}.",
                             path=npy_path, subject=subject, fix=rebuild_fix("roi_extract", npy_path, info_path))
    return Path(npy_path).stat().st_size


def open_roi_patches(npy_path: str | Path, *, subject: str | None = None) -> np.ndarray:
    """A subject's patches, memory-mapped read-only: indexing one ROI reads only its S^3 bytes.

    Parameters
    ----------
    npy_path : path to ``uint8[n_roi, S, S, S]``
    subject : str, optional
        For messages; defaults to the file name (``<subject>.npy``).

    Returns
    -------
    numpy.memmap uint8[n_roi, S, S, S]
        Multiply by ``1 / 255`` (the sidecar's ``scale``) for intensities in [0, 1].

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file, or not a 4-D uint8 array (fix: delete it so that
        rule roi_extract rebuilds it).
    """
    npy_path = Path(npy_path)
    subject = subject or npy_path.stem
    sidecar = npy_path.with_suffix(".json")
    shape, dtype, _ = npy_layout(npy_path, subject=subject, rule="roi_extract", companions=[sidecar])
    if dtype != np.uint8 or len(shape) != 4:
        raise InputDataError(f"holds {dtype}{list(shape)}, not ROI patches uint8[n_roi, S, S, S].", path=npy_path,
                             subject=subject, fix=rebuild_fix("roi_extract", npy_path, sidecar))
    return np.load(npy_path, mmap_mode="r")
