"""The planted truth of the synthetic cohort is really in the data it generates."""

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.synthetic.genotypes import simulate_panel_genotypes
from rgenima_lib.errors import InputDataError
from rgenima_lib.synthetic import clinical as clin
from rgenima_lib.synthetic import truth
from rgenima_lib.vocabulary import STAGES

CAUSAL = {"APOE": 0.8, "BIN1": 0.35, "CLU": 0.3}


@pytest.fixture(scope="module")
def genotypes(panel_table):
    return simulate_panel_genotypes(panel_table, 2000, 600, np.random.default_rng(3))


def test_stages_follow_liability_in_paper_proportions():
    liability = np.random.default_rng(0).normal(size=1998)
    stages = truth.stages_from_liability(liability, clin.stage_counts(1998))
    assert {s: int((stages == s).sum()) for s in STAGES} == clin.PAPER_STAGE_COUNTS
    means = [liability[stages == s].mean() for s in STAGES]
    assert means == sorted(means)


def test_causal_genes_drive_stage_and_null_genes_do_not(genotypes):
    dosage, variants = genotypes
    drivers = truth.choose_driver_snps(variants, list(CAUSAL))
    assert drivers["APOE"] == "rs429358"
    rng = np.random.default_rng(5)
    liability = truth.genetic_liability(dosage, variants, CAUSAL, drivers, 1.0, rng)
    stages = truth.stages_from_liability(liability, clin.stage_counts(len(liability)))
    ad = stages == "AD"
    nc = stages == "NC"
    col = {s: j for j, s in enumerate(variants["snp"])}
    eps4 = np.clip(dosage[:, col["rs429358"]], 0, 2)
    # Independent check: the epsilon-4 carrier rate is clearly higher in AD than in NC.
    assert (eps4[ad] > 0).mean() > (eps4[nc] > 0).mean() + 0.2
    # And a SNP of a gene without an effect shows no such difference.
    null = variants[(variants["planted"] == "") & ~variants["gene"].isin([*CAUSAL, "TOMM40", "APOC1", "NECTIN2"])]
    d = np.clip(dosage[:, col[null["snp"].iloc[0]]], 0, 2)
    assert abs(d[ad].mean() - d[nc].mean()) < 0.2


def test_atrophy_fractions_planted_where_stated():
    rois = pd.DataFrame({"token": [0, 1, 2], "label_id": [17, 53, 11],
                         "name": ["Left-Hippocampus", "Right-Hippocampus", "Left-Caudate"]})
    stages = np.array(["NC"] * 50 + ["SMC"] * 50 + ["AD"] * 50)
    gene_dose = np.tile([0, 1, 2], 50).astype(np.int8)
    frac = truth.atrophy_fractions(
        stages, {"RBFOX1": gene_dose}, rois,
        {"SMC": {"Left-Caudate": 0.1}, "AD": {"Left-Hippocampus": 0.3}},
        [{"gene": "RBFOX1", "roi": "Right-Hippocampus", "per_allele": 0.05, "stages": ["AD"]}],
        np.random.default_rng(0))
    assert frac.shape == (150, 3) and frac.dtype == np.float32
    assert (frac[:50] == 0).all()
    assert abs(frac[100:, 0].mean() - 0.3) < 0.05 and (frac[:100, 0] == 0).all()
    assert abs(frac[50:100, 2].mean() - 0.1) < 0.02
    ad_pair = frac[100:, 1]
    np.testing.assert_allclose(ad_pair, 0.05 * gene_dose[100:], atol=1e-6)
    assert frac.max() <= truth.MAX_ATROPHY


def test_unknown_roi_in_settings_is_named():
    rois = pd.DataFrame({"token": [0], "label_id": [17], "name": ["Left-Hippocampus"]})
    with pytest.raises(InputDataError, match="Left-Hipocampus"):
        truth.atrophy_fractions(np.array(["AD"]), {}, rois, {"AD": {"Left-Hipocampus": 0.2}}, [],
                                np.random.default_rng(0))
