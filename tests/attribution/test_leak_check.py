"""The leak check: a never-planted ROI that tells a stage from NC is flagged; planted ones and noise are not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.attribution.leak_check import leak_check, planted_rois, separation_auc
from rgenima_lib.attribution.recovery import RECOVERY_COLUMNS, leak_rows

N_PER_STAGE = 40
TRUTH = {"stage_rois": {"AD": [{"roi": "Planted"}]},
         "roi_gene_pairs": [{"roi": "Paired", "gene": "BIN1", "stages": ["MCI", "AD"]}]}


def _table(leaking: bool, n_per_stage: int = N_PER_STAGE) -> tuple[pd.DataFrame, pd.Series]:
    """Volumes of NC / SMC / MCI / AD subjects: noise ROIs, planted ROIs, and (optionally) a leaking one."""
    rng = np.random.default_rng(0)
    stages = np.repeat(["NC", "SMC", "MCI", "AD"], n_per_stage)
    n = stages.size
    table = pd.DataFrame({f"Noise{k}": rng.normal(1000, 100, n) for k in range(30)})
    table["Planted"] = rng.normal(1000, 100, n) * np.where(stages == "AD", 0.7, 1.0)
    table["Paired"] = rng.normal(1000, 100, n) * np.where(np.isin(stages, ["MCI", "AD"]), 0.8, 1.0)
    # A token that grows with disease (as CSF did when lost tissue was relabelled to it).
    table["Grows"] = rng.normal(130, 10, n) * np.where((stages != "NC") & leaking, 3.0, 1.0)
    subjects = [f"S{i:03d}" for i in range(n)]
    table.insert(0, "subject", subjects)
    table.insert(1, "voxel_volume_mm3", 8.0)
    return table, pd.Series(stages, index=subjects)


def test_planted_rois_include_the_pairs():
    assert planted_rois(TRUTH, "AD") == {"Planted", "Paired"}
    assert planted_rois(TRUTH, "MCI") == {"Paired"}
    assert planted_rois(TRUTH, "SMC") == set()


def test_separation_auc_is_the_mann_whitney_auc():
    volumes = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert separation_auc(volumes, np.array([True, True, False, False]))[0] == 1.0
    assert separation_auc(volumes, np.array([False, False, True, True]))[0] == 0.0
    assert separation_auc(np.ones((4, 1)), np.array([True, False, True, False]))[0] == 0.5


def test_a_planted_leak_is_flagged():
    table, stages = _table(leaking=True)
    leak = leak_check(table, stages, TRUTH, bound=0.65, n_perm=100).set_index("stage")
    assert leak["leak"].all(), leak.to_string()
    assert (leak["best_roi"] == "Grows").all() and (leak["direction"] == "larger").all()
    assert (leak["best_auc"] > 0.95).all() and (leak["chance_best_auc"] < 0.8).all()
    rows = leak_rows(leak.reset_index())
    assert list(rows.columns) == RECOVERY_COLUMNS and rows["leak"].all()
    assert (rows["found"] == "Grows").all() and (rows["what"] == "never-planted ROIs").all()


def test_planted_rois_and_noise_are_not_flagged():
    table, stages = _table(leaking=False, n_per_stage=100)
    leak = leak_check(table, stages, TRUTH, bound=0.65, n_perm=100).set_index("stage")
    assert not leak["leak"].any(), leak.to_string()
    assert leak.loc["AD", "n_never_planted"] == 31 and leak.loc["SMC", "n_never_planted"] == 33
    assert not leak["best_roi"].isin(["Planted", "Paired"]).any()
    # The same planted ROIs, left out of the truth, are flagged: the truth must be complete.
    flagged = leak_check(table, stages, {"stage_rois": {}, "roi_gene_pairs": []}, bound=0.65, n_perm=100)
    assert flagged.set_index("stage").loc[["MCI", "AD"], "leak"].all()
