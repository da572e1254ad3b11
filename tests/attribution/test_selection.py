"""Selections whose size is not fixed (significance, stability) against the paper's top-k, and their recovery rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.attribution.bootstrap import bootstrap_genes, bootstrap_pairs, bootstrap_rois
from rgenima_lib.attribution.recovery import recovery_table
from rgenima_lib.attribution.selection import (select_genes, select_stage_rois, significance_select,
                                               stability_bound, stability_q, stability_select)
from rgenima_lib.attribution.synthetic_dump import synthetic_dump

GENES = [f"G{i:03d}" for i in range(105)]
ROIS = [f"R{i:03d}" for i in range(109)]
PLANTED_GENES = GENES[10:19]  # 9 planted, as the synthetic cohort's causal genes
PLANTED_ROIS = {"MCI": ROIS[:6], "AD": ROIS[40:49]}


@pytest.fixture(scope="module")
def dump():
    return synthetic_dump(600, GENES, ROIS, planted_genes=PLANTED_GENES, planted_rois=PLANTED_ROIS, effect=0.3, seed=5)


def _precision_recall(found, planted):
    found, planted = set(found), set(planted)
    return len(found & planted) / max(len(found), 1), len(found & planted) / len(planted)


def test_significance_and_stability_recover_planted_genes_where_top_k_cannot(dump):
    top = bootstrap_genes(dump.gene_importance, dump.genes, n_boot=200, top_k=45)
    top_precision, top_recall = _precision_recall(top.loc[top["stable"], "gene"], PLANTED_GENES)
    assert top_recall == 1.0 and top_precision <= 9 / 45 + 0.05  # the cap planted / k
    chosen = select_genes(dump.gene_importance, dump.genes)
    for method, t in chosen.groupby("selection"):
        precision, recall = _precision_recall(t.loc[t["selected"], "item"], PLANTED_GENES)
        assert precision >= 0.8 and recall >= 0.8, (method, precision, recall)


def test_stage_roi_selections_recover_each_stage_with_the_contrast_score(dump):
    chosen = select_stage_rois(dump.roi_importance, dump.label, dump.rois, score="contrast")
    for (stage, method), t in chosen.groupby(["stage", "selection"]):
        found = t.loc[t["selected"], "item"]
        if stage in PLANTED_ROIS:
            precision, recall = _precision_recall(found, PLANTED_ROIS[stage])
            assert precision >= 0.8 and recall >= 0.8, (stage, method, precision, recall)
        else:
            assert len(found) <= 1  # SMC: nothing planted


def test_on_pure_noise_the_selections_keep_almost_nothing():
    kept = {"significance": 0, "stability": 0}
    for seed in range(10):
        noise = synthetic_dump(300, GENES, ROIS, seed=100 + seed)
        for method, t in select_genes(noise.gene_importance, noise.genes).groupby("selection"):
            kept[method] += int(t["selected"].sum())
    assert kept["significance"] <= 2  # BH at 0.05 under the complete null: P(any rejection) <= 0.05 per run
    assert kept["stability"] <= 10  # E[V] <= 1 per run by the Meinshausen-Buehlmann bound


def test_stability_q_meets_its_error_bound():
    q = stability_q(105, expected_false=1.0, threshold=0.9)
    assert q == 9 and stability_bound(105, q, 0.9) <= 1.0 < stability_bound(105, q + 1, 0.9)
    with pytest.raises(ValueError):
        stability_q(105, threshold=0.5)  # the paper's 0.5 gives no bound


def test_significance_compares_against_the_bulk_not_a_fixed_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.1, (500, 50)) + np.linspace(0, 0.2, 50)  # a smooth trend over items: no outlier
    x[:, 7] += 1.0
    table = significance_select(x)
    assert table["selected"].tolist() == [i == 7 for i in range(50)]
    table = stability_select(x, seed=1)
    assert bool(table.loc[7, "selected"]) and table["q"].iloc[0] == stability_q(50)


def test_recovery_reports_every_selection_with_the_top_k_precision_cap(dump):
    genes = bootstrap_genes(dump.gene_importance, dump.genes, n_boot=100, top_k=45)
    rois = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=100, top_k=10, score="contrast")
    pairs = bootstrap_pairs(dump.roi_gene[:, :5, :5], dump.label, dump.rois[:5], dump.genes[:5], n_boot=20)
    selections = pd.concat([select_genes(dump.gene_importance, dump.genes),
                            select_stage_rois(dump.roi_importance, dump.label, dump.rois, score="contrast")])
    truth = {"causal_genes": [{"gene": g} for g in PLANTED_GENES],
             "stage_rois": {s: [{"roi": r} for r in v] for s, v in PLANTED_ROIS.items()}, "roi_gene_pairs": []}
    table = recovery_table(truth, genes, rois, pairs, selections=selections, top_genes=45, top_rois=10)
    g = table[table["what"] == "causal genes"].set_index("selection")
    assert list(g.index) == ["top_k", "significance", "stability"]
    assert g.loc["top_k", "precision_cap"] == pytest.approx(0.2) and g.loc["significance", "precision_cap"] == 1.0
    assert (g.loc[["significance", "stability"], "precision"] >= 0.8).all()
    ad = table[(table["what"] == "stage ROIs") & (table["stage"] == "AD")].set_index("selection")
    assert ad.loc["top_k", "precision_cap"] == pytest.approx(0.9) and ad.loc["significance", "recall"] >= 0.8
