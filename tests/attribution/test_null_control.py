"""The null machinery on pure noise: the enrichment test's P < 0.05 rate stays near 0.05, nothing is selected."""

from __future__ import annotations

import numpy as np

from rgenima_lib.attribution.null_control import false_positive_summary, null_findings, random_gene_set
from rgenima_lib.attribution.synthetic_dump import synthetic_dump

GENES = [f"G{i:03d}" for i in range(105)]
ROIS = [f"R{i:03d}" for i in range(109)]
GWAS = np.arange(105) < 45  # the panel lists its 45 GWAS genes first


def test_pure_noise_gives_a_false_positive_rate_near_alpha():
    rows = []
    for seed in range(30):
        dump = synthetic_dump(200, GENES, ROIS, seed=500 + seed)
        planted = random_gene_set(len(GENES), 9, seed)
        rows.append(null_findings(dump, GWAS, planted, scoring="deconfounded", seed=seed, n_boot=50, n_perm=200))
    import pandas as pd

    rows = pd.DataFrame(rows)
    assert (rows["enrichment_p"] < 0.05).mean() <= 0.15  # loose: 30 seeds, a discrete test
    assert rows["bh_rois_mean"].mean() <= 0.05 * 109
    assert rows["significance_genes"].mean() <= 0.5
    summary = false_positive_summary(rows, len(ROIS))
    assert list(summary.columns) == ["measure", "null", "deconfounded"]
    assert summary.loc[summary["measure"] == "seeds", "deconfounded"].iloc[0] == 30


def test_a_position_artefact_is_reported_as_enrichment_by_the_paper_scoring():
    dump = synthetic_dump(200, GENES, ROIS, seed=7)
    # Earlier genes get more share, as under causal attention with the canonical gene order.
    dump.gene_importance = (dump.gene_importance.astype(float) * np.linspace(2.0, 0.5, 105)).astype(np.float16)
    row = null_findings(dump, GWAS, random_gene_set(105, 9, 0), scoring="paper", n_boot=50, n_perm=200)
    assert row["enrichment_p"] < 1e-3 and row["stable_gwas"] > row["expected_gwas"]
