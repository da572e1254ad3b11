"""The synthetic cohort end to end: written through the workflow, complete, and deterministic."""

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from conftest import REPO
from rgenima_lib.cohort.layout import CohortLayout, bids_t1w_path

RGENIMA = str(Path(sys.executable).parent / "rgenima")
SETTINGS = {
    "n_subjects": 10, "voxel_size_mm": 4.0, "n_variants": 260, "image_fraction": 0.7, "genotype_fraction": 0.9,
    "liability_noise_sd": 1.0, "causal_genes": {"APOE": 0.8, "BIN1": 0.3},
    "stage_atrophy": {"AD": {"Left-Hippocampus": 0.3}},
    "roi_gene_pairs": [{"gene": "BIN1", "roi": "Left-Thalamus", "per_allele": 0.05, "stages": ["AD"]}],
}


def synth(out_dir: Path, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RGENIMA, "synth-cohort", "--gene-panel", str(REPO / "config/gene_panel.tsv"),
         "--rois", str(REPO / "config/rois.tsv"), "--out-dir", str(out_dir), "--seed", str(seed),
         "--settings", json.dumps(SETTINGS)], capture_output=True, text=True, timeout=600)


def test_workflow_cohort_is_complete(tiny_cohort, rois):
    layout = CohortLayout(tiny_cohort / "results" / "synthetic")
    truth = json.loads(layout.truth.read_text())
    manifest = pd.read_csv(tiny_cohort / "results/cohort/manifest.tsv", sep="\t")
    assert len(manifest) == truth["n_subjects"] == 16
    assert manifest["stage"].value_counts().to_dict() == {k: v for k, v in truth["stage_counts"].items() if v}
    assert manifest["has_image"].sum() == truth["n_with_image"]
    assert manifest["has_freesurfer"].sum() == truth["n_with_image"]
    assert manifest["has_genotype"].sum() == truth["n_with_genotype"]
    clinical = pd.read_csv(layout.clinical)
    assert set(clinical["DX_bl"]) <= {"CN", "SMC", "EMCI", "LMCI", "AD"}
    assert {"causal_genes", "stage_rois", "roi_gene_pairs", "planted_qc_failures"} <= set(truth)
    # Every imaged subject has the BIDS T1 and the FreeSurfer files that recon-all would leave.
    for subject in manifest.loc[manifest["has_image"], "subject"]:
        assert bids_t1w_path(layout.bids_dir, subject).is_file()
        for name in ("orig.mgz", "norm.mgz", "brain.mgz", "aparc+aseg.mgz"):
            assert (layout.freesurfer_dir / subject / "mri" / name).is_file()
    subject = manifest.loc[manifest["has_image"], "subject"].iloc[0]
    labels = np.unique(np.asarray(nib.load(layout.freesurfer_dir / subject / "mri/aparc+aseg.mgz").dataobj))
    assert np.isin(rois["label_id"], labels).sum() >= 100


def test_same_seed_same_cohort(tmp_path):
    # (Different seeds giving different data is checked per part in test_phantom / test_synth_genotypes.)
    runs = {name: tmp_path / name for name in ("a", "b")}
    for name, seed in (("a", 3), ("b", 3)):
        proc = synth(runs[name], seed)
        assert proc.returncode == 0, proc.stderr
    a, b = (CohortLayout(p) for p in runs.values())
    assert filecmp.cmp(a.clinical, b.clinical, shallow=False)
    for ext in (".bed", ".bim", ".fam"):
        assert filecmp.cmp(f"{a.genotypes}{ext}", f"{b.genotypes}{ext}", shallow=False)
    assert json.loads(a.truth.read_text()) == json.loads(b.truth.read_text())
    subject = sorted(p.name for p in a.freesurfer_dir.iterdir())[0]
    img = lambda lay: np.asarray(nib.load(lay.freesurfer_dir / subject / "mri/norm.mgz").dataobj)
    np.testing.assert_array_equal(img(a), img(b))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary folder left behind"


def test_bad_settings_fail_cleanly(tmp_path):
    SETTINGS_BAD = {**SETTINGS, "stage_atrophy": {"AD": {"Left-Hipocampus": 0.3}}}
    proc = subprocess.run(
        [RGENIMA, "synth-cohort", "--gene-panel", str(REPO / "config/gene_panel.tsv"),
         "--rois", str(REPO / "config/rois.tsv"), "--out-dir", str(tmp_path / "out"), "--seed", "1",
         "--settings", json.dumps(SETTINGS_BAD)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Left-Hipocampus" in proc.stderr
    assert list(tmp_path.iterdir()) == []
