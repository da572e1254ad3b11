"""Imaging stage, unit level: resampling, ROI patches, whole-brain input, QC, FreeSurfer check, bad input.

Small label / intensity volumes are built here with nibabel; the workflow-level
tests (synthetic cohort, recon-all stand-in) are in tests/workflow/test_imaging_workflow.py.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import read_png
from rgenima_lib.cli import main as rgenima
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging import freesurfer, qc, volumes
from rgenima_lib.imaging.resample import linear_weights, resize_naive, resize_trilinear
from rgenima_lib.imaging.roi_extract import extract_roi_patches, label_boxes, open_roi_patches, write_roi_patches
from rgenima_lib.imaging.wholebrain import wholebrain_volume

SUBJECT = "002_S_0001"
# Three ROIs in token order; label 2035 never occurs in the volumes below (a missing ROI).
ROI_LABELS = [17, 53, 1001, 2035]


def rois_table() -> pd.DataFrame:
    return pd.DataFrame({"token": range(4), "label_id": ROI_LABELS,
                         "name": ["Left-Hippocampus", "Right-Hippocampus", "ctx-lh-bankssts", "ctx-rh-insula"],
                         "hemisphere": ["left", "right", "left", "right"],
                         "kind": ["subcortical", "subcortical", "cortical", "cortical"],
                         "mni_x": 0.0, "mni_y": 0.0, "mni_z": 0.0})


def toy_subject(shape=(40, 44, 36)):
    """labels int32 and intensity float32 on one grid: three blobs, each with its own brightness."""
    labels = np.zeros(shape, np.int32)
    labels[4:14, 6:20, 5:15] = 17
    labels[20:34, 22:40, 18:30] = 53
    labels[16:18, 2:5, 30:33] = 1001
    labels[30:38, 2:8, 2:6] = 2   # a label outside the ROI table
    rng = np.random.default_rng(0)
    intensity = rng.normal(20, 2, shape).astype(np.float32)
    for label, value in ((17, 60.0), (53, 90.0), (1001, 120.0), (2, 110.0)):
        intensity[labels == label] = value + rng.normal(0, 1, int((labels == label).sum()))
    intensity[labels == 0] = 0
    return labels, intensity


@pytest.fixture
def fs_subject(tmp_path):
    """A FreeSurfer-like subject folder (mri/aparc+aseg.mgz, mri/norm.mgz) and the ROI table file."""
    labels, intensity = toy_subject()
    mri = tmp_path / "fs" / SUBJECT / "mri"
    mri.mkdir(parents=True)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    nib.save(nib.MGHImage(labels, affine), mri / "aparc+aseg.mgz")
    nib.save(nib.MGHImage(np.clip(intensity, 0, 255).astype(np.uint8), affine), mri / "norm.mgz")
    rois = tmp_path / "rois.tsv"
    rois_table().to_csv(rois, sep="\t", index=False)
    return tmp_path, mri


def roi_extract_args(tmp_path, mri, *extra, intensity="norm.mgz", labels="aparc+aseg.mgz"):
    out = tmp_path / "out"
    return out, ["roi-extract", "--subject", SUBJECT, "--aparc-aseg", str(mri / labels),
                 "--intensity", str(mri / intensity), "--rois", str(tmp_path / "rois.tsv"), "--roi-size", "12",
                 "--n-rois", "4", "--output", str(out / f"{SUBJECT}.npy"), "--info", str(out / f"{SUBJECT}.json"),
                 *extra]


# --- resampling -------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 9, 5), (1, 4, 6), (30, 11, 2), (13, 13, 13)])
@pytest.mark.parametrize("size", [4, 12])
def test_trilinear_matches_zoom(shape, size):
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    fast, naive = resize_trilinear(x, (size,) * 3), resize_naive(x, (size,) * 3)
    assert fast.shape == (size,) * 3
    np.testing.assert_allclose(fast, naive, atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 9, 5), (9, 40, 5), (5, 9, 40), (40, 5, 9), (5, 40, 9), (150, 30, 120)])
def test_trilinear_matches_zoom_in_every_axis_order(shape):
    # Each box shape makes a different axis order the cheapest (banded products, last product
    # on axis 2 or not, downsampling an axis longer than S).
    x = np.random.default_rng(2).random(shape).astype(np.float32)
    fast, naive = resize_trilinear(x, (24, 20, 16)), resize_naive(x, (24, 20, 16))
    assert fast.shape == (24, 20, 16) and fast.flags.c_contiguous
    np.testing.assert_allclose(fast, naive, atol=1e-5)


def test_trilinear_orders_cover_every_axis_first():
    from rgenima_lib.imaging.resample import _cheapest_order

    shapes = [(40, 9, 5), (9, 40, 5), (5, 9, 40), (40, 5, 9), (5, 40, 9), (150, 30, 120)]
    assert {_cheapest_order(s, (24, 20, 16))[0] for s in shapes} == {0, 1, 2}


def test_linear_weights_interpolate_corners_aligned():
    w = linear_weights(5, 9)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w @ np.arange(5.0), np.arange(9) / 2)  # a ramp stays a ramp, ends fixed


# --- ROI patches --------------------------------------------------------------------

def test_patches_keep_token_order_and_zero_missing_roi():
    labels, intensity = toy_subject()
    res = extract_roi_patches(intensity, labels, ROI_LABELS, 12, margin=2)
    assert res.patches.shape == (4, 12, 12, 12) and res.patches.dtype == np.uint8
    assert res.presence.tolist() == [1, 1, 1, 0]
    assert res.voxel_counts.tolist() == [10 * 14 * 10, 14 * 18 * 12, 2 * 3 * 3, 0]
    assert not res.patches[3].any() and res.boxes[3].tolist() == [-1] * 6
    # Each token holds its own structure: brightness order of the blobs (60 < 90 < 120) is kept.
    peaks = [int(res.patches[k].max()) for k in range(3)]
    assert peaks[0] < peaks[1] < peaks[2] <= 255
    # The margin adds 2 voxels per side, clipped at the volume's edge (label 1001 starts at y = 2).
    assert res.boxes[0].tolist() == [2, 16, 4, 22, 3, 17]
    assert res.boxes[2].tolist() == [14, 20, 0, 7, 28, 35]


def test_normalisation_clips_brain_percentiles():
    labels, intensity = toy_subject()
    res = extract_roi_patches(intensity, labels, ROI_LABELS, 8, clip=(0.5, 99.5))
    brain = intensity[labels > 0]
    assert res.window == pytest.approx(tuple(np.percentile(brain, [0.5, 99.5])))
    # The brightest ROI reaches the top of the window: stored 255 = clipped at the 99.5th percentile.
    assert res.patches[2].max() == 255


def test_patches_equal_naive_zoom_within_one_level():
    labels, intensity = toy_subject()
    fast = extract_roi_patches(intensity, labels, ROI_LABELS, 16).patches
    naive = extract_roi_patches(intensity, labels, ROI_LABELS, 16, resize=resize_naive).patches
    assert np.abs(fast.astype(int) - naive).max() <= 1


def test_naive_baseline_of_benchmark_agrees():
    from rgenima_lib.bench.bench_roi_extract import extract_naive

    labels, intensity = toy_subject()
    fast = extract_roi_patches(intensity, labels, ROI_LABELS, 10)
    naive = extract_naive(intensity, labels, ROI_LABELS, 10)
    assert np.abs(fast.patches.astype(int) - naive).max() <= 1


def test_label_boxes_single_pass_matches_masks():
    labels, _ = toy_subject()
    counts, boxes = label_boxes(labels, [53, 17], margin=0)
    idx = np.argwhere(labels == 53)
    assert counts[0] == len(idx)
    assert boxes[0].tolist() == [idx[:, 0].min(), idx[:, 0].max() + 1, idx[:, 1].min(), idx[:, 1].max() + 1,
                                 idx[:, 2].min(), idx[:, 2].max() + 1]


def test_written_patches_memory_map_and_sidecar(tmp_path):
    labels, intensity = toy_subject()
    npy, info = tmp_path / "s.npy", tmp_path / "s.json"
    write_roi_patches(npy, info, intensity, labels, rois_table(), 12, margin=2, clip=(0.5, 99.5), subject=SUBJECT)
    mm = open_roi_patches(npy)
    assert isinstance(mm, np.memmap) and mm.shape == (4, 12, 12, 12) and mm.dtype == np.uint8
    assert npy.stat().st_size == 4 * 12**3 + 128  # raw uint8 plus the .npy header: no compression, mmap-able
    meta = json.loads(info.read_text())
    assert meta["presence"] == [1, 1, 1, 0] and meta["label_ids"] == ROI_LABELS and meta["scale"] == 1 / 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.npy"]  # no temporary left behind


def test_cli_roi_extract(fs_subject, caplog):
    tmp_path, mri = fs_subject
    out, args = roi_extract_args(tmp_path, mri)
    assert rgenima(args) == 0
    assert open_roi_patches(out / f"{SUBJECT}.npy").shape == (4, 12, 12, 12)
    assert "1 ROI(s) missing" in caplog.text and "ctx-rh-insula" in caplog.text


# --- bad input: a clear error naming subject and file, and no output ------------------------

def _assert_refused(capsys, args, out: Path, *words):
    assert rgenima(args) == 2
    err = capsys.readouterr().err
    assert SUBJECT in err
    for word in words:
        assert word in err, err
    assert not out.exists() or not any(out.iterdir()), "partial output left behind"


def test_grid_mismatch_refused_then_resampled(fs_subject, capsys):
    tmp_path, mri = fs_subject
    labels = np.asarray(nib.load(mri / "aparc+aseg.mgz").dataobj)
    shifted = np.eye(4)
    shifted[:3, 3] = [-2.0, 0.0, 0.0]  # same shape, labels 2 mm off
    nib.save(nib.MGHImage(labels, shifted), mri / "shifted.mgz")
    out, args = roi_extract_args(tmp_path, mri, labels="shifted.mgz")
    _assert_refused(capsys, args, out, "shifted.mgz", "different voxel grids", "grid_mismatch")
    # The documented alternative: nearest-neighbour labels on the intensity grid.
    assert rgenima([*args, "--grid-mismatch", "resample_labels"]) == 0
    meta = json.loads((out / f"{SUBJECT}.json").read_text())
    # Label voxel i lies at x = i - 2 mm, i.e. intensity voxel i - 2: the hippocampus box moves 2 voxels.
    assert meta["labels_resampled"] is True and meta["voxel_counts"][0] == 10 * 14 * 10
    assert meta["boxes"][0][:2] == [0, 14]


def test_grid_shape_mismatch_refused(fs_subject, capsys):
    tmp_path, mri = fs_subject
    labels = np.asarray(nib.load(mri / "aparc+aseg.mgz").dataobj)[:, :, :34]
    nib.save(nib.MGHImage(np.ascontiguousarray(labels), np.eye(4)), mri / "small.mgz")
    out, args = roi_extract_args(tmp_path, mri, labels="small.mgz")
    _assert_refused(capsys, args, out, "small.mgz", "shape (40, 44, 34), affine [1 0 0 0; 0 1 0 0; 0 0 1 0]",
                    f"intensity image {mri / 'norm.mgz'} (shape (40, 44, 36)")


@pytest.mark.parametrize("kind", ["nan", "zero"])
def test_bad_intensity_refused(fs_subject, capsys, kind):
    tmp_path, mri = fs_subject
    data = np.zeros((40, 44, 36), np.float32)
    if kind == "nan":
        data[:] = 50.0
        data[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), mri / "bad.nii.gz")
    out, args = roi_extract_args(tmp_path, mri, intensity="bad.nii.gz")
    _assert_refused(capsys, args, out, "bad.nii.gz", "NaN" if kind == "nan" else "all zero")


def test_no_known_labels_refused(fs_subject, capsys):
    tmp_path, mri = fs_subject
    labels = np.zeros((40, 44, 36), np.int32)
    labels[5:20, 5:20, 5:20] = 3  # aseg's Left-Cerebral-Cortex: not an aparc+aseg ROI
    nib.save(nib.MGHImage(labels, np.eye(4)), mri / "aseg.mgz")
    out, args = roi_extract_args(tmp_path, mri, labels="aseg.mgz")
    _assert_refused(capsys, args, out, "aseg.mgz", "aseg only: no cortical labels; it holds 1 labels from 3 to 3")


def test_no_table_label_refused_when_table_is_subcortical(fs_subject, capsys):
    # A subcortical-only ROI table accepts an aseg, but still refuses a label image without any of its labels.
    tmp_path, mri = fs_subject
    rois_table().iloc[:1].to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    labels = np.zeros((40, 44, 36), np.int32)
    labels[5:20, 5:20, 5:20] = 3
    nib.save(nib.MGHImage(labels, np.eye(4)), mri / "aseg.mgz")
    out, args = roi_extract_args(tmp_path, mri, labels="aseg.mgz")
    args[args.index("--n-rois") + 1] = "1"
    _assert_refused(capsys, args, out, "aseg.mgz", "none of the 1 ROI labels")


def test_truncated_mgz_refused(fs_subject, capsys):
    tmp_path, mri = fs_subject
    whole = (mri / "aparc+aseg.mgz").read_bytes()
    (mri / "cut.mgz").write_bytes(whole[: len(whole) // 2])
    out, args = roi_extract_args(tmp_path, mri, labels="cut.mgz")
    _assert_refused(capsys, args, out, "cut.mgz", "truncated or corrupt")


# --- whole brain ----------------------------------------------------------------------------

def test_wholebrain_crops_to_brain_and_resizes():
    labels, intensity = toy_subject()
    volume, info = wholebrain_volume(intensity, (16, 16, 16))
    assert volume.shape == (16, 16, 16) and volume.dtype == np.uint8
    nz = np.argwhere(intensity != 0)
    assert info["box"] == [[int(nz[:, a].min()), int(nz[:, a].max()) + 1] for a in range(3)]
    assert volume.max() >= 250 and volume.min() == 0  # rescaled to the full range (up to interpolation)


def test_cli_wholebrain_refuses_empty_brain(tmp_path, capsys):
    nib.save(nib.MGHImage(np.zeros((8, 8, 8), np.uint8), np.eye(4)), tmp_path / "brain.mgz")
    out = tmp_path / "wb" / f"{SUBJECT}.npy"
    assert rgenima(["wholebrain", "--subject", SUBJECT, "--brain", str(tmp_path / "brain.mgz"),
                    "--shape", "8", "8", "8", "--output", str(out)]) == 2
    assert "brain.mgz" in capsys.readouterr().err and not out.exists()


# --- QC ----------------------------------------------------------------------------------------

def test_qc_flags_missing_and_small_rois():
    rois = rois_table()
    names = list(rois["name"])
    counts = pd.DataFrame([["A", 1.0, 100, 100, 50, 10], ["B", 1.0, 110, 90, 55, 12],
                           ["C", 1.0, 0, 0, 0, 11], ["D", 1.0, 105, 20, 5, 2]],
                          columns=["subject", "voxel_volume_mm3", *names])
    flags = qc.qc_flags(counts, rois, small_fraction=0.25, max_missing=2, max_small=1).set_index("subject")
    assert flags.loc["C", "flagged"] and flags.loc["C", "n_missing"] == 3
    assert flags.loc["D", "flagged"] and flags.loc["D", "n_small"] == 3  # 20 < 0.25*95, 5 < 0.25*52.5, 2 < 0.25*11
    assert not flags.loc["A", "flagged"] and not flags.loc["B", "flagged"]
    by_stage = qc.voxels_by_stage(counts, pd.Series({"A": "NC", "B": "NC", "C": "AD", "D": "AD"}), rois)
    hip = by_stage[(by_stage["name"] == "Left-Hippocampus")].set_index("stage")
    assert hip.loc["NC", "mean_voxels"] == 105 and hip.loc["AD", "ratio_to_nc"] == pytest.approx(52.5 / 105)
    check = qc.planted_atrophy_check(by_stage, {"AD": [{"roi": "Left-Hippocampus", "label_id": 17,
                                                        "atrophy": 0.25}]})
    assert check["smaller"].tolist() == [True]


def test_montage_png(tmp_path):
    labels, intensity = toy_subject()
    res = extract_roi_patches(intensity, labels, ROI_LABELS, 12)
    out = tmp_path / "montage.png"
    qc.roi_montage(out, [("s1 (NC)", res.patches, res.presence), ("s2 (AD)", res.patches, res.presence)],
                   list(rois_table()["name"]), n_cols=2)
    pixels = read_png(out)
    # 4 ROIs in 2 columns: 2 rows; two subjects' blocks of 2 tiles and a spacer: 5 columns, at 110 dpi.
    height, width = pixels.shape[:2]
    assert abs(height - 1.15 * 2 * 110) <= 1 and abs(width - 1.05 * 5 * 110) <= 1, pixels.shape
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    grey = (np.ptp(pixels, axis=2) < 0.02) & (pixels.mean(axis=2) > 0.05) & (pixels.mean(axis=2) < 0.95)
    for block in (slice(0, width // 2), slice(width // 2, width)):
        assert grey[:, block].sum() > 1000, "a subject's patches are not drawn"
        # ROI 3 (label 2035) is absent: its tile, the last of the second row, is crossed out in red.
        assert red[height // 2:, block].sum() > 50 and not red[: height // 2, block].any()
    present = tmp_path / "present.png"
    qc.roi_montage(present, [("s1", res.patches, np.ones(4, np.uint8))], list(rois_table()["name"]), n_cols=2)
    p = read_png(present)
    assert not ((p[..., 0] > 0.8) & (p[..., 1] < 0.3) & (p[..., 2] < 0.3)).any(), "a present ROI crossed out"


# --- FreeSurfer check ----------------------------------------------------------------------------

@pytest.fixture
def fake_freesurfer(tmp_path):
    """A FREESURFER_HOME with a stand-in recon-all (FreeSurfer itself cannot be installed here)."""
    home = tmp_path / "freesurfer"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "recon-all"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    (home / "build-stamp.txt").write_text("freesurfer-linux-centos6_x86_64-stable-pub-v6.0.0\n")
    return home


def test_freesurfer_check_needs_recon_all(fake_freesurfer):
    with pytest.raises(InputDataError, match="recon-all is not on PATH"):
        freesurfer.check_freesurfer({"PATH": "/nonexistent", "FREESURFER_HOME": str(fake_freesurfer)})


def test_freesurfer_check_license_order(fake_freesurfer, tmp_path):
    env = {"PATH": str(fake_freesurfer / "bin"), "FREESURFER_HOME": str(fake_freesurfer)}
    with pytest.raises(InputDataError, match="no FreeSurfer license") as err:
        freesurfer.check_freesurfer(env)
    assert "FS_LICENSE" in str(err.value)
    (fake_freesurfer / "license.txt").write_text("x\n")
    found = freesurfer.check_freesurfer(env)
    assert found["license"] == str(fake_freesurfer / "license.txt") and "v6.0.0" in found["version"]
    # FS_LICENSE wins, and a wrong FS_LICENSE is an error even when license.txt exists.
    with pytest.raises(InputDataError, match="FS_LICENSE points to a file that does not exist"):
        freesurfer.check_freesurfer({**env, "FS_LICENSE": str(tmp_path / "nope.txt")})
    (tmp_path / "mine.txt").write_text("x\n")
    assert freesurfer.check_freesurfer({**env, "FS_LICENSE": str(tmp_path / "mine.txt")})["license"] == \
        str(tmp_path / "mine.txt")


def test_freesurfer_check_needs_home(fake_freesurfer):
    with pytest.raises(InputDataError, match="FREESURFER_HOME is not set"):
        freesurfer.check_freesurfer({"PATH": str(fake_freesurfer / "bin")})


def test_recon_all_command_is_absolute(tmp_path):
    cmd = freesurfer.recon_all_command("002_S_0001", "t1.nii.gz", "subjects", "-openmp 4")
    assert cmd == ["recon-all", "-all", "-s", "002_S_0001", "-i", str(Path("t1.nii.gz").resolve()),
                   "-sd", str(Path("subjects").resolve()), "-openmp", "4"]


def test_imaging_subjects_per_mode():
    from rgenima_lib.imaging.layout import freesurfer_job_inputs, imaging_subjects

    manifest = pd.DataFrame({"subject": ["a", "b", "c", "d"], "has_image": [True, True, True, False],
                             "has_freesurfer": [True, False, True, False], "has_t1w": [False, True, True, False]})
    assert imaging_subjects(manifest, "precomputed") == ["a", "c"]
    assert imaging_subjects(manifest, "recon_all") == ["b", "c"]
    assert freesurfer_job_inputs("fs", "a", "precomputed", ["aparc+aseg.mgz", "norm.mgz"]) == \
        {"aparc_aseg": "fs/a/mri/aparc+aseg.mgz", "norm": "fs/a/mri/norm.mgz"}
    assert freesurfer_job_inputs("fs", "a", "recon_all", ["norm.mgz"]) == {"subject_dir": "fs/a"}


# --- which parcellation a label image is -----------------------------------------------------------

def _catalog():
    from catalog import imaging as cat

    return cat


@pytest.mark.parametrize("kind", ["aparc+aseg", "aseg", "aparc.a2009s+aseg", "aparc.a2005s+aseg",
                                  "aparc.DKTatlas+aseg", "empty"])
def test_identify_parcellation(kind):
    cat = _catalog()
    labels = {"aparc+aseg": cat.aparc_aseg_labels(), "aseg": cat.aseg_labels(), "aparc.a2009s+aseg": cat.a2009s_labels(),
              "aparc.a2005s+aseg": sorted({v for v in cat.aseg_labels()} | set(cat.lut_labels(1101, 1182))),
              "aparc.DKTatlas+aseg": [v for v in cat.aparc_aseg_labels() if v not in volumes.DKT_REMOVED],
              "empty": []}[kind]
    vol = cat.label_volume(labels)
    assert volumes.present_labels(vol).tolist() == sorted(labels)
    assert volumes.identify_parcellation(vol) == kind


def test_realistic_label_sets_match_the_colour_table():
    cat = _catalog()
    # aseg.mgz: 41 subcortical ROI labels of the table + the two cerebral cortex labels.
    assert len(cat.aseg_labels()) == 43 and {3, 42} <= set(cat.aseg_labels())
    a2009s = cat.a2009s_labels()
    assert sum(11101 <= v <= 11175 for v in a2009s) == 75 and sum(12101 <= v <= 12175 for v in a2009s) == 75


def test_check_parcellation_messages(tmp_path):
    cat = _catalog()
    table = cat.roi_label_ids()
    for labels, words in ((cat.aseg_labels(), "aseg only: no cortical labels; it holds 43 labels from 2 to 255"),
                          (cat.a2009s_labels(), "Destrieux aparc.a2009s+aseg"),
                          ([v for v in table if v not in volumes.DKT_REMOVED], "DKT aparc.DKTatlas+aseg")):
        vol = volumes.Volume(cat.label_volume(labels), np.eye(4), tmp_path / "aparc+aseg.mgz")
        with pytest.raises(InputDataError) as err:
            volumes.check_parcellation(vol, vol.data, table, SUBJECT)
        text = str(err.value)
        assert text.startswith(f"{tmp_path / 'aparc+aseg.mgz'}: subject {SUBJECT}: not an aparc+aseg label image")
        assert words in text and "Fix: give FreeSurfer's mri/aparc+aseg.mgz of this subject" in text
    good = volumes.Volume(cat.label_volume(table), np.eye(4), tmp_path / "aparc+aseg.mgz")
    assert volumes.check_parcellation(good, good.data, table, SUBJECT) == "aparc+aseg"
    # A table without the DKT-removed parcels takes a DKT parcellation; a subcortical table an aseg.
    dkt_table = [v for v in table if v not in volumes.DKT_REMOVED]
    dkt = volumes.Volume(cat.label_volume(dkt_table), np.eye(4), tmp_path / "dkt.mgz")
    assert volumes.check_parcellation(dkt, dkt.data, dkt_table, SUBJECT) == "aparc.DKTatlas+aseg"
    aseg = volumes.Volume(cat.label_volume(cat.aseg_labels()), np.eye(4), tmp_path / "aseg.mgz")
    assert volumes.check_parcellation(aseg, aseg.data, [17, 53], SUBJECT) == "aseg"


def test_float_labels_whole_numbers_kept_fractions_refused(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[1, 1, 1], data[2, 2, 2] = 1001.0, 17.0
    kept = volumes.check_labels(volumes.Volume(data, np.eye(4), tmp_path / "l.mgz"), SUBJECT)
    assert kept.dtype == np.int32 and kept[1, 1, 1] == 1001 and kept.sum() == 1018
    data[3, 3, 3] = 0.5
    with pytest.raises(InputDataError, match=r"non-integer values \(1 voxels, e.g. 0.5; dtype float32\)"):
        volumes.check_labels(volumes.Volume(data, np.eye(4), tmp_path / "l.mgz"), SUBJECT)


def test_nearest_resampling_keeps_edge_voxels():
    # 2 mm labels over a 1 mm grid, each label voxel covering two target voxels per axis: the outer
    # target voxels lie in the outer half of the edge label voxels and must keep their label.
    labels = np.arange(1, 28, dtype=np.int32).reshape(3, 3, 3)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 0.5
    out = volumes.resample_labels_nearest(volumes.Volume(labels, affine, Path("l.mgz")),
                                          volumes.Volume(np.zeros((7, 6, 6)), np.eye(4), Path("i.mgz")))
    expected = np.zeros((7, 6, 6), np.int32)
    expected[:6] = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    assert np.array_equal(out.data, expected)  # row 6 lies beyond the field of view: 0
