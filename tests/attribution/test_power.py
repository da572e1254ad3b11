"""Power simulation: recovery of the planted genes and ROIs grows with the number of subjects."""

from __future__ import annotations

import pandas as pd

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
