"""Imaging stage through the workflow: the tiny synthetic cohort, and recon-all with a stand-in.

FreeSurfer cannot be installed here (licence, ~10 GB, hours per subject), so the
recon-all test puts a stand-in ``recon-all`` on PATH that records its command
line and copies a finished synthetic subject folder into place.
"""

import json
import os
import stat

import numpy as np
import pytest

from rgenima_lib.cohort.layout import bids_t1w_path
from rgenima_lib.io import read_tsv

from conftest import make_workdir, run_snakemake

TARGETS = ["results/imaging/roi_index.tsv", "results/imaging/wholebrain_index.tsv",
           "results/imaging/qc/imaging_qc.tsv", "results/imaging/qc/roi_montage.png"]


@pytest.fixture(scope="module")
def imaging_run(tiny_cohort):
    """The tiny cohort (16 subjects, 3 mm, S = 16) run through the imaging stage."""
    run_snakemake(tiny_cohort, *TARGETS, configfile=tiny_cohort / "config" / "tiny.yaml")
    return tiny_cohort


def test_one_patch_array_per_imaged_subject(imaging_run):
    manifest = read_tsv(imaging_run / "results/cohort/manifest.tsv", dtype={"subject": str})
    imaged = sorted(manifest.loc[manifest["has_image"], "subject"])
    index = read_tsv(imaging_run / "results/imaging/roi_index.tsv", dtype={"subject": str})
    assert index["subject"].tolist() == imaged
    for row in index.itertuples():
        patches = np.load(imaging_run / row.rois, mmap_mode="r")
        assert patches.shape == (109, 16, 16, 16) and patches.dtype == np.uint8
        info = json.loads((imaging_run / row.info).read_text())
        assert info["n_present"] == row.n_present == 109  # the phantom has every ROI
        assert patches[np.asarray(info["presence"], bool)].reshape(109, -1).max(axis=1).min() > 0
    wholebrain = read_tsv(imaging_run / "results/imaging/wholebrain_index.tsv", dtype={"subject": str})
    assert wholebrain["subject"].tolist() == imaged and set(wholebrain["shape"]) == {"128x128x128"}
    assert (imaging_run / "results/imaging/qc/roi_montage.png").stat().st_size > 10_000


def test_planted_atrophy_shows_in_voxel_counts(imaging_run):
    """The planted atrophy shows in the voxel counts, beyond the cohort's anatomical variance.

    Each ROI's volume varies between subjects (coefficient of variation 0.1), so with 4 subjects per stage a ROI
    planted at 5 % loss may come out larger than in NC; a strong one (>= 20 %, three standard errors) may not, and
    across ROIs the AD / NC ratio follows 1 - planted loss.
    """
    check = read_tsv(imaging_run / "results/imaging/qc/planted_atrophy.tsv")
    truth = json.loads((imaging_run / "results/synthetic/truth.json").read_text())
    assert len(check) == sum(len(v) for v in truth["stage_rois"].values())
    ad = check[check["stage"] == "AD"]
    assert ad.loc[ad["planted_atrophy"] >= 0.2, "smaller"].all(), ad
    assert ad["ratio_to_nc"].corr(ad["planted_atrophy"], method="spearman") < -0.5, ad
    assert abs(ad["ratio_to_nc"].mean() - (1 - ad["planted_atrophy"]).mean()) < 0.05, ad
    assert check["smaller"].mean() >= 0.7, check


def test_qc_table_and_no_rerun(imaging_run):
    qc = read_tsv(imaging_run / "results/imaging/qc/imaging_qc.tsv", dtype={"subject": str})
    assert not qc["flagged"].any() and (qc["n_missing"] == 0).all()
    counts = read_tsv(imaging_run / "results/imaging/qc/roi_voxel_counts.tsv", dtype={"subject": str})
    assert counts.shape[1] == 2 + 109 and (counts["voxel_volume_mm3"] == 27.0).all()
    proc = run_snakemake(imaging_run, "-n", *TARGETS, configfile=imaging_run / "config" / "tiny.yaml")
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]


# --- recon-all with a stand-in -------------------------------------------------------------

STAND_IN = """#!/bin/sh
# Stand-in for FreeSurfer's recon-all: records its arguments, then copies a finished subject.
printf '%s\\n' "$@" > "$RECON_ALL_RECORD/$3.args"
subject="$3"; sd="$7"
test -e "$sd/$subject" && { echo "ERROR: subject $subject already exists" >&2; exit 1; }
mkdir -p "$sd" && cp -r "$RECON_ALL_SOURCE/$subject" "$sd/$subject"
"""


def _recon_all_workdir(tmp_path, tiny_cohort):
    """Real-data mode (synthetic off) on the tiny cohort's files, freesurfer.mode recon_all."""
    work = make_workdir(tmp_path / "work")
    synth = tiny_cohort / "results" / "synthetic"
    cfg = work / "config" / "recon.yaml"
    cfg.write_text(
        f"data:\n  clinical: {synth}/clinical/ADNIMERGE.csv\n  genotypes: {synth}/genotypes/adni_panel\n"
        f"  bids_dir: {synth}/bids\nfreesurfer:\n  mode: recon_all\nimaging:\n  roi_size: 8\n")
    return work, cfg


@pytest.fixture
def stand_in(tmp_path, tiny_cohort, monkeypatch):
    home = tmp_path / "freesurfer"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "recon-all"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("PATH", f"{home / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FREESURFER_HOME", str(home))
    monkeypatch.delenv("FS_LICENSE", raising=False)
    monkeypatch.setenv("RECON_ALL_RECORD", str(record))
    monkeypatch.setenv("RECON_ALL_SOURCE", str(tiny_cohort / "results" / "synthetic" / "freesurfer"))
    return home, record


def _first_imaged(tiny_cohort):
    manifest = read_tsv(tiny_cohort / "results/cohort/manifest.tsv", dtype={"subject": str})
    return manifest.loc[manifest["has_t1w"], "subject"].iloc[0]


def test_recon_all_command_line_and_protected_output(tmp_path, tiny_cohort, stand_in):
    home, record = stand_in
    (home / "license.txt").write_text("stand-in license\n")
    work, cfg = _recon_all_workdir(tmp_path, tiny_cohort)
    subject = _first_imaged(tiny_cohort)
    run_snakemake(work, f"results/imaging/rois/{subject}.npy", configfile=cfg)
    t1 = bids_t1w_path(tiny_cohort / "results" / "synthetic" / "bids", subject)
    args = (record / f"{subject}.args").read_text().splitlines()
    assert args == ["-all", "-s", subject, "-i", str(t1.resolve()), "-sd", str((work / "results/freesurfer").resolve())]
    subject_dir = work / "results" / "freesurfer" / subject
    assert not subject_dir.stat().st_mode & stat.S_IWUSR  # protected()
    check = json.loads((work / "results/imaging/freesurfer_check.json").read_text())
    assert check["license"] == str(home / "license.txt")
    assert np.load(work / f"results/imaging/rois/{subject}.npy", mmap_mode="r").shape == (109, 8, 8, 8)
    for path in subject_dir.rglob("*"):  # let pytest clean up the protected folder
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    subject_dir.chmod(subject_dir.stat().st_mode | stat.S_IWUSR)


def test_missing_license_stops_before_recon_all(tmp_path, tiny_cohort, stand_in):
    home, record = stand_in
    work, cfg = _recon_all_workdir(tmp_path, tiny_cohort)
    subject = _first_imaged(tiny_cohort)
    proc = run_snakemake(work, f"results/imaging/rois/{subject}.npy", configfile=cfg, check=False)
    assert proc.returncode != 0
    assert "no FreeSurfer license" in proc.stdout and "FS_LICENSE" in proc.stdout
    assert not list(record.iterdir())  # recon-all never ran
