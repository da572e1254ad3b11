"""Catalog cases of the label image given to roi-extract: other parcellations, float, 4-D, empty, other grid.

The label volumes are built with nibabel from the label numbers of
``config/FreeSurferColorLUT.txt`` and ``config/rois.tsv``: an aseg.mgz holds the
41 subcortical labels of the ROI table plus one cerebral-cortex label per
hemisphere (3, 42); a Destrieux aparc.a2009s+aseg holds the same subcortical
labels and the cortical parcels 11101-11175 / 12101-12175. Each label fills a
small cube, so every label is present with a known voxel count.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from catalog.base import REPO, BadInput, Invocation, rgenima

SUBJECT = "011_S_0002"
ROIS_TSV = REPO / "config" / "rois.tsv"
LUT = REPO / "config" / "FreeSurferColorLUT.txt"
#: FreeSurfer's conformed orientation (LIA), 1 mm voxels, centred: what recon-all writes.
CONFORMED = np.array([[-1.0, 0, 0, 24], [0, 0, 1, -24], [0, -1, 0, 24], [0, 0, 0, 1]])
SHAPE = (48, 48, 48)
BLOCK, STEP = 3, 4   # each label fills a 3^3 cube on a 4-voxel lattice


def roi_label_ids() -> list[int]:
    """The 109 labels of config/rois.tsv, token order."""
    rows = [line.split("\t") for line in ROIS_TSV.read_text().splitlines() if line and not line.startswith("#")]
    col = rows[0].index("label_id")
    return [int(r[col]) for r in rows[1:]]


def lut_labels(lo: int, hi: int) -> list[int]:
    """Label numbers of the FreeSurfer colour table in [lo, hi)."""
    out = []
    for line in LUT.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].isdigit() and lo <= int(parts[0]) < hi:
            out.append(int(parts[0]))
    return out


def aparc_aseg_labels() -> list[int]:
    return roi_label_ids()


def aseg_labels() -> list[int]:
    """aseg.mgz: the subcortical labels, the cortex as one label per hemisphere (3, 42)."""
    return sorted({v for v in roi_label_ids() if v < 1000} | {3, 42})


def a2009s_labels() -> list[int]:
    """aparc.a2009s+aseg.mgz: subcortical labels and the Destrieux parcels (no 'Unknown' 11100 / 12100)."""
    return sorted({v for v in roi_label_ids() if v < 1000} | set(lut_labels(11101, 11176))
                  | set(lut_labels(12101, 12176)))


def label_volume(labels: list[int], shape=SHAPE) -> np.ndarray:
    """int32[shape]: label k fills the k-th 3^3 cube of a 4-voxel lattice; background 0."""
    vol = np.zeros(shape, np.int32)
    per_axis = [(s - BLOCK) // STEP + 1 for s in shape]
    assert len(labels) <= np.prod(per_axis), "volume too small for the labels"
    for k, label in enumerate(labels):
        i, j, m = np.unravel_index(k, per_axis)
        vol[i * STEP:i * STEP + BLOCK, j * STEP:j * STEP + BLOCK, m * STEP:m * STEP + BLOCK] = label
    return vol


def intensity_volume(labels: np.ndarray) -> np.ndarray:
    """uint8 norm.mgz-like image: 0 outside the brain, a brightness per label inside (40-220)."""
    rng = np.random.default_rng(0)
    out = np.where(labels > 0, 40 + (labels % 181), 0).astype(np.float32)
    out += np.where(labels > 0, rng.normal(0, 3, labels.shape), 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def freesurfer_subject(tmp: Path, labels: np.ndarray, *, label_affine=CONFORMED, intensity: np.ndarray | None = None,
                       intensity_affine=CONFORMED, subject: str = SUBJECT) -> Path:
    """<tmp>/fs/<subject>/mri with aparc+aseg.mgz (the given label image, at the name the README asks for)
    and norm.mgz; returns the mri folder."""
    mri = tmp / "fs" / subject / "mri"
    mri.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(labels, label_affine), mri / "aparc+aseg.mgz")
    if intensity is None:
        intensity = intensity_volume(np.asarray(labels, np.int64) if labels.ndim == 3 else labels[..., 0].astype(np.int64))
    nib.save(nib.MGHImage(intensity, intensity_affine), mri / "norm.mgz")
    return mri


def roi_extract(tmp: Path, mri: Path, *extra: str, subject: str = SUBJECT) -> tuple[list[str], list[Path]]:
    """argv of `rgenima roi-extract` on one subject folder (109 ROIs at S = 4), and its outputs."""
    out = tmp / "results" / "imaging" / "rois"
    npy, info = out / f"{subject}.npy", out / f"{subject}.json"
    return rgenima("roi-extract", "--subject", subject, "--aparc-aseg", mri / "aparc+aseg.mgz",
                   "--intensity", mri / "norm.mgz", "--rois", ROIS_TSV, "--roi-size", "4", "--n-rois", "109",
                   "--output", npy, "--info", info, *extra), [npy, info]


# --- cases ---------------------------------------------------------------------------------------

def aseg_as_aparc_aseg(tmp: Path) -> Invocation:
    mri = freesurfer_subject(tmp, label_volume(aseg_labels()))
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[str(mri / "aparc+aseg.mgz"), SUBJECT, "aseg only: no cortical labels",
                                                 "Fix: give FreeSurfer's mri/aparc+aseg.mgz"])


def destrieux_as_aparc_aseg(tmp: Path) -> Invocation:
    mri = freesurfer_subject(tmp, label_volume(a2009s_labels()))
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[str(mri / "aparc+aseg.mgz"), SUBJECT, "Destrieux aparc.a2009s+aseg",
                                                 "Fix: give FreeSurfer's mri/aparc+aseg.mgz"])


def float_labels(tmp: Path) -> Invocation:
    # A norm.mgz-like float image given as the label image: fractional values.
    labels = label_volume(aparc_aseg_labels()).astype(np.float32)
    labels[labels > 0] += 0.37
    mri = freesurfer_subject(tmp, labels, intensity=intensity_volume(label_volume(aparc_aseg_labels())))
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[str(mri / "aparc+aseg.mgz"), SUBJECT, "non-integer values",
                                                 "Fix: pass FreeSurfer's mri/aparc+aseg.mgz"])


def float_whole_labels(tmp: Path) -> Invocation:
    labels = label_volume(aparc_aseg_labels())
    mri = freesurfer_subject(tmp, labels.astype(np.float32), intensity=intensity_volume(labels))
    command, outputs = roi_extract(tmp, mri)

    def check(proc):
        info = json.loads(outputs[1].read_text())
        assert info["n_present"] == 109 and info["voxel_counts"] == [BLOCK ** 3] * 109, info["n_present"]

    return Invocation(command, outputs, exit_code=0, check=check)


def four_d_labels(tmp: Path) -> Invocation:
    labels = label_volume(aparc_aseg_labels())
    mri = freesurfer_subject(tmp, np.stack([labels, labels], axis=-1), intensity=intensity_volume(labels))
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[str(mri / "aparc+aseg.mgz"), SUBJECT, "4-D image of 2 frames",
                                                 "Fix: pass a single 3D FreeSurfer volume"])


def all_zero_labels(tmp: Path) -> Invocation:
    mri = freesurfer_subject(tmp, np.zeros(SHAPE, np.int32), intensity=intensity_volume(label_volume(aseg_labels())))
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[str(mri / "aparc+aseg.mgz"), SUBJECT, "all zero",
                                                 "re-run recon-all for this subject"])


def _two_mm_labels(tmp: Path) -> tuple[Path, np.ndarray]:
    """Labels of a 2 mm run next to a 1 mm norm.mgz over the same field of view.

    Label voxel c covers the intensity voxels 2c and 2c + 1 on each axis (its centre lies
    half a 1 mm voxel past 2c), so nearest neighbour is never a tie: the resampled labels
    are the 2 mm labels repeated twice along every axis.
    """
    coarse = label_volume(aparc_aseg_labels(), shape=(24, 24, 24))
    affine = CONFORMED.copy()
    affine[:3, :3] *= 2
    affine[:3, 3] = (CONFORMED @ [0.5, 0.5, 0.5, 1.0])[:3]
    fine = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    return freesurfer_subject(tmp, coarse, label_affine=affine, intensity=intensity_volume(fine)), fine


def other_grid_labels(tmp: Path) -> Invocation:
    mri, _ = _two_mm_labels(tmp)
    command, outputs = roi_extract(tmp, mri)
    return Invocation(command, outputs, message=[
        str(mri / "aparc+aseg.mgz"), str(mri / "norm.mgz"), SUBJECT, "shape (24, 24, 24)", "shape (48, 48, 48)",
        "affine [-2 0 0 23.5;", "affine [-1 0 0 24;", "imaging.grid_mismatch: resample_labels"])


def other_grid_resampled(tmp: Path) -> Invocation:
    mri, fine = _two_mm_labels(tmp)
    command, outputs = roi_extract(tmp, mri, "--grid-mismatch", "resample_labels")

    def check(proc):
        info = json.loads(outputs[1].read_text())
        assert info["labels_resampled"] is True and info["n_present"] == 109
        # Each 2 mm label voxel becomes the 2^3 intensity voxels it covers (nearest neighbour, no averaging).
        expected = [int((fine == v).sum()) for v in aparc_aseg_labels()]
        assert expected == [8 * BLOCK ** 3] * 109
        assert info["voxel_counts"] == expected, (info["voxel_counts"][:5], expected[:5])

    return Invocation(command, outputs, exit_code=0, check=check)


CASES = [
    BadInput("aseg-as-aparc-aseg", "label_images",
             "a real-shaped `aseg.mgz` (41 subcortical labels + cortex 3 / 42, no Desikan parcels) given as aparc+aseg",
             "refused: names the file, the subject, \"aseg only: no cortical labels\" and mri/aparc+aseg.mgz",
             aseg_as_aparc_aseg),
    BadInput("destrieux-as-aparc-aseg", "label_images",
             "a Destrieux `aparc.a2009s+aseg.mgz` (cortical labels 11101-12175) given as aparc+aseg",
             "refused: names the file, the subject, \"Destrieux aparc.a2009s+aseg\" and mri/aparc+aseg.mgz",
             destrieux_as_aparc_aseg),
    BadInput("float-label-image", "label_images", "a float label image with non-integer values (an intensity image)",
             "refused: names the file, the subject, the voxel count and an example value", float_labels),
    BadInput("float-whole-labels", "label_images", "aparc+aseg stored as float32 (every value a whole number)",
             "read as its integer labels (float32 holds them exactly): all 109 ROIs present", float_whole_labels),
    BadInput("four-d-label-image", "label_images", "a 4-D label image (2 frames)",
             "refused: names the file, the subject and the frame count", four_d_labels),
    BadInput("all-zero-label-image", "label_images", "an all-zero label image",
             "refused: names the file and the subject; fix: re-run recon-all", all_zero_labels),
    BadInput("label-image-other-grid", "label_images",
             "aparc+aseg on a 2 mm grid next to a 1 mm norm.mgz (`imaging.grid_mismatch: error`, the default)",
             "refused: names both files, both shapes and affines, and `imaging.grid_mismatch: resample_labels`",
             other_grid_labels),
    BadInput("label-image-other-grid-resampled", "label_images",
             "the same with `imaging.grid_mismatch: resample_labels`",
             "labels moved onto the intensity grid by nearest neighbour (voxel counts x 8), recorded in the sidecar",
             other_grid_resampled),
]
