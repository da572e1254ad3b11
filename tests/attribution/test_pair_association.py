"""The within-stage genotype-volume association of ROI-gene pairs finds a planted effect and nothing else."""

from __future__ import annotations

import numpy as np

from rgenima_lib.attribution.pair_association import minor_allele_count, pair_association

GENES = [f"G{i:02d}" for i in range(30)]
ROIS = [f"R{i:02d}" for i in range(40)]


def _cohort(n=1000, seed=0):
    """Genotypes (4 SNPs per gene), stages, ROI volumes with two planted genotype-volume effects."""
    rng = np.random.default_rng(seed)
    snp_genes = np.repeat(GENES, 4)
    freq = rng.uniform(0.1, 0.5, len(snp_genes))
    dosage = rng.binomial(2, freq, (n, len(snp_genes))).astype(np.int8)
    dosage[rng.random(dosage.shape) < 0.01] = -1  # missing calls
    labels = rng.choice(["NC", "SMC", "MCI", "AD"], n, p=[0.3, 0.1, 0.4, 0.2])
    head = rng.normal(0, 0.1, n)  # head size moves every ROI together
    volumes = np.exp(7 + head[:, None] + rng.normal(0, 0.1, (n, len(ROIS))))
    planted = {("R05", "G01"): 6, ("R20", "G11"): 45}  # ROI, gene -> SNP column of the gene's driver
    for (roi, _), snp in planted.items():
        in_stage = np.isin(labels, ["MCI", "AD"])
        volumes[in_stage, ROIS.index(roi)] *= 1 - 0.06 * np.clip(dosage[in_stage, snp], 0, 2)
    return dosage, snp_genes, labels, volumes, planted


def test_planted_pairs_rank_first_in_their_stages_and_only_there():
    dosage, snp_genes, labels, volumes, planted = _cohort()
    names = np.array([f"snp{i}" for i in range(len(snp_genes))])
    # 20 minor alleles: in this cohort's null SMC stage (89 subjects) a SNP with genotype counts 72 / 13 / 2
    # gives 3 BH-significant pairs at 5 (a leverage artefact), none at 20.
    table = pair_association(dosage, snp_genes, names, GENES, volumes, ROIS, labels, min_minor_count=20)
    for stage in ("MCI", "AD"):
        t = table[table["stage"] == stage]
        best = t.nsmallest(2, "rank")
        assert set(zip(best["roi"], best["gene"])) == set(planted), stage
        assert t["significant"].sum() <= 3  # the two planted, at most one false discovery
        assert set(best["best_snp"]) == {"snp6", "snp45"}
    smc = table[table["stage"] == "SMC"]
    assert smc["significant"].sum() <= 1  # no effect planted in SMC
    burden = pair_association(dosage, snp_genes, names, GENES, volumes, ROIS, labels, gene_test="burden",
                              min_minor_count=20)
    b = burden[burden["stage"] == "MCI"]
    assert set(zip(*b.nsmallest(2, "rank")[["roi", "gene"]].T.values)) == set(planted)


def test_minor_allele_count_ignores_missing_calls():
    d = np.array([[0, 2], [1, 2], [-1, 2], [0, 1]], np.int8)
    assert minor_allele_count(d).tolist() == [1, 1]
