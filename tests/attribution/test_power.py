"""Power simulation: recovery of the planted genes and ROIs grows with the number of subjects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.attribution.power import dump_gene_ranking, power_simulation, power_summary, scaled_effects
from rgenima_lib.attribution.synthetic_dump import synthetic_dump
from rgenima_lib.io import read_tsv

from conftest import REPO

SYNTHETIC = {"causal_genes": {"APOE": 0.8, "BIN1": 0.5, "CLU": 0.5},
             "stage_atrophy": {"MCI": {"Left-Hippocampus": 0.1, "ctx-lh-entorhinal": 0.1},
                               "AD": {"Left-Hippocampus": 0.2, "Right-Hippocampus": 0.2, "Left-Amygdala": 0.15}},
             "roi_gene_pairs": [], "liability_noise_sd": 1.0}


def test_recall_increases_with_the_number_of_subjects():
    panel = read_tsv(REPO / "config" / "gene_panel.tsv")
    rois = read_tsv(REPO / "config" / "rois.tsv")
    table = power_simulation(panel, rois, SYNTHETIC, sizes=(80, 1000), effects=("gwas",), replicates=1,
                             n_variants=250, n_boot=50)
    summary = power_summary(table).set_index(["n_subjects", "what", "selection"])
    for what in ("genes", "stage ROIs"):
        small = summary.loc[(80, what, "stability"), "recall"]
        large = summary.loc[(1000, what, "stability"), "recall"]
        assert large > small, (what, small, large)
    assert set(table["selection"]) == {"top_k", "significance", "stability"}


def test_effect_levels_keep_apoe_and_scale_the_rest():
    causal, atrophy, _ = scaled_effects(SYNTHETIC, 0.3, 0.5)
    assert causal["APOE"] == 0.8 and abs(causal["BIN1"] - 0.15) < 1e-12
    assert abs(atrophy["AD"]["Left-Hippocampus"] - 0.1) < 1e-12


def test_dump_gene_ranking_puts_planted_genes_first():
    genes = [f"G{i}" for i in range(30)]
    dump = synthetic_dump(100, genes, ["R0", "R1"], planted_genes=["G5", "G9"], effect=1.0, seed=1)
    ranking = dump_gene_ranking(dump)
    assert set(ranking.head(2)["gene"]) == {"G5", "G9"} and isinstance(ranking, pd.DataFrame)


def test_the_linear_ranking_finds_a_planted_gene_and_agrees_with_an_identical_llm_ranking():
    from rgenima_lib.attribution.power import linear_gene_ranking, ranking_agreement

    rng = np.random.default_rng(3)
    n, genes = 600, ["G0", "G1", "G2", "G3"]
    snp_gene = np.repeat(genes, 3)
    dosage = rng.binomial(2, 0.3, (n, len(snp_gene))).astype(float)
    liability = 1.5 * dosage[:, 7] + rng.normal(0, 1, n)  # G2's second SNP drives the stage
    stages = np.array(["NC", "SMC", "MCI", "AD"])[np.digitize(liability, np.quantile(liability, [0.25, 0.5, 0.75]))]
    linear = linear_gene_ranking(dosage, snp_gene, stages, genes, gene_score="sum")
    missing = dosage.copy()
    missing[0, 0] = -1
    with pytest.raises(ValueError, match="impute them"):
        linear_gene_ranking(missing, snp_gene, stages, genes)
    assert linear.iloc[0]["gene"] == "G2" and linear.attrs["accuracy"] > 0.3
    same = ranking_agreement(linear, linear, ["G2"], k=1)
    assert same.attrs["spearman"] == pytest.approx(1.0) and same.attrs["top_k_overlap"] == 1.0
    reversed_ = linear.assign(rank=len(linear) + 1 - linear["rank"])
    other = ranking_agreement(reversed_, linear, ["G2"], k=1)
    assert other.attrs["spearman"] == pytest.approx(-1.0) and other.attrs["top_k_overlap"] == 0.0
    assert other.attrs["causal_mean_rank_llm"] == len(genes) and other.attrs["causal_mean_rank_linear"] == 1
