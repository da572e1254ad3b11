"""The synthetic cohort does not leak and its truth is complete.

Only what ``truth.json`` lists may tell a stage from NC: no ROI token grows with
atrophy, the intensity window does not follow it, ROI volumes vary between
subjects about as much as real ones, stages are progressive and large enough,
and the ROIs the ROI-gene pairs atrophy are listed as the stages' ROIs.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import REPO
from rgenima_lib.attribution.leak_check import leak_check
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.roi_extract import intensity_window
from rgenima_lib.synthetic import anatomy
from rgenima_lib.synthetic.cohort import plan_synthetic_cohort
from rgenima_lib.synthetic.render import render_subject
from rgenima_lib.vocabulary import STAGES

import pandas as pd


def _schema_defaults() -> dict:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["synthetic"]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


DEFAULTS = _schema_defaults()


def _plan(panel_table, rois, n_subjects, seed=11, **over):
    keys = ("roi_volume_cv", "min_imaged_per_stage", "n_genotype_only", "genetic_effect_scale", "atrophy_scale",
            "purpose")
    kw = dict(n_subjects=n_subjects, n_variants=260, seed=seed, image_fraction=DEFAULTS["image_fraction"],
              genotype_fraction=DEFAULTS["genotype_fraction"], noise_sd=DEFAULTS["liability_noise_sd"],
              causal_genes=DEFAULTS["causal_genes"], stage_atrophy=DEFAULTS["stage_atrophy"],
              roi_gene_pairs=DEFAULTS["roi_gene_pairs"], **{k: DEFAULTS[k] for k in keys})
    kw.update(over)
    return plan_synthetic_cohort(panel_table, rois, **kw)


def _cohens_d(a, b):
    return (a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)


def test_truth_lists_every_roi_whose_volume_changes_in_a_stage(panel_table, rois):
    plan = _plan(panel_table, rois, 120)
    listed = {s: {e["roi"] for e in entries} for s, entries in plan.stage_rois.items()}
    for pair in DEFAULTS["roi_gene_pairs"]:
        for stage in pair["stages"]:
            assert pair["roi"] in listed[stage], (pair, stage)
    names = np.asarray(rois["name"])
    for stage in STAGES:
        changed = set(names[plan.planted[plan.stages == stage].mean(axis=0) > 0])
        assert changed <= listed.get(stage, set()), (stage, changed - listed.get(stage, set()))
    by = {e["roi"]: e["planted_by"] for e in plan.stage_rois["MCI"]}
    assert by["Left-Hippocampus"] == ["stage", "APOE"]


def test_default_stage_patterns_are_progressive_and_imaged(panel_table, rois):
    atrophy = DEFAULTS["stage_atrophy"]
    for earlier, later in (("SMC", "MCI"), ("MCI", "AD")):
        for roi, frac in atrophy[earlier].items():
            assert atrophy[later].get(roi, 0) >= frac, (roi, earlier, later)
    plan = _plan(panel_table, rois, 200)
    total = [plan.planted[plan.stages == s].sum(axis=1).mean() for s in STAGES]
    assert total == sorted(total) and total[0] == 0 and total[1] < total[2] < total[3]
    imaged = {s: int((plan.has_image & (plan.stages == s)).sum()) for s in STAGES}
    assert min(imaged.values()) >= DEFAULTS["min_imaged_per_stage"], imaged


def test_planted_effect_sizes_are_realistic(panel_table, rois):
    plan = _plan(panel_table, rois, 600)
    volume = 1 - plan.loss  # share of the phantom's volume each subject has
    col = list(rois["name"]).index("Left-Hippocampus")
    d = _cohens_d(volume[plan.stages == "AD", col], volume[plan.stages == "NC", col])
    assert -2.5 <= d <= -1.0, d
    # Grey-matter ROIs vary by about roi_volume_cv between NC subjects.
    nc = volume[plan.stages == "NC", col]
    assert nc.std() / nc.mean() == pytest.approx(DEFAULTS["roi_volume_cv"], rel=0.2)


def test_effect_scales_need_the_calibration_purpose(panel_table, rois):
    with pytest.raises(InputDataError, match="calibration"):
        _plan(panel_table, rois, 40, atrophy_scale=3.0)
    plan = _plan(panel_table, rois, 40, atrophy_scale=2.0, genetic_effect_scale=1.5, purpose="calibration",
                 n_genotype_only=30)
    assert plan.causal_genes["APOE"] == pytest.approx(1.5 * DEFAULTS["causal_genes"]["APOE"])
    assert plan.stage_atrophy["AD"]["Left-Hippocampus"] == pytest.approx(
        2.0 * DEFAULTS["stage_atrophy"]["AD"]["Left-Hippocampus"])
    assert plan.generator["purpose"] == "calibration"
    assert len(plan.ptids) == 70 and plan.has_image.sum() <= 40 and plan.has_genotype.sum() >= 30


def test_intensity_window_does_not_move_with_atrophy():
    phantom = anatomy.build_phantom(2.0)
    heavy = {17: 0.4, 53: 0.4, 18: 0.4, 54: 0.4, 1006: 0.4, 2006: 0.4, 1016: 0.4, 10: 0.3, 12: 0.3, 2035: 0.3}
    for seed in (1, 2):
        windows = []
        for atrophy in ({}, heavy):
            images = render_subject(phantom, atrophy, np.random.default_rng(seed))
            windows.append(intensity_window(images.norm.astype(np.float32), images.aparc_aseg > 0))
        (lo0, hi0), (lo1, hi1) = windows
        assert abs(lo1 - lo0) <= 1.0 and abs(hi1 - hi0) <= 1.0, windows


def test_no_never_planted_roi_tells_a_stage_from_nc(panel_table, rois):
    # A small cohort at 4 mm, rendered in memory: its ROI voxel counts are what the imaging stage tabulates.
    plan = _plan(panel_table, rois, 100, seed=5)
    phantom = anatomy.build_phantom(4.0)
    label_ids = rois["label_id"].to_numpy()
    rows = []
    for i in np.flatnonzero(plan.has_image):
        lost = {int(label_ids[j]): float(plan.loss[i, j]) for j in np.flatnonzero(plan.loss[i])}
        labels = render_subject(phantom, lost, np.random.default_rng([5, 2, int(i)])).aparc_aseg
        rows.append([plan.ptids[i], *np.bincount(labels.ravel(), minlength=3000)[label_ids]])
    volumes = pd.DataFrame(rows, columns=["subject", *rois["name"]])
    stages = pd.Series(plan.stages, index=plan.ptids)
    truth = {"stage_rois": plan.stage_rois, "roi_gene_pairs": plan.roi_gene_pairs}
    leak = leak_check(volumes, stages, truth, bound=0.65, n_perm=100)
    assert len(leak) == 3 and not leak["leak"].any(), leak.to_string()
    # The check has power here: the planted left hippocampus does separate AD from NC.
    ad_nc = volumes[volumes["subject"].map(stages).isin(["AD", "NC"])]
    untruthful = {"stage_rois": {}, "roi_gene_pairs": []}
    flagged = leak_check(ad_nc, stages, untruthful, bound=0.65, n_perm=100)
    assert flagged.set_index("stage").loc["AD", "leak"], flagged.to_string()
