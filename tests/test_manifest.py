"""Ingestion: the manifest from a clinical table, a .fam and image folders; its bad inputs."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rgenima_lib.cohort.layout import bids_t1w_path
from rgenima_lib.cohort.manifest import build_manifest, read_fam
from rgenima_lib.errors import InputDataError

RGENIMA = str(Path(sys.executable).parent / "rgenima")


def _write_fs_subject(fs_dir: Path, ptid: str, *, broken: bool = False):
    mri = fs_dir / ptid / "mri"
    mri.mkdir(parents=True)
    vol = np.zeros((6, 6, 6), np.int32)
    vol[2:4, 2:4, 2:4] = 17
    nib.save(nib.MGHImage(vol, np.eye(4)), mri / "aparc+aseg.mgz")
    if broken:
        (mri / "norm.mgz").write_bytes(b"not an image at all")
    else:
        nib.save(nib.MGHImage(vol.astype(np.uint8), np.eye(4)), mri / "norm.mgz")


@pytest.fixture
def export(tmp_path):
    """A tiny ADNI-like export: 4 staged subjects, 1 genotyped orphan, 2 imaged subjects."""
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
    t1 = bids_t1w_path(tmp_path / "bids", "002_S_0002")
    t1.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.float32), np.eye(4)), t1)
    return tmp_path


def test_manifest_flags_and_orphans(export):
    clinical = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    manifest, notes = build_manifest(clinical, read_fam(export / "panel.fam"), bids_dir=export / "bids",
                                     freesurfer_dir=export / "freesurfer", fam_path="panel.fam")
    m = manifest.set_index("subject")
    assert list(m.index) == ["002_S_0001", "002_S_0002", "003_S_0003", "003_S_0004"]
    assert m["stage"].tolist() == ["NC", "MCI", "AD", "SMC"]
    assert m["has_genotype"].tolist() == [True, True, False, False]
    assert m["has_freesurfer"].tolist() == [True, False, True, False]
    assert m["has_t1w"].tolist() == [False, True, False, False]
    assert m["has_image"].tolist() == [True, True, True, False]
    assert len(notes) == 1 and "999_S_9999" in notes[0] and "panel.fam" in notes[0]


def test_duplicate_iid_in_fam(tmp_path):
    (tmp_path / "dup.fam").write_text("A 011_S_0002 0 0 1 -9\nB 011_S_0002 0 0 1 -9\n")
    with pytest.raises(InputDataError) as err:
        read_fam(tmp_path / "dup.fam")
    assert "dup.fam" in str(err.value) and "011_S_0002" in str(err.value)


def test_unreadable_image_names_file_and_subject(export):
    _write_fs_subject(export / "freesurfer", "003_S_0004", broken=True)
    clinical = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    with pytest.raises(InputDataError) as err:
        build_manifest(clinical, None, bids_dir=None, freesurfer_dir=export / "freesurfer")
    msg = str(err.value)
    assert "003_S_0004" in msg and "norm.mgz" in msg and "Fix:" in msg


def _run_cli(export, out):
    return subprocess.run(
        [RGENIMA, "manifest", "--clinical", str(export / "ADNIMERGE.csv"), "--fam", str(export / "panel.fam"),
         "--freesurfer-dir", str(export / "freesurfer"), "--output", str(out)],
        capture_output=True, text=True)


def test_cli_bad_diagnosis_exits_2_and_writes_nothing(export):
    clinical = pd.read_csv(export / "ADNIMERGE.csv", dtype=str)
    clinical.loc[2, "DX_bl"] = "XYZ"
    clinical.to_csv(export / "ADNIMERGE.csv", index=False)
    out = export / "out" / "manifest.tsv"
    proc = _run_cli(export, out)
    assert proc.returncode == 2
    assert "003_S_0003" in proc.stderr and "'XYZ'" in proc.stderr and "ADNIMERGE.csv" in proc.stderr
    assert not out.exists() and not any(out.parent.glob("*")) if out.parent.exists() else True


def test_cli_writes_manifest_and_reports_orphan(export):
    out = export / "manifest.tsv"
    proc = _run_cli(export, out)
    assert proc.returncode == 0, proc.stderr
    assert "999_S_9999" in proc.stderr
    assert len(pd.read_csv(out, sep="\t")) == 4
