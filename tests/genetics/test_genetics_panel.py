"""Gene panel and .bim checks: chromosome names, SNP-to-gene mapping with a window (build check: test_genetics_build)."""

from __future__ import annotations


import pandas as pd

from rgenima_lib.genetics.panel import map_variants_to_genes, normalise_chrom



def test_normalise_chrom():
    got = normalise_chrom(["chr19", "CHR19", "19", "chrX", "23", "chrM", "MT", " 2 "]).tolist()
    assert got == ["19", "19", "19", "X", "X", "MT", "MT", "2"]


def test_config_panel_reads(panel):
    assert len(panel) == 105 and panel["gene"].iloc[0] == "APOE" and panel["gwas_ad"].sum() == 45
    assert panel["chrom"].str.fullmatch(r"\d+").all()


def test_mapping_window_and_nearest_gene():
    panel = pd.DataFrame({"gene": ["A", "B", "C"], "chrom": ["1", "1", "2"],
                          "start_grch37": [1000, 3000, 1000], "end_grch37": [2000, 4000, 2000]})
    bim = pd.DataFrame({"chrom": ["1", "1", "1", "1", "1", "2", "3"],
                        "pos": [1500, 2100, 2600, 2400, 999, 2050, 1500]})
    no_window = map_variants_to_genes(bim, panel, 0)
    assert no_window["gene"].tolist() == ["A", "", "", "", "", "", ""]
    window = map_variants_to_genes(bim, panel, 1000)
    # 2100: A (100 bp) vs B (900 bp) -> A; 2600: B nearer; 2400: A nearer; 2500 would tie -> A (panel order).
    assert window["gene"].tolist() == ["A", "A", "B", "A", "A", "C", ""]
    assert window["distance_bp"].tolist() == [0, 100, 400, 400, 1, 50, -1]
    tie = map_variants_to_genes(pd.DataFrame({"chrom": ["1"], "pos": [2500]}), panel, 1000)
    assert tie["gene"].item() == "A"
