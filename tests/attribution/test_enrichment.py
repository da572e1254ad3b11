"""GWAS enrichment of the stable genes: one-sided Fisher exact test (paper 2.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from conftest import REPO
from rgenima_lib.attribution.enrichment import fisher_from_counts, gwas_enrichment
from rgenima_lib.cli import main
from rgenima_lib.io import read_tsv


def test_reproduces_the_papers_p_and_odds_ratio():
    """Universe 105, 9 stable genes, 7 of them GWAS, 44 GWAS genes in the universe -> P = 0.0272, OR = 5.58."""
    odds, p = fisher_from_counts(105, 9, 7, 44)
    assert round(p, 4) == 0.0272 and round(odds, 2) == 5.58
    assert p == pytest.approx(hypergeom.sf(6, 105, 44, 9))  # P(X >= 7): the upper hypergeometric tail
    odds45, p45 = fisher_from_counts(105, 9, 7, 45)  # the paper's text says 45 GWAS genes; its numbers need 44
    assert round(p45, 4) == 0.0313 and round(odds45, 2) == 5.34


def test_table_from_gene_lists_on_the_real_panel(panel_table):
    panel = panel_table
    gwas = panel["gwas_ad"].to_numpy() == 1
    assert len(panel) == 105 and gwas.sum() == 45
    stable = np.isin(panel["gene"], ["APOE", "BIN1", "CLU", "RBFOX1", "CHAT", "IGH", "CNTNAP2", "NECTIN2", "TEAM"])
    res = gwas_enrichment(panel["gene"], stable, gwas)
    assert res.table().sum() == 105 and res.table()[0].sum() == res.n_stable == stable.sum()
    assert res.table()[:, 0].sum() == 45
    assert (res.odds_ratio, res.p_value) == fisher_from_counts(105, res.n_stable, res.stable_gwas, 45)
    assert set(res.stable_gwas_genes) | set(res.stable_other_genes) == set(panel["gene"][stable])
    none = gwas_enrichment(panel["gene"], np.zeros(105, bool), gwas)
    assert none.p_value == 1.0 and none.n_stable == 0
    with pytest.raises(ValueError, match="impossible"):
        fisher_from_counts(105, 9, 10, 44)


def test_enrichment_command_writes_table_and_markdown(tmp_path, panel_table):
    panel = panel_table
    genes = pd.DataFrame({"gene": panel["gene"], "stable": panel["gene"].isin(["APOE", "BIN1", "TOMM40"])})
    with open(tmp_path / "genes.tsv", "w") as fh:
        fh.write("# demo model, random init\n")
        genes.to_csv(fh, sep="\t", index=False)
    assert main(["enrichment", "--genes", str(tmp_path / "genes.tsv"), "--gene-panel",
                 str(REPO / "config" / "gene_panel.tsv"), "--output", str(tmp_path / "e.tsv"),
                 "--markdown", str(tmp_path / "e.md")]) == 0
    table = read_tsv(tmp_path / "e.tsv")
    assert table.loc[0, "n_stable"] == 3 and table.loc[0, "alternative"] == "greater"
    assert (tmp_path / "e.tsv").read_text().startswith("# demo model, random init")
    md = (tmp_path / "e.md").read_text()
    assert md.startswith("_demo model, random init_") and "| stable |" in md
    assert main(["enrichment", "--genes", str(tmp_path / "missing.tsv"), "--gene-panel",
                 str(REPO / "config" / "gene_panel.tsv"), "--output", str(tmp_path / "x.tsv")]) == 2
