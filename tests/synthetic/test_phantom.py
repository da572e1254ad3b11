"""Synthetic T1 phantom and the ROI table: labels, atrophy, determinism, files.

Everything runs at 2 mm (the 1 mm anatomy is built once, ~10 s) so the file
stays well under a minute on one core.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, ROIS_TSV, read_png
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.freesurfer_lut import read_freesurfer_lut
from rgenima_lib.synthetic import anatomy
from rgenima_lib.synthetic.plot import plot_phantom_slices
from rgenima_lib.synthetic.render import render_subject
from rgenima_lib.synthetic.rois_table import ROI_LABELS
from rgenima_lib.synthetic.write import write_subject_images
from rgenima_lib.vocabulary import read_rois_table

LUT = REPO / "config" / "FreeSurferColorLUT.txt"
VOXEL_MM = 2.0


@pytest.fixture(scope="module")
def phantom():
    return anatomy.build_phantom(VOXEL_MM)


def _render(phantom, atrophy, seed):
    return render_subject(phantom, atrophy, np.random.default_rng(seed))


def _counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=3000)


# --- atlas and phantom -------------------------------------------------------------

def test_dk_atlas_is_found_and_maps_to_freesurfer_names():
    atlas = anatomy.locate_dk_atlas()
    assert atlas.is_file() and atlas.name == "atlas-desikankilliany.nii.gz"
    mapping = anatomy.dk_to_freesurfer(pd.read_csv(atlas.with_name("atlas-desikankilliany.csv")))
    assert len(mapping) == 83 and len(set(mapping.values())) == 83
    names = dict(zip(*read_freesurfer_lut(LUT)[["label_id", "name"]].to_numpy().T))
    for i, name in enumerate(anatomy.FS_APARC_NAMES, start=1):
        assert names[1000 + i] == f"ctx-lh-{name}" and names[2000 + i] == f"ctx-rh-{name}"
    assert 1004 not in mapping.values()


def test_phantom_arrays_and_contrast(phantom):
    shape = phantom.labels.shape
    assert phantom.labels.dtype == np.int32 and phantom.intensity.dtype == np.float32
    assert phantom.head.shape == shape and phantom.affine.shape == (4, 4)
    assert np.allclose(np.diag(phantom.affine)[:3], VOXEL_MM)
    assert not phantom.labels.flags.writeable  # shared by every subject
    mean = {name: phantom.intensity[np.isin(phantom.labels, ids)].mean() for name, ids in
            {"wm": (2, 41), "cortex": range(1001, 2036), "ventricle": (4, 43)}.items()}
    assert 100 < mean["wm"] < 120 and 60 < mean["cortex"] < 90 and mean["ventricle"] < 45
    # The raw head has a skull/scalp outside the brain; norm-like intensity does not.
    outside = ~phantom.brain_mask
    assert phantom.intensity[outside].max() == 0 and phantom.head[outside].max() > 100


def test_rendered_subject_has_the_roi_labels(phantom, rois):
    images = _render(phantom, {}, 0)
    present = _counts(images.aparc_aseg)[rois["label_id"].to_numpy()] > 0
    missing = rois.loc[~present, "name"].tolist()
    assert present.sum() >= 100, f"missing {missing}"
    assert images.t1_raw.dtype == np.uint8 and images.norm.dtype == np.uint8
    assert images.aparc_aseg.dtype == np.int32
    assert images.t1_raw.shape == images.norm.shape == phantom.labels.shape
    # norm is skull-stripped: zero wherever the raw image shows only skull and scalp.
    assert images.norm[images.aparc_aseg > 0].mean() > 60
    assert (images.norm[~anatomy.build_phantom(VOXEL_MM).brain_mask] == 0).mean() > 0.95


@pytest.mark.parametrize("label", [17, 1006, 10, 2035])
def test_atrophy_removes_the_requested_fraction(phantom, label):
    base = _counts(_render(phantom, {}, 3).aparc_aseg)
    shrunk = _counts(_render(phantom, {label: 0.3}, 3).aparc_aseg)
    assert base[label] > 0
    assert 1 - shrunk[label] / base[label] == pytest.approx(0.3, abs=0.08)
    # The lost tissue becomes unlabelled, CSF-dark brain: no ROI token (CSF included) grows with atrophy.
    assert np.array_equal(np.delete(shrunk, [0, label]), np.delete(base, [0, label]))
    before, after = (_render(phantom, atr, 3) for atr in ({}, {label: 0.3}))
    freed = (before.aparc_aseg == label) & (after.aparc_aseg == 0)
    assert freed.sum() > 0 and (after.norm[freed] > 0).all()  # still inside the brain mask
    assert after.norm[freed].mean() < 0.6 * before.norm[freed].mean()


def test_atrophy_leaves_other_labels_alone(phantom):
    base = _counts(_render(phantom, {}, 4).aparc_aseg)
    shrunk = _counts(_render(phantom, {53: 0.4}, 4).aparc_aseg)
    others = [label for label in ROI_LABELS if label != 53]
    assert np.array_equal(base[others], shrunk[others])


def test_atrophy_out_of_range_is_rejected(phantom):
    with pytest.raises(ValueError, match="0..0.8"):
        _render(phantom, {17: 0.85}, 0)
    with pytest.raises(ValueError, match="not an atrophiable"):
        _render(phantom, {4: 0.1}, 0)


def test_rendering_is_deterministic(phantom):
    a, b, c = (_render(phantom, {17: 0.2}, seed) for seed in (11, 11, 12))
    for name in ("t1_raw", "norm", "aparc_aseg"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name


# --- files -------------------------------------------------------------------------

def test_written_files_load_with_the_right_dtype_shape_and_affine(phantom, tmp_path):
    images = _render(phantom, {17: 0.2}, 5)
    t1w = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    write_subject_images(images, t1w, tmp_path / "fs" / "sub-01")
    expected = {t1w: (np.uint8, images.t1_raw)}
    mri = tmp_path / "fs" / "sub-01" / "mri"
    expected.update({mri / "orig.mgz": (np.uint8, images.t1_raw),
                     mri / "norm.mgz": (np.uint8, images.norm),
                     mri / "brain.mgz": (np.uint8, images.norm),
                     mri / "aparc+aseg.mgz": (np.int32, images.aparc_aseg)})
    for path, (dtype, data) in expected.items():
        img = nib.load(path)
        # MGH stores big-endian: compare the type, not the byte order.
        assert img.get_data_dtype().newbyteorder("=") == np.dtype(dtype), path.name
        assert img.shape == phantom.labels.shape, path.name
        assert np.allclose(img.affine, images.affine, atol=1e-4), path.name
        assert np.array_equal(np.asarray(img.dataobj), data), path.name
    assert isinstance(nib.load(mri / "aparc+aseg.mgz"), nib.MGHImage)
    assert not list(tmp_path.rglob(".*tmp-*"))  # atomic writes left no temporaries


def test_slice_figure_is_written(tmp_path):
    """Three views of the anatomy, the T1 alone on the left and with its labels on the right."""
    phantom4 = anatomy.build_phantom(4.0)  # a coarse phantom keeps it cheap; the layout is the same
    images = render_subject(phantom4, {}, np.random.default_rng(0))
    write_subject_images(images, tmp_path / "t1.nii.gz", tmp_path / "fs")
    out = tmp_path / "slices.png"
    plot_phantom_slices(tmp_path / "t1.nii.gz", tmp_path / "fs" / "mri" / "aparc+aseg.mgz",
                        out, lut_path=LUT)
    pixels = read_png(out)
    # 13 in wide at 90 dpi; a 0.5 in header, then one row per view, as tall as the view's aspect ratio.
    extent = np.abs(np.diag(images.affine)[:3]) * np.asarray(phantom4.labels.shape)
    rows = [13 / 2 * ratio * 90 for ratio in (extent[1] / (3 * extent[0]), extent[2] / (3 * extent[0]),
                                              extent[2] / (3 * extent[1]))]
    header = 0.5 * 90
    assert pixels.shape[1] == 13 * 90 and abs(pixels.shape[0] - (header + sum(rows))) <= 1, pixels.shape
    half = pixels.shape[1] // 2
    colour = np.ptp(pixels, axis=2) > 0.15   # the label overlay; the T1 alone is grey on black
    bright = pixels.mean(axis=2) > 0.2
    top = header
    for view, height in zip("zyx", rows):
        band = slice(int(top), int(top + height))
        top += height
        assert bright[band, :half].mean() > 0.1, f"view {view}: no anatomy on the left"
        assert not colour[band, :half].any(), f"view {view}: colour in the T1-only column"
        assert colour[band, half:].mean() > 0.1, f"view {view}: no labels overlaid on the right"
    white = pixels[: int(header)].min(axis=2) > 0.6   # the two column titles
    assert white[:, :half].sum() > 20 and white[:, half:].sum() > 20


# --- rois.tsv ----------------------------------------------------------------------

def test_rois_table_has_109_unique_labels_and_the_named_rois(rois):
    assert len(rois) == 109 and rois["label_id"].is_unique
    assert list(rois["label_id"]) == list(ROI_LABELS)
    assert list(rois["token"]) == list(range(109))
    for name in ("Left-Cerebellum-Cortex", "Left-Thalamus", "Left-Caudate", "Left-Putamen",
                 "ctx-rh-insula", "ctx-rh-transversetemporal", "ctx-rh-temporalpole",
                 "ctx-rh-frontalpole"):
        assert name in set(rois["name"]), name
    # Centroids lie on the side their hemisphere says.
    assert (rois.loc[rois["hemisphere"] == "left", "mni_x"] < 0).all()
    assert (rois.loc[rois["hemisphere"] == "right", "mni_x"] > 0).all()
    assert (rois["kind"] == "cortical").sum() == 68


def test_read_rois_table_rejects_a_duplicate_label(tmp_path):
    table = read_rois_table(ROIS_TSV)
    table.loc[5, "label_id"] = table.loc[4, "label_id"]
    bad = tmp_path / "bad_rois.tsv"
    table.to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputDataError, match="bad_rois.tsv.*duplicate label_id"):
        read_rois_table(bad)


def test_the_roi_columns_are_the_table_and_a_non_integer_label_is_named(tmp_path):
    """read_rois_columns (no pandas: the per-subject job) reads what read_rois_table frames."""
    from rgenima_lib.vocabulary import read_rois_columns

    table, columns = read_rois_table(ROIS_TSV), read_rois_columns(ROIS_TSV)
    for column in table.columns:
        assert list(table[column]) == columns[column], column
    assert all(type(v) is int for v in columns["label_id"]) and all(type(v) is float for v in columns["mni_x"])
    text = ROIS_TSV.read_text().splitlines()
    header = next(i for i, line in enumerate(text) if line.startswith("token\t"))
    fields = text[header + 3].split("\t")
    fields[1] = "17.5"
    text[header + 3] = "\t".join(fields)
    bad = tmp_path / "bad_rois.tsv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(InputDataError, match="bad_rois.tsv.*'label_id'.*not an integer"):
        read_rois_columns(bad)


def test_gzipped_images_are_byte_identical_for_the_same_payload(tmp_path):
    """The gzip header holds neither a time nor the temporary file's name, so reruns give the same bytes."""
    from rgenima_lib.synthetic.write import _write_gzipped

    payload = np.arange(10_000, dtype=np.int16).tobytes()
    _write_gzipped(payload, tmp_path / "a.mgz", 1)
    _write_gzipped(payload, tmp_path / "b.mgz", 1)
    assert (tmp_path / "a.mgz").read_bytes() == (tmp_path / "b.mgz").read_bytes()
    import gzip

    assert gzip.decompress((tmp_path / "a.mgz").read_bytes()) == payload
