"""ROI extraction speed and memory (issue 3): the vectorised extractor against the naive baseline.

Setting: synthetic 1 mm subjects from the phantom (177 x 213 x 171 voxels, the 109
ROIs of ``config/rois.tsv``), S = 96 (the paper), one core (BLAS limited to one
thread), so "subjects per second" is per core.

- ``fast``: ``extract_roi_patches`` (one bincount + one find_objects pass for all
  boxes, mask within the box, separable trilinear resize as three BLAS products).
- ``naive``: what a straightforward script does: per ROI a full-volume mask,
  its bounding box from ``np.nonzero``, crop, ``scipy.ndimage.zoom(order=1)``.
  Same crop, mask, window and interpolation, so outputs must agree to one grey
  level (float32 vs float64 rounding).
- ``fast_with_zoom``: the fast extractor with zoom as resizer, to show where the
  time goes.

Peak memory per subject: ``tracemalloc`` peak of numpy allocations during one
in-memory extraction, and the maximum resident set of one ``rgenima roi-extract``
process (load .mgz, extract, write the memory-mapped .npy).
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

from rgenima_lib.imaging.roi_extract import SCALE, extract_roi_patches, intensity_window
from rgenima_lib.imaging.resample import resize_naive
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


def _subjects(n: int):
    """n rendered 1 mm phantom subjects (norm, aparc+aseg, affine), different poses and atrophy."""
    phantom = build_phantom(1.0)
    for i in range(n):
        rng = np.random.default_rng([11, i])
        images = render_subject(phantom, {17: 0.1 * i, 53: 0.05 * i}, rng)
        yield images


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(out_dir: Path, full: bool) -> dict:
    from threadpoolctl import threadpool_limits

    import nibabel as nib

    rois = read_rois_table(REPO / "config" / "rois.tsv")
    label_ids = [int(v) for v in rois["label_id"]]
    n_subjects = 6 if full else 2
    size = 96
    rows = []
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, images in enumerate(_subjects(n_subjects)):
            intensity = images.norm.astype(np.float32)
            labels = images.aparc_aseg.astype(np.int32)
            extract_roi_patches(intensity, labels, label_ids[:3], size)  # warm-up (BLAS, caches)
            fast = extract_roi_patches(intensity, labels, label_ids, size)
            t_fast = _time(lambda: extract_roi_patches(intensity, labels, label_ids, size), repeat=2)
            t_zoom = _time(lambda: extract_roi_patches(intensity, labels, label_ids, size, resize=resize_naive))
            naive = None

            def run_naive():
                nonlocal naive
                naive = extract_naive(intensity, labels, label_ids, size)

            t_naive = _time(run_naive)
            diff = np.abs(fast.patches.astype(np.int16) - naive)
            tracemalloc.start()
            extract_roi_patches(intensity, labels, label_ids, size, out=np.lib.format.open_memmap(
                tmp / "mm.npy", mode="w+", dtype=np.uint8, shape=(len(label_ids), size, size, size)))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append({"t_fast_s": t_fast, "t_fast_with_zoom_s": t_zoom, "t_naive_s": t_naive,
                         "max_abs_diff_levels": int(diff.max()), "frac_voxels_differing": float((diff > 0).mean()),
                         "tracemalloc_peak_mb": peak / 1e6, "n_present": int(fast.presence.sum())})
            if i == 0:  # one subject through the real command: .mgz in, memory-mapped .npy out
                mri = tmp / "sub" / "mri"
                mri.mkdir(parents=True)
                nib.save(nib.MGHImage(images.norm, images.affine), mri / "norm.mgz")
                nib.save(nib.MGHImage(images.aparc_aseg, images.affine), mri / "aparc+aseg.mgz")
                sizes = {}
                for s in (size, 32):
                    cmd = [str(Path(sys.executable).parent / "rgenima"), "roi-extract", "--subject", "bench",
                           "--aparc-aseg", str(mri / "aparc+aseg.mgz"), "--intensity", str(mri / "norm.mgz"),
                           "--rois", str(REPO / "config" / "rois.tsv"), "--roi-size", str(s),
                           "--output", str(tmp / f"bench{s}.npy"), "--info", str(tmp / f"bench{s}.json")]
                    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                           "PATH": str(Path(sys.executable).parent), "HOME": str(tmp)}
                    start = time.perf_counter()
                    # A small launcher process runs the command and reports its peak resident set: a child
                    # forked straight from this (large) process would inherit its high-water mark.
                    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, capture_output=True,
                                          text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"rgenima roi-extract failed: {proc.stderr[-2000:]}")
                    sizes[s] = {"wall_s": time.perf_counter() - start,
                                "maxrss_mb": int(proc.stdout.split()[-1]) / 1e3,
                                "bytes": (tmp / f"bench{s}.npy").stat().st_size}
    t_fast = float(np.mean([r["t_fast_s"] for r in rows]))
    t_naive = float(np.mean([r["t_naive_s"] for r in rows]))
    t_zoom = float(np.mean([r["t_fast_with_zoom_s"] for r in rows]))
    return {
        "setting": {"roi_size": size, "n_rois": len(label_ids), "n_subjects": n_subjects, "voxel_mm": 1.0,
                    "grid": list(labels.shape), "threads": 1},
        "fast": {"s_per_subject": round(t_fast, 3), "subjects_per_s_per_core": round(1 / t_fast, 3)},
        "naive": {"s_per_subject": round(t_naive, 3), "subjects_per_s_per_core": round(1 / t_naive, 3)},
        "fast_with_zoom_resize": {"s_per_subject": round(t_zoom, 3)},
        "speedup_vs_naive": round(t_naive / t_fast, 2),
        "max_abs_diff_grey_levels": max(r["max_abs_diff_levels"] for r in rows),
        "frac_voxels_differing": max(r["frac_voxels_differing"] for r in rows),
        "peak_memory_mb": {"extraction_numpy_tracemalloc": round(max(r["tracemalloc_peak_mb"] for r in rows), 1),
                           "rgenima_roi_extract_process_maxrss": round(sizes[size]["maxrss_mb"], 1)},
        "cli_end_to_end": {f"S={s}": {"wall_s": round(v["wall_s"], 2), "maxrss_mb": round(v["maxrss_mb"], 1),
                                      "npy_mb": round(v["bytes"] / 1e6, 2)} for s, v in sizes.items()},
        "per_subject": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
    }
