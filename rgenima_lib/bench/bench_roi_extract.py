"""ROI extraction speed and memory (issue 3): the extractor beside the naive baseline and the floor.

Setting: synthetic 1 mm subjects from the phantom (177 x 213 x 171 voxels, the 109
ROIs of ``config/rois.tsv``), S = 96 (the paper), one core (BLAS limited to one
thread), so "subjects per second" is per core. Interleaved in one process
(``paired_timings``: warm-up, round-robin repetitions, median and spread):

- ``fast``: ``extract_roi_patches`` (one bincount + one find_objects pass for all
  boxes, the window applied once, mask within the box, banded trilinear products,
  one truncating cast per patch into the preallocated output);
- ``naive``: what a straightforward script does: per ROI a full-volume mask,
  its bounding box from ``np.nonzero``, crop, ``scipy.ndimage.zoom(order=1)``.
  Same crop, mask, window and interpolation, so outputs must agree to one grey
  level (float32 vs float64 rounding);
- ``floor``: reading the two input volumes once and writing the 109 x S^3 uint8
  output once, what no extractor can beat;
- parts of ``fast``: ``label_boxes``, ``intensity_window`` and the resizing of the
  subject's masked boxes alone (``resize_boxes``), to show where the time goes;
- ``full`` adds ``fast_with_zoom`` (the fast extractor with zoom as resizer).

Peak memory per subject: ``tracemalloc`` peak of numpy allocations during one
in-memory extraction, and the maximum resident set of one ``rgenima roi-extract``
process (load .mgz, extract, write the memory-mapped .npy; one run each, with its wall time).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

from rgenima_lib.bench.paired import paired_timings
from rgenima_lib.imaging.resample import resize_naive, resize_trilinear
from rgenima_lib.imaging.roi_extract import SCALE, extract_roi_patches, intensity_window, label_boxes
from rgenima_lib.synthetic.anatomy import build_phantom
from rgenima_lib.synthetic.render import render_subject
from rgenima_lib.vocabulary import read_rois_table

REPO = Path(__file__).resolve().parents[2]

# Runs argv[1:], prints the child's peak resident set in kB (Linux ru_maxrss). It includes the
# file-backed pages of the memory-mapped output (109 x S^3 bytes), which the kernel can drop at will.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def extract_naive(intensity: np.ndarray, labels: np.ndarray, label_ids, size: int, *, margin: int = 2,
                  clip=(0.5, 99.5)) -> np.ndarray:
    """The naive baseline: full-volume mask and ``ndimage.zoom(order=1)`` per ROI.

    Parameters
    ----------
    intensity : float32[X, Y, Z]
    labels : int32[X, Y, Z]
    label_ids : int[n_roi]
    size : int

    Returns
    -------
    uint8[n_roi, S, S, S]
    """
    lo, hi = intensity_window(intensity, labels > 0, clip)
    out = np.zeros((len(label_ids), size, size, size), np.uint8)
    for k, label in enumerate(label_ids):
        mask = labels == label
        idx = np.nonzero(mask)
        if idx[0].size == 0:
            continue
        box = tuple(slice(max(int(i.min()) - margin, 0), min(int(i.max()) + 1 + margin, n))
                    for i, n in zip(idx, labels.shape))
        crop = (np.clip(intensity[box], lo, hi) - lo) * (SCALE / (hi - lo)) * mask[box]
        factors = [size / n for n in crop.shape]
        patch = ndimage.zoom(crop.astype(np.float64), factors, order=1, mode="nearest")
        out[k] = np.clip(np.rint(patch), 0, SCALE)
    return out


def extraction_floor(intensity: np.ndarray, labels: np.ndarray, n_roi: int, size: int) -> np.ndarray:
    """The floor: read both input volumes once (float32[X, Y, Z], int32[X, Y, Z]), write uint8[n_roi, S, S, S] once."""
    intensity.max()
    labels.max()
    out = np.empty((n_roi, size, size, size), np.uint8)
    out.fill(1)
    return out


def masked_boxes(intensity: np.ndarray, labels: np.ndarray, label_ids, margin: int = 2) -> list[np.ndarray]:
    """The float32 box of each present ROI, other labels zeroed: what ``extract_roi_patches`` resizes."""
    counts, boxes = label_boxes(labels, label_ids, margin)
    out = []
    for label, count, (x0, x1, y0, y1, z0, z1) in zip(label_ids, counts, boxes):
        if count:
            box = (slice(x0, x1), slice(y0, y1), slice(z0, z1))
            out.append(np.where(labels[box] == label, intensity[box], 0).astype(np.float32))
    return out


def resize_all(boxes: list[np.ndarray], size: int) -> None:
    """Resize every box to S^3, dropping each result at once (keeping 109 float32 S^3 results would
    time the allocation of 385 MB, which the extractor never holds)."""
    for box in boxes:
        resize_trilinear(box, (size, size, size))


def subject_images(i: int, phantom=None):
    """Rendered 1 mm phantom subject ``i`` (norm, aparc+aseg, affine): pose and atrophy vary with i."""
    phantom = build_phantom(1.0) if phantom is None else phantom
    return render_subject(phantom, {17: 0.1 * i, 53: 0.05 * i}, np.random.default_rng([11, i]))


def cli_end_to_end(images, tmp: Path, sizes=(96, 32)) -> dict:
    """One ``rgenima roi-extract`` process per S: wall time, peak resident set, output size."""
    import nibabel as nib

    mri = tmp / "sub" / "mri"
    mri.mkdir(parents=True)
    nib.save(nib.MGHImage(images.norm, images.affine), mri / "norm.mgz")
    nib.save(nib.MGHImage(images.aparc_aseg, images.affine), mri / "aparc+aseg.mgz")
    result = {}
    for s in sizes:
        cmd = [str(Path(sys.executable).parent / "rgenima"), "roi-extract", "--subject", "bench",
               "--aparc-aseg", str(mri / "aparc+aseg.mgz"), "--intensity", str(mri / "norm.mgz"),
               "--rois", str(REPO / "config" / "rois.tsv"), "--roi-size", str(s),
               "--output", str(tmp / f"bench{s}.npy"), "--info", str(tmp / f"bench{s}.json")]
        # PYTHONPATH: the command runs this checkout's package, not whichever one the environment installed.
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PATH": str(Path(sys.executable).parent), "HOME": str(tmp), "PYTHONPATH": str(REPO)}
        start = time.perf_counter()
        # A small launcher process runs the command and reports its peak resident set: a child
        # forked straight from this (large) process would inherit its high-water mark.
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"rgenima roi-extract failed: {proc.stderr[-2000:]}")
        result[f"S={s}"] = {"wall_s_one_run": round(time.perf_counter() - start, 2),
                            "maxrss_mb": round(int(proc.stdout.split()[-1]) / 1e3, 1),
                            "npy_mb": round((tmp / f"bench{s}.npy").stat().st_size / 1e6, 2)}
    return result


def run(out_dir: Path, full: bool) -> dict:
    """Time one subject's extraction beside the naive baseline and the floor; agreement on every subject.

    Parameters
    ----------
    out_dir : Path
        Unused (the temporary files live in a temporary folder).
    full : bool
        3 subjects, 5 rounds and the zoom-resizer variant (default: 1 subject, 3 rounds).

    Returns
    -------
    dict
        ``setting``, ``timings`` (paired_timings, one subject per call), ``agreement``,
        ``peak_memory_mb``, ``cli_end_to_end``.
    """
    from threadpoolctl import threadpool_limits

    rois = read_rois_table(REPO / "config" / "rois.tsv")
    label_ids = [int(v) for v in rois["label_id"]]
    n_subjects, repeats, size = (3, 5, 96) if full else (1, 3, 96)
    phantom = build_phantom(1.0)
    agreement = []
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(n_subjects):
            images = subject_images(i, phantom)
            intensity, labels = images.norm.astype(np.float32), images.aparc_aseg.astype(np.int32)
            fast = extract_roi_patches(intensity, labels, label_ids, size).patches
            diff = np.abs(fast.astype(np.int16) - extract_naive(intensity, labels, label_ids, size))
            agreement.append({"max_abs_diff_grey_levels": int(diff.max()),
                              "frac_voxels_differing": float((diff > 0).mean())})
            if i == 0:
                first, first_images = (intensity, labels), images
        intensity, labels = first
        boxes = masked_boxes(intensity, labels, label_ids)
        brain = labels > 0
        candidates = {
            # Each allocates its own output, as the naive script does (page faults included).
            "fast": lambda: extract_roi_patches(intensity, labels, label_ids, size),
            "naive": lambda: extract_naive(intensity, labels, label_ids, size),
            "floor": lambda: extraction_floor(intensity, labels, len(label_ids), size),
            "label_boxes": lambda: label_boxes(labels, label_ids, 2),
            "intensity_window": lambda: intensity_window(intensity, brain),
            "resize_boxes": lambda: resize_all(boxes, size),
        }
        if full:
            candidates["fast_with_zoom"] = lambda: extract_roi_patches(intensity, labels, label_ids, size,
                                                                       resize=resize_naive)
        # No separate warm-up: the agreement check above has just run fast and naive (about 5 s).
        timings = paired_timings(candidates, repeats=repeats, warmup=False,
                                 ratios={"naive_over_fast": ("naive", "fast"), "fast_over_floor": ("fast", "floor"),
                                         "resize_boxes_over_fast": ("resize_boxes", "fast")})
        tracemalloc.start()
        extract_roi_patches(intensity, labels, label_ids, size, out=np.lib.format.open_memmap(
            tmp / "mm.npy", mode="w+", dtype=np.uint8, shape=(len(label_ids), size, size, size)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        cli = cli_end_to_end(first_images, tmp)
    fast_s = timings["fast"]["median_s"]
    return {
        "setting": {"roi_size": size, "n_rois": len(label_ids), "n_subjects_compared": n_subjects, "voxel_mm": 1.0,
                    "grid": list(labels.shape), "threads": 1},
        "timings": timings,
        "subjects_per_s_per_core": {"fast": round(1 / fast_s, 3),
                                    "naive": round(1 / timings["naive"]["median_s"], 3)},
        "agreement": {"max_abs_diff_grey_levels": max(a["max_abs_diff_grey_levels"] for a in agreement),
                      "frac_voxels_differing": max(a["frac_voxels_differing"] for a in agreement)},
        "peak_memory_mb": {"extraction_numpy_tracemalloc": round(peak / 1e6, 1),
                           "rgenima_roi_extract_process_maxrss": cli[f"S={size}"]["maxrss_mb"]},
        "cli_end_to_end": cli,
    }
