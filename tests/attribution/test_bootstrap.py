"""Bootstrap stability (paper 2.2, 2.3, 4.3 eqs. 13-17), permutation test with BH FDR, planted-truth recovery."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from rgenima_lib.attribution.bootstrap import (bootstrap_genes, bootstrap_pairs, bootstrap_rois, pair_stability,
                                               ranked_order, resample_weights, top_k_frequency, top_pairs)
from rgenima_lib.attribution.synthetic_dump import synthetic_dump
from rgenima_lib.attribution.permutation import permutation_pvalues, stage_permutation_tests
from rgenima_lib.attribution.recovery import recovery_table

GENES = [f"G{i:03d}" for i in range(105)]
ROIS = [f"R{i:03d}" for i in range(109)]
PLANTED_ROIS = {"SMC": ["R003", "R010"], "MCI": ["R010", "R050"], "AD": ["R010", "R050", "R099"]}
PLANTED_PAIRS = [("R010", "G007", ["SMC", "MCI", "AD"]), ("R050", "G020", ["MCI", "AD"])]


@pytest.fixture(scope="module")
def dump():
    return synthetic_dump(600, GENES, ROIS, planted_genes=["G001", "G002", "G050"], planted_rois=PLANTED_ROIS,
                          planted_pairs=PLANTED_PAIRS, effect=1.5, seed=3)


def test_resample_weights_are_seeded_multinomial_means():
    w = resample_weights(7, 50, np.random.default_rng(0))
    assert w.shape == (50, 7) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    counts = w * 7
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-5)  # whole subjects only
    np.testing.assert_array_equal(w, resample_weights(7, 50, np.random.default_rng(0)))
    assert (resample_weights(7, 5, np.random.default_rng(0), n_draw=3) * 3).sum(1).round().tolist() == [3.0] * 5


def test_float32_weights_are_the_float64_quotients_rounded():
    """The weights divided in float32 are bit for bit ``(counts / n_draw).astype(float32)``, for every count."""
    counts = np.random.default_rng(1).multinomial(300, np.full(40, 1 / 40), size=20)
    np.testing.assert_array_equal(resample_weights(40, 20, np.random.default_rng(1), n_draw=300),
                                  (counts / 300).astype(np.float32))
    for n_draw in [*range(1, 1200), 1998, 2000, 2048, 3001, 4096, 10007]:
        k = np.arange(n_draw + 1)
        np.testing.assert_array_equal(np.divide(k, n_draw, dtype=np.float32), (k / n_draw).astype(np.float32))


@pytest.mark.parametrize("score", ["mean", "contrast"])
def test_stage_rois_draw_their_streams_in_parallel_with_the_sequential_results(dump, score):
    """Each stage's weights (and its NC reference's) are its own stream's, whether drawn in threads or not."""
    from rgenima_lib.attribution.bootstrap import STREAMS, map_in_threads

    keys = [([0, STREAMS["rois"], i], n) for i, n in enumerate((30, 5, 60))] + [([0, STREAMS["reference"], 0], 40)]
    parallel = map_in_threads(lambda entry: resample_weights(entry[1], 50, np.random.default_rng(entry[0])), keys)
    for (key, n), got in zip(keys, parallel):
        np.testing.assert_array_equal(got, resample_weights(n, 50, np.random.default_rng(key)))
    # The table itself against the frequencies drawn stage by stage, as before the parallel draw.
    labels = np.asarray(dump.label)
    x = dump.roi_importance.astype(np.float32)
    t = bootstrap_rois(x, labels, ROIS, n_boot=100, top_k=4, score=score, seed=0)
    nc = x[labels == "NC"]
    for i, stage in enumerate(("SMC", "MCI", "AD")):
        xs = x[labels == stage]
        means = resample_weights(len(xs), 100, np.random.default_rng([0, STREAMS["rois"], i])) @ xs
        if score == "contrast":
            means = means - resample_weights(len(nc), 100, np.random.default_rng([0, STREAMS["reference"], i])) @ nc
        expected = top_k_frequency(means, 4)
        got = t[t["stage"] == stage].set_index("roi").loc[ROIS, "frequency"].to_numpy()
        np.testing.assert_array_equal(got, expected)


def test_top_k_frequency_counts_selections():
    means = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 2.0, 3.0, 1.0]])
    np.testing.assert_allclose(top_k_frequency(means, 2), [0.5, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(top_k_frequency(means, 9), [1.0] * 4)


def test_ranked_order_is_the_stable_two_key_sort():
    """Score descending, name ascending, duplicates in input order, NaN last: as ``sort_values``."""
    score = np.array([1.0, np.nan, 2.0, 1.0, np.nan, 2.0, 1.0, -0.0, 0.0])
    names = np.array(["b", "a", "c", "a", "b", "c", "b", "z", "y"])
    expected = pd.DataFrame({"score": score, "name": names}).sort_values(
        ["score", "name"], ascending=[False, True], kind="stable").index.to_numpy()
    np.testing.assert_array_equal(ranked_order(score, names), expected)
    with pytest.raises(ValueError, match="3 genes for 4"):
        bootstrap_genes(np.ones((5, 4)), ["a", "b", "c"], n_boot=3)


def test_genes_planted_are_stable_and_the_run_is_deterministic(dump):
    a = bootstrap_genes(dump.gene_importance, GENES, n_boot=200, top_k=10, seed=1)
    b = bootstrap_genes(dump.gene_importance, GENES, n_boot=200, top_k=10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert {"G001", "G002", "G050"} <= set(a.loc[a["stable"], "gene"])
    assert a["stable"].sum() <= 12 and a["rank"].tolist() == list(range(1, 106))
    assert abs(a["frequency"].sum() - 10) < 1e-9  # every iteration keeps exactly top_k genes
    c = bootstrap_genes(dump.gene_importance, GENES, n_boot=200, top_k=10, seed=2)
    assert not np.array_equal(a["frequency"], c["frequency"]) or a["frequency"].isin([0, 1]).all()


@pytest.mark.parametrize("score", ["mean", "contrast"])
def test_stage_rois_planted_are_stable(dump, score):
    t = bootstrap_rois(dump.roi_importance, dump.label, ROIS, n_boot=200, top_k=4, score=score, seed=0)
    assert set(t["stage"]) == {"SMC", "MCI", "AD"} and len(t) == 3 * 109
    for stage, planted in PLANTED_ROIS.items():
        s = t[t["stage"] == stage]
        assert set(planted) <= set(s.loc[s["stable"], "roi"]), (stage, score)
        assert s["n_subjects"].iloc[0] == (dump.label == stage).sum()
    if score == "contrast":
        row = t[(t["stage"] == "AD") & (t["roi"] == "R099")].iloc[0]
        assert row["score"] == pytest.approx(row["mean_importance"] - row["nc_mean_importance"], rel=1e-5)


def test_pair_stability_is_eq_13_to_17(dump):
    """Vectorised, chunked result == a plain loop over the same resamples (eq. 14-17)."""
    x = dump.roi_gene[dump.label == "AD"][:, :3, :4].astype(np.float32)  # N x 3 ROIs x 4 genes
    res = pair_stability(x, n_boot=300, seed=5, stream=0, chunk=5)
    from rgenima_lib.attribution.bootstrap import STREAMS

    weights = resample_weights(len(x), 300, np.random.default_rng([5, STREAMS["pairs"], 0]))
    counts = np.round(weights * len(x)).astype(int)
    mu = np.stack([np.repeat(x, c, axis=0).mean(0) for c in counts])  # eq. 14: mean of N drawn values
    np.testing.assert_allclose(res["mean"], mu.mean(0), rtol=1e-5)  # eq. 16
    lo, hi = np.percentile(mu, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(res["ci_low"], lo, rtol=1e-5)
    np.testing.assert_allclose(res["ci_high"], hi, rtol=1e-5)
    np.testing.assert_allclose(res["stability"], mu.mean(0) / (hi - lo), rtol=1e-4)  # eq. 17
    whole = pair_stability(x, n_boot=300, seed=5, stream=0, chunk=4096)
    # Chunking changes nothing beyond float32 rounding: the BLAS sums the chunks' products in another order.
    np.testing.assert_allclose(whole["stability"], res["stability"], rtol=1e-5)
    const = pair_stability(np.zeros((5, 1, 2), np.float32), n_boot=20)
    assert np.isnan(const["stability"]).all()  # zero-width interval: undefined, not inf


def test_planted_pairs_top_their_stages_and_are_recovered(dump):
    pairs = bootstrap_pairs(dump.roi_gene, dump.label, ROIS, GENES, n_boot=200, seed=0)
    assert len(pairs) == 3 * 109 * 105 and set(pairs.columns) >= {"bootstrap_mean", "ci_low", "ci_high", "stability"}
    top = top_pairs(pairs, n=3)
    assert ("R010", "G007") in set(zip(top.loc[top["stage"] == "SMC", "roi"], top.loc[top["stage"] == "SMC", "gene"]))
    only = top_pairs(pairs, n=3, rois={"AD": {"R050"}})
    assert set(only["roi"]) == {"R050"} and only.loc[0, "gene"] == "G020"

    genes = bootstrap_genes(dump.gene_importance, GENES, n_boot=200, top_k=5, seed=0)
    rois = bootstrap_rois(dump.roi_importance, dump.label, ROIS, n_boot=200, top_k=4, seed=0)
    truth = {"causal_genes": [{"gene": "G001"}, {"gene": "G002"}, {"gene": "G050"}, {"gene": "NOTINPANEL"}],
             "stage_rois": {s: [{"roi": r} for r in rs] for s, rs in PLANTED_ROIS.items()},
             "roi_gene_pairs": [{"roi": r, "gene": g, "stages": st} for r, g, st in PLANTED_PAIRS]}
    rec = recovery_table(truth, genes, rois, pairs, top_n=5).set_index(["what", "stage"])
    assert rec.loc[("causal genes", "all"), "recall"] == 1.0 and rec.loc[("causal genes", "all"), "n_planted"] == 3
    assert rec.loc[("causal genes", "all"), "mean_rank_planted"] == 2.0  # ranks 1, 2, 3
    for stage in ("SMC", "MCI", "AD"):
        assert rec.loc[("stage ROIs", stage), "recall"] == 1.0
        assert rec.loc[("ROI-gene pairs", stage), "recall"] == 1.0
        assert rec.loc[("ROI-gene pairs", stage), "mean_rank_planted"] <= 2
    assert rec.loc[("ROI-gene pairs", "SMC"), "n_planted"] == 1 and rec.loc[("ROI-gene pairs", "AD"), "n_planted"] == 2


def test_permutation_p_values_match_exact_enumeration():
    """Small groups: the Monte-Carlo p tends to the exact permutation p over all C(n, n1) splits."""
    x1 = np.array([[3.0, 0.1], [2.5, 0.3]])
    x0 = np.array([[1.0, 0.2], [0.5, 0.4], [1.5, 0.0]])
    pooled = np.concatenate([x1, x0])
    obs = x1.mean(0) - x0.mean(0)
    splits = list(combinations(range(5), 2))
    exact = np.zeros(2)
    for s in splits:
        rest = [i for i in range(5) if i not in s]
        exact += np.abs(pooled[list(s)].mean(0) - pooled[rest].mean(0)) >= np.abs(obs) - 1e-12
    exact /= len(splits)
    stat, p = permutation_pvalues(x1, x0, n_perm=20000, rng=np.random.default_rng(0))
    np.testing.assert_allclose(stat, obs)
    np.testing.assert_allclose(p, exact, atol=0.01)
    _, greater = permutation_pvalues(x1, x0, n_perm=20000, alternative="greater", rng=np.random.default_rng(0))
    assert greater[0] == pytest.approx(0.1, abs=0.01)  # only the observed split has a mean difference this large


def test_stage_permutation_tests_find_planted_rois_with_bh(dump):
    # 1,000 permutations floor p at 1/1001, and BH over 109 ROIs then needs >= 3 ROIs at the floor for q < 0.05.
    t = stage_permutation_tests(dump.roi_importance, dump.label, ROIS, n_perm=5000, seed=0)
    assert set(t["stage"]) == {"SMC", "MCI", "AD"} and (t["n_nc"] == (dump.label == "NC").sum()).all()
    for stage, planted in PLANTED_ROIS.items():
        s = t[t["stage"] == stage].set_index("roi")
        assert s.loc[planted, "significant"].all() and (s.loc[planted, "p_perm"] == 1 / 5001).all()
        np.testing.assert_allclose(s["q_bh"], multipletests(s["p_perm"], method="fdr_bh")[1])
        assert s["significant"].sum() <= len(planted) + 3  # BH keeps false discoveries rare
    nulls = t[~t.apply(lambda r: r["roi"] in PLANTED_ROIS[r["stage"]], axis=1)]["p_perm"]
    assert 0.3 < nulls.mean() < 0.7  # uniform under the null


def test_per_token_gene_score_removes_the_snp_count_confound():
    """Long genes (many tokens) win the paper's summed score by length alone; per token they do not."""
    rng = np.random.default_rng(0)
    tokens = np.tile(np.where(np.arange(105) < 10, 40, 4), (200, 1))  # genes 0-9 have 10x more tokens
    per_token = rng.lognormal(0, 0.2, (200, 105)) * 1e-4
    per_token[:, 50] *= 2.0  # the one gene that really draws attention
    summed = per_token * tokens
    by_sum = bootstrap_genes(summed, GENES, n_boot=100, top_k=3, tokens=tokens, seed=0)
    by_token = bootstrap_genes(summed, GENES, n_boot=100, top_k=3, tokens=tokens, score="per_token", seed=0)
    assert set(by_sum.loc[by_sum["stable"], "gene"]) <= set(GENES[:10])
    assert by_token.loc[0, "gene"] == "G050" and by_token.loc[0, "mean_tokens"] == 4
    with pytest.raises(ValueError, match="token"):
        bootstrap_genes(summed, GENES, n_boot=10, score="per_token")
