"""Ingestion: the manifest from a clinical table, a .fam and image folders; its bad inputs."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rgenima_lib.cohort.clinical import read_clinical
from rgenima_lib.cohort.layout import bids_t1w_path, default_bids_t1w_path, find_t1w, session_rank
from rgenima_lib.cohort.manifest import build_manifest, manifest_summary, read_fam
from rgenima_lib.data.datasets import build_dataset
from rgenima_lib.data.splits import make_subject_folds
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.layout import imaging_subjects
from rgenima_lib.io import read_tsv, write_tsv

RGENIMA = str(Path(sys.executable).parent / "rgenima")
TIMEOUT_S = 120


def _write_fs_subject(fs_dir: Path, ptid: str, *, broken: bool = False, files=("aparc+aseg.mgz", "norm.mgz",
                                                                                "brain.mgz")):
    mri = fs_dir / ptid / "mri"
    mri.mkdir(parents=True)
    vol = np.zeros((6, 6, 6), np.int32)
    vol[2:4, 2:4, 2:4] = 17
    for name in files:
        if name == "aparc+aseg.mgz":
            nib.save(nib.MGHImage(vol, np.eye(4)), mri / name)
        elif broken and name == "norm.mgz":
            (mri / name).write_bytes(b"not an image at all")
        else:
            nib.save(nib.MGHImage(vol.astype(np.uint8), np.eye(4)), mri / name)
    return mri


def _write_t1(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.float32), np.eye(4)), path)
    return path


@pytest.fixture
def export(tmp_path):
    """A tiny ADNI-like export: 4 staged subjects, 1 genotyped orphan, 2 FreeSurfer folders, 1 T1 only."""
    clinical = pd.DataFrame({
        "PTID": ["002_S_0001", "002_S_0002", "003_S_0003", "003_S_0004", "003_S_0004"],
        "VISCODE": ["bl", "bl", "bl", "bl", "m12"],
        "DX_bl": ["CN", "EMCI", "AD", "SMC", "SMC"],
        "AGE": [70.1, 71.2, 80.3, 69.9, 69.9],
        "PTGENDER": ["Male", "Female", "Female", "Male", "Male"],
    })
    clinical.to_csv(tmp_path / "ADNIMERGE.csv", index=False)
    fam = pd.DataFrame({"fid": ["002_S_0001", "002_S_0002", "999_S_9999"],
                        "iid": ["002_S_0001", "002_S_0002", "999_S_9999"],
                        "father": 0, "mother": 0, "sex": [1, 2, 1], "phenotype": -9})
    fam.to_csv(tmp_path / "panel.fam", sep=" ", header=False, index=False)
    fs = tmp_path / "freesurfer"
    _write_fs_subject(fs, "002_S_0001")
    _write_fs_subject(fs, "003_S_0003")
    _write_t1(default_bids_t1w_path(tmp_path / "bids", "002_S_0002"))
    return tmp_path


def _build(export, **kw):
    kw = {"bids_dir": export / "bids", "freesurfer_dir": export / "freesurfer", "fam_path": "panel.fam",
          "clinical_path": "ADNIMERGE.csv", **kw}
    return build_manifest(read_clinical(export / "ADNIMERGE.csv"), read_fam(export / "panel.fam"), **kw)


def test_manifest_flags_and_orphans(export):
    manifest, excluded, notes = _build(export, freesurfer_mode="precomputed")
    m = manifest.set_index("subject")
    assert list(m.index) == ["002_S_0001", "002_S_0002", "003_S_0003", "003_S_0004"]
    assert m["stage"].tolist() == ["NC", "MCI", "AD", "SMC"]
    assert m["has_genotype"].tolist() == [True, True, False, False]
    assert m["has_freesurfer"].tolist() == [True, False, True, False]
    assert m["has_t1w"].tolist() == [False, True, False, False]
    # precomputed mode: the T1-only subject has no ROI patches, so no image (was has_image True).
    assert m["has_image"].tolist() == [True, False, True, False]
    assert m["image_status"].tolist() == ["ok", "t1w_only", "ok", "no_image"]
    assert excluded.to_dict("records") == [{"subject": "999_S_9999", "reason": "no clinical row", "has_genotype": True}]
    # The log gets counts, never an ID outside the manifest.
    assert not any("999_S_9999" in n for n in notes)
    assert "1 subject(s) excluded: in panel.fam but not in ADNIMERGE.csv (1 genotyped)" in notes
    assert any(n.startswith("1 subject(s) without image (precomputed mode): t1w_only") for n in notes)


def test_t1_only_subject_stays_out_of_image_gene(export):
    manifest, _, _ = _build(export, freesurfer_mode="precomputed")
    assert imaging_subjects(manifest, "precomputed") == ["002_S_0001", "003_S_0003"]
    folds, _ = make_subject_folds(manifest, 2, seed=1)
    paired = pd.concat([build_dataset(folds, "image_gene", k, protocol="subject", n_permutations=1, seed=1)
                        for k in range(2)])
    assert set(paired["subject"]) == {"002_S_0001"}  # the only subject genotyped *and* with ROI patches


def test_recon_all_mode_needs_only_the_t1(export):
    manifest, _, _ = _build(export, freesurfer_mode="recon_all")
    m = manifest.set_index("subject")
    assert m["has_image"].tolist() == [False, True, False, False]
    assert m["image_status"].tolist() == ["no_t1w", "ok", "no_t1w", "no_t1w"]
    assert not m["has_freesurfer"].any()  # recon-all writes its own SUBJECTS_DIR
    assert imaging_subjects(manifest, "recon_all") == ["002_S_0002"]
    # Without a mode, --freesurfer-dir means precomputed.
    assert _build(export)[0]["image_status"].tolist() == ["ok", "t1w_only", "ok", "no_image"]


def test_one_rule_for_the_intensity_image(export):
    # norm.mgz missing, brain.mgz present: no silent fallback to brain.mgz (rule roi_extract reads norm.mgz).
    _write_fs_subject(export / "freesurfer", "003_S_0004", files=("aparc+aseg.mgz", "brain.mgz"))
    m = _build(export)[0].set_index("subject").loc["003_S_0004"]
    assert (m["has_rois"], m["has_wholebrain"], m["has_image"], m["image_status"]) == (
        False, True, False, "no_intensity_image")
    m = _build(export, intensity_image="brain.mgz")[0].set_index("subject").loc["003_S_0004"]
    assert (m["has_rois"], m["has_image"], m["image_status"]) == (True, True, "ok")


def test_missing_wholebrain_image_keeps_subject_out_of_image_gene(export):
    _write_fs_subject(export / "freesurfer", "003_S_0004", files=("aparc+aseg.mgz", "norm.mgz"))
    m = _build(export)[0].set_index("subject").loc["003_S_0004"]
    assert (m["has_rois"], m["has_wholebrain"], m["has_image"], m["image_status"]) == (
        True, False, False, "no_wholebrain_image")


def test_incomplete_freesurfer_folders_are_counted(export):
    _write_fs_subject(export / "freesurfer", "003_S_0004", files=("norm.mgz", "brain.mgz"))
    failed = _write_fs_subject(export / "freesurfer", "002_S_0002", files=("orig.mgz",)).parent
    (failed / "scripts").mkdir()
    (failed / "scripts" / "recon-all.error").write_text("ERROR: mri_ca_label failed\n")
    manifest, _, notes = _build(export)
    m = manifest.set_index("subject")
    assert m.loc[["002_S_0002", "003_S_0004"], "image_status"].tolist() == ["freesurfer_failed",
                                                                            "freesurfer_incomplete"]
    assert not m.loc[["002_S_0002", "003_S_0004"], "has_image"].any()
    summary = manifest_summary(manifest).set_index("stage")
    assert summary.loc["all", ["freesurfer_incomplete", "freesurfer_failed", "with_image"]].tolist() == [1, 1, 2]
    assert summary.loc["SMC", "freesurfer_incomplete"] == 1 and summary.loc["MCI", "freesurfer_failed"] == 1
    assert any(n.startswith("incomplete FreeSurfer folders: 2 ") for n in notes)


def test_blank_dx_of_genotyped_subject_says_blank_dx(export):
    table = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    table.loc[1, "DX_bl"] = ""
    table.loc[5] = ["004_S_0005", "m06", "AD", "75", "Male"]  # no baseline row
    table.to_csv(export / "ADNIMERGE.csv", index=False)
    manifest, excluded, notes = _build(export)
    assert "002_S_0002" not in set(manifest["subject"])
    assert excluded.set_index("subject")["reason"].to_dict() == {
        "002_S_0002": "blank DX_bl", "004_S_0005": "no baseline row", "999_S_9999": "no clinical row"}
    assert "1 subject(s) excluded: blank DX_bl in ADNIMERGE.csv (1 genotyped)" in notes
    assert not any("has no clinical" in n for n in notes)


def test_hash_in_an_id_cannot_reach_the_manifest(export, tmp_path):
    # Why it must not: read_tsv treats '#' as a comment, so such a subject would come back truncated.
    write_tsv(pd.DataFrame({"subject": ["011_S_0002#b"], "stage": ["AD"]}), tmp_path / "m.tsv")
    assert read_tsv(tmp_path / "m.tsv", dtype=str)["subject"].tolist() == ["011_S_0002"]
    table = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    table.loc[0, "PTID"] = "002_S_0001#b"
    table.to_csv(export / "ADNIMERGE.csv", index=False)
    with pytest.raises(InputDataError, match=r"line 2: '002_S_0001#b'"):
        _build(export)


def test_duplicate_iid_in_fam(tmp_path):
    (tmp_path / "dup.fam").write_text("A 011_S_0002 0 0 1 -9\nB 011_S_0002 0 0 1 -9\n")
    with pytest.raises(InputDataError) as err:
        read_fam(tmp_path / "dup.fam")
    assert "dup.fam" in str(err.value) and "011_S_0002" in str(err.value)


def test_empty_fam_is_a_clear_error(tmp_path):
    (tmp_path / "panel.fam").write_text("")
    with pytest.raises(InputDataError, match="panel.fam: the .fam is empty"):
        read_fam(tmp_path / "panel.fam")


def test_unreadable_image_names_file_and_subject(export):
    _write_fs_subject(export / "freesurfer", "003_S_0004", broken=True)
    with pytest.raises(InputDataError) as err:
        build_manifest(read_clinical(export / "ADNIMERGE.csv"), None, bids_dir=None,
                       freesurfer_dir=export / "freesurfer")
    msg = str(err.value)
    assert "003_S_0004" in msg and "norm.mgz" in msg and "Fix:" in msg


# --- BIDS as converters write it ------------------------------------------------------------------------------

def test_clinica_tree_baseline_session_is_chosen(tmp_path):
    bids = tmp_path / "bids"
    sub = bids / "sub-ADNI011S0002"
    for ses in ("M012", "M000", "M006"):
        _write_t1(sub / f"ses-{ses}" / "anat" / f"sub-ADNI011S0002_ses-{ses}_T1w.nii.gz")
    (sub / "ses-M000" / "anat" / "sub-ADNI011S0002_ses-M000_T1w.json").write_text("{}")
    chosen, n = find_t1w(bids, "011_S_0002")
    assert n == 3 and chosen.session == "M000"
    assert chosen.path == sub / "ses-M000" / "anat" / "sub-ADNI011S0002_ses-M000_T1w.nii.gz"
    assert bids_t1w_path(bids, "011_S_0002") == chosen.path  # what rule recon_all reads


def test_runs_acq_and_plain_nii(tmp_path):
    anat = tmp_path / "sub-011S0002" / "ses-bl" / "anat"
    for name in ("sub-011S0002_ses-bl_run-02_T1w.nii", "sub-011S0002_ses-bl_acq-accel_run-01_T1w.nii.gz",
                 "sub-011S0002_ses-bl_run-01_T1w.nii"):
        _write_t1(anat / name)
    chosen, n = find_t1w(tmp_path, "011_S_0002")
    assert n == 3 and chosen.path.name == "sub-011S0002_ses-bl_run-01_T1w.nii" and chosen.run == 1


def test_lowest_month_without_baseline_and_foreign_names_ignored(tmp_path):
    sub = tmp_path / "sub-ADNI011S0002"
    _write_t1(sub / "ses-M024" / "anat" / "sub-ADNI011S0002_ses-M024_T1w.nii.gz")
    _write_t1(sub / "ses-M006" / "anat" / "sub-ADNI011S0002_ses-M006_T1w.nii.gz")
    _write_t1(sub / "ses-M003" / "anat" / "sub-ADNI011S0002_ses-M006_T1w.nii.gz")  # session disagrees with folder
    _write_t1(sub / "ses-M003" / "anat" / "sub-ADNI011S0003_ses-M003_T1w.nii.gz")  # another subject's file
    _write_t1(sub / "ses-M003" / "anat" / "sub-ADNI011S0002_ses-M003_FLAIR.nii.gz")
    chosen, n = find_t1w(tmp_path, "011_S_0002")
    assert n == 2 and chosen.session == "M006"
    assert find_t1w(tmp_path, "011_S_0009") == (None, 0)
    assert bids_t1w_path(tmp_path, "011_S_0009") == tmp_path / "sub-011S0009/anat/sub-011S0009_T1w.nii.gz"


def test_session_order():
    labels = ["M012", "02", "bl", "M006", "10", "M000", "extra"]
    assert sorted(labels, key=session_rank) == ["bl", "M000", "M006", "M012", "02", "10", "extra"]


def test_manifest_records_the_chosen_t1_and_counts(tmp_path, caplog):
    pd.DataFrame({"PTID": ["011_S_0002", "011_S_0003"], "VISCODE": "bl", "DX_bl": ["CN", "AD"]}).to_csv(
        tmp_path / "ADNIMERGE.csv", index=False)
    sub = tmp_path / "bids" / "sub-ADNI011S0002"
    _write_t1(sub / "ses-M012" / "anat" / "sub-ADNI011S0002_ses-M012_T1w.nii.gz")
    baseline = _write_t1(sub / "ses-M000" / "anat" / "sub-ADNI011S0002_ses-M000_T1w.nii.gz")
    _write_t1(tmp_path / "bids" / "sub-011S0003" / "ses-M006" / "anat" / "sub-011S0003_ses-M006_T1w.nii")
    manifest, _, notes = build_manifest(read_clinical(tmp_path / "ADNIMERGE.csv"), None,
                                        bids_dir=tmp_path / "bids", freesurfer_dir=None)
    m = manifest.set_index("subject")
    later = tmp_path / "bids/sub-011S0003/ses-M006/anat/sub-011S0003_ses-M006_T1w.nii"
    assert m["t1w"].tolist() == [str(baseline), str(later)]
    assert m["t1w_session"].tolist() == ["M000", "M006"] and m["t1w_candidates"].tolist() == [2, 1]
    assert m["has_image"].all()
    assert any(n.startswith("1 subject(s) have several T1w images") for n in notes)
    assert any(n.startswith("1 subject(s) have no baseline-session T1") for n in notes)


# --- the command --------------------------------------------------------------------------------------------

def _run_cli(export, out, *extra):
    return subprocess.run(
        [RGENIMA, "manifest", "--clinical", str(export / "ADNIMERGE.csv"), "--fam", str(export / "panel.fam"),
         "--freesurfer-dir", str(export / "freesurfer"), "--output", str(out), *map(str, extra)],
        capture_output=True, text=True, timeout=TIMEOUT_S)


def test_cli_bad_diagnosis_exits_2_and_writes_nothing(export):
    clinical = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    clinical.loc[2, "DX_bl"] = "XYZ"
    clinical.to_csv(export / "ADNIMERGE.csv", index=False)
    out = export / "out" / "manifest.tsv"
    proc = _run_cli(export, out, "--excluded", export / "out" / "excluded.tsv")
    assert proc.returncode == 2
    assert "003_S_0003" in proc.stderr and "'XYZ'" in proc.stderr and "ADNIMERGE.csv" in proc.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_writes_manifest_counts_orphans_and_lists_them_aside(export):
    out = export / "manifest.tsv"
    proc = _run_cli(export, out, "--excluded", export / "excluded.tsv", "--summary", export / "summary.tsv")
    assert proc.returncode == 0, proc.stderr
    assert "999_S_9999" not in proc.stderr
    assert "1 subject(s) excluded: in " in proc.stderr and "panel.fam but not in " in proc.stderr
    assert "read as UTF-8" in proc.stderr
    assert len(read_tsv(out)) == 4
    assert read_tsv(export / "excluded.tsv", dtype=str)["subject"].tolist() == ["999_S_9999"]
    assert "freesurfer_incomplete" in read_tsv(export / "summary.tsv").columns


def test_cli_intensity_image_flag(export):
    _write_fs_subject(export / "freesurfer", "003_S_0004", files=("aparc+aseg.mgz", "brain.mgz"))
    for flag, status in (([], "no_intensity_image"), (["--intensity-image", "brain.mgz"], "ok")):
        proc = _run_cli(export, export / "m.tsv", *flag)
        assert proc.returncode == 0, proc.stderr
        m = read_tsv(export / "m.tsv", dtype={"subject": str}).set_index("subject")
        assert m.loc["003_S_0004", "image_status"] == status
