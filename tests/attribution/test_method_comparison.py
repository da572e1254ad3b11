"""Every method's recovery side by side (rgenima_lib.attribution.method_comparison): a planted method finds the
planted truth, a noise method does not, and the command refuses dumps of another method."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.attribution.dump_format import AttentionDump, write_dump
from rgenima_lib.attribution.method_comparison import method_recovery, observed_ranks

STAGES = ["NC", "SMC", "MCI", "AD"]
GENES = [f"G{i}" for i in range(20)]
ROIS = [f"R{i}" for i in range(30)]
TRUTH = {"causal_genes": [{"gene": "G3"}, {"gene": "G7"}],
         "stage_rois": {s: [{"roi": "R2"}, {"roi": "R5"}, {"roi": "R11"}] for s in ("SMC", "MCI", "AD")},
         "roi_gene_pairs": [{"roi": "R5", "gene": "G7", "stages": ["MCI", "AD"]}]}


def _dump(method: str, planted: bool, n: int = 80, seed: int = 0) -> AttentionDump:
    rng = np.random.default_rng(seed)
    label = np.array(STAGES * (n // 4))
    genes = rng.normal(0, 1, (n, len(GENES)))
    rois = rng.normal(0, 1, (n, len(ROIS)))
    pairs = rng.normal(0, 1, (n, len(ROIS), len(GENES)))
    if planted:  # the planted items stand out in the diseased stages only (contrast against NC finds them)
        genes[:, [3, 7]] += 3.0
        ill = label != "NC"
        rois[np.ix_(ill, [2, 5, 11])] += 3.0
        pairs[np.ix_(np.isin(label, ["MCI", "AD"]), [5], [7])] += 3.0
    return AttentionDump(
        subjects=np.array([f"011_S_{i:04d}" for i in range(n)]), genes=np.array(GENES), rois=np.array(ROIS),
        gene_importance=genes, roi_importance=rois, roi_gene=pairs, label=label, predicted=label,
        probabilities=np.full((n, 4), 0.25), sink_share=np.zeros(n), roi_presence=np.ones((n, len(ROIS)), np.uint8),
        gene_tokens=np.full((n, len(GENES)), 2), fold=np.zeros(n), meta={"method": method})


def test_observed_ranks_are_one_for_the_highest_and_stable_on_ties():
    np.testing.assert_array_equal(observed_ranks(np.array([0.1, 3.0, 0.1, -1.0])), [2, 1, 3, 4])


def test_the_planted_method_recovers_everything_and_the_noise_method_is_ranked_like_random():
    table = method_recovery(TRUTH, {"integrated_gradients": _dump("integrated_gradients", True),
                                    "rollout": _dump("rollout", False, seed=1)},
                            top_genes=2, top_rois=3, top_pairs=1, selections=("significance",))
    rows = table.set_index(["method", "what", "stage", "selection"])
    for stage in ("SMC", "MCI", "AD"):
        hit = rows.loc[("integrated_gradients", "stage ROIs", stage, "top_k")]
        assert hit.precision == 1.0 and hit.recall == 1.0 and hit.mean_rank_planted == 2.0
        assert rows.loc[("integrated_gradients", "stage ROIs", stage, "significance")].recall == 1.0
        miss = rows.loc[("rollout", "stage ROIs", stage, "top_k")]
        assert miss.recall < 1.0 and miss.mean_rank_planted > 5
    genes = rows.loc[("integrated_gradients", "causal genes", "all", "top_k")]
    assert genes.precision == 1.0 and genes.recall == 1.0
    assert rows.loc[("integrated_gradients", "ROI-gene pairs", "AD", "top_k")].recall == 1.0
    assert set(table["method"]) == {"integrated_gradients", "rollout"}


def test_a_method_without_roi_gene_shares_or_genes_gets_no_rows_for_them():
    dump = _dump("gradient_input", True)
    dump.roi_gene[:] = 0
    table = method_recovery(TRUTH, {"gradient_input": dump}, top_genes=2, top_rois=3, top_pairs=1, selections=())
    assert "ROI-gene pairs" not in set(table["what"]) and "stage ROIs" in set(table["what"])
    dump.gene_importance[:] = 0  # gene tokens: the gradient methods leave the genes at 0
    table = method_recovery(TRUTH, {"gradient_input": dump}, top_genes=2, top_rois=3, top_pairs=1, selections=())
    assert set(table["what"]) == {"stage ROIs"}


def test_the_command_refuses_dumps_written_by_another_method(tmp_path):
    write_dump(tmp_path / "a.npz", _dump("rollout", True))
    (tmp_path / "truth.json").write_text(json.dumps(TRUTH))
    out = subprocess.run([sys.executable, "-m", "rgenima_lib.cli", "method-recovery", "--truth",
                          str(tmp_path / "truth.json"), "--methods", "integrated_gradients", "--dumps",
                          str(tmp_path / "a.npz"), "--top-genes", "2", "--top-rois", "3", "--top-n", "1",
                          "--output", str(tmp_path / "t.tsv")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "written by rollout" in out.stderr
    assert not (tmp_path / "t.tsv").exists()
    ok = subprocess.run([sys.executable, "-m", "rgenima_lib.cli", "method-recovery", "--truth",
                         str(tmp_path / "truth.json"), "--methods", "rollout", "--dumps", str(tmp_path / "a.npz"),
                         "--top-genes", "2", "--top-rois", "3", "--top-n", "1", "--output", str(tmp_path / "t.tsv"),
                         "--markdown", str(tmp_path / "t.md")], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    table = pd.read_csv(tmp_path / "t.tsv", sep="\t", comment="#")
    assert (table["balanced_accuracy"] == 1.0).all() and (table["method"] == "rollout").all()
    assert "top_k ranks the observed score" in (tmp_path / "t.md").read_text()


def test_a_signed_method_is_ranked_by_the_size_of_its_stage_contrast():
    """IG's planted ROIs are evidence *for* NC in NC subjects: their signed contrast is negative, its size large."""
    from rgenima_lib.attribution.bootstrap import bootstrap_rois, stage_roi_score
    from rgenima_lib.attribution.selection import significance_select

    dump = _dump("integrated_gradients", False, n=200, seed=4)
    nc = np.asarray(dump.label) == "NC"
    dump.roi_importance[np.ix_(nc, [2, 5, 11])] += 3.0  # strong evidence in NC only
    assert stage_roi_score("contrast", "integrated_gradients") == "abs_contrast"
    assert stage_roi_score("contrast", "rollout") == "contrast" and stage_roi_score("mean", "gradient_input") == "mean"
    table = method_recovery(TRUTH, {"integrated_gradients": dump}, top_genes=2, top_rois=3, top_pairs=1,
                            selections=("significance",))
    rois = table[table["what"] == "stage ROIs"].set_index(["stage", "selection"])
    assert (rois.loc[(slice(None), "top_k"), "recall"] == 1.0).all() and (table["roi_score"] == "abs_contrast").all()
    assert (rois.loc[(slice(None), "significance"), "recall"] == 1.0).all()
    one_sided = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=50, top_k=3, score="contrast")
    two_sided = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=50, top_k=3, score="abs_contrast")
    planted = {"R2", "R5", "R11"}
    assert not planted & set(one_sided.loc[one_sided["stable"], "roi"])
    assert set(two_sided.loc[two_sided["stable"] & (two_sided["stage"] == "AD"), "roi"]) == planted
    x = dump.roi_importance[np.asarray(dump.label) == "AD"]
    assert not significance_select(x, dump.roi_importance[nc])["selected"][[2, 5, 11]].any()
    assert significance_select(x, dump.roi_importance[nc], two_sided=True)["selected"][[2, 5, 11]].all()
