"""Genome-build check of the genotypes: the reference table, the decision rule and the gene-coverage check.

The decision is tested against shifts made here, independently of the code under test: a GRCh37 ``.bim``
built from the table's GRCh37 column, the same file with every reference SNP moved to the table's GRCh38
(or NCBI36) column, a file without any reference SNP, positional IDs (``19:45411941``,
``chr19:45411941:C:T``, ``19_45411941``), and a constant shift that matches no build.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from rgenima_lib.synthetic import genotypes as gt
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.panel import (BUILD_COLUMNS, GRCH37_MIN_FRACTION, check_build, check_gene_coverage,
                                        check_panel_chromosomes, decide_build, map_variants_to_genes,
                                        parse_variant_ids, read_bim, read_reference_snps,
                                        reference_positions)
from rgenima_lib.io import read_tsv



@pytest.fixture(scope="module")
def reference():
    return read_reference_snps(REPO / "config" / "build_reference_snps.tsv")


def bim_frame(chrom, snp, pos) -> pd.DataFrame:
    """A ``read_bim``-shaped table."""
    chrom = [str(c) for c in chrom]
    return pd.DataFrame({"chrom": chrom, "chrom_raw": chrom, "snp": list(snp), "cm": "0",
                         "pos": np.asarray(pos, dtype=np.int64), "a1": "A", "a2": "G"})


def reference_bim(reference, build="GRCh37", ids=None, filler=20) -> pd.DataFrame:
    """Every reference SNP at its ``build`` position, plus synthetic filler SNPs (no reference ID)."""
    column = BUILD_COLUMNS[build]
    ref = reference[reference[column].notna()]
    snp = list(ref["rsid"]) if ids is None else [ids(r) for r in ref.itertuples()]
    filler_pos = 1_000_000 + 7919 * np.arange(filler)
    return bim_frame([*ref["chrom"], *["3"] * filler], [*snp, *[f"rs9{i:011d}" for i in range(filler)]],
                     [*ref[column].astype(np.int64), *filler_pos])


# ---------------------------------------------------------------- the table


def test_reference_table_is_complete_and_consistent(reference, panel):
    assert len(reference) >= 30 and reference["rsid"].is_unique
    # The APOE SNPs, at the positions the rest of the pipeline has always used.
    expected = {"GRCh37": (45411941, 45412079), "GRCh38": (44908684, 44908822), "NCBI36": (50103781, 50103919)}
    for build, (e4, e2) in expected.items():
        got = reference_positions(reference, "APOE", build)
        assert (got["rs429358"], got["rs7412"]) == (e4, e2), build
    genes = panel.set_index("gene")
    raw = read_tsv(REPO / "config" / "build_reference_snps.tsv", dtype=str)
    for r, relation in zip(reference.itertuples(), raw["relation"]):
        g = genes.loc[r.gene]
        assert r.chrom == g["chrom"], r.rsid
        inside = g["start_grch37"] <= r.pos_grch37 <= g["end_grch37"]
        assert inside == (relation == "inside"), (r.rsid, relation)
        # 'near' SNPs lie within 100 kb of their gene body.
        assert min(abs(r.pos_grch37 - g["start_grch37"]), abs(r.pos_grch37 - g["end_grch37"])) < 100_000 or inside
        # Every build's position differs: a SNP at one build's position never also votes for another.
        positions = [r.pos_grch37, r.pos_grch38, r.pos_ncbi36]
        known = [int(p) for p in positions if pd.notna(p)]
        assert len(set(known)) == len(known), r.rsid
    # No position of one SNP in one build is another SNP's position in another build (same chromosome).
    seen: dict[tuple[str, int], str] = {}
    for r in reference.itertuples():
        for column in BUILD_COLUMNS.values():
            p = getattr(r, column)
            if pd.notna(p):
                assert seen.setdefault((r.chrom, int(p)), r.rsid) == r.rsid, (r.rsid, column)


def test_simulator_carries_reference_snps_at_grch37(reference, panel_table):
    """The synthetic cohort passes the build check on its own: APOE plus BUILD_CHECK_SNPS at GRCh37."""
    ref = reference.set_index("rsid")
    for rsid, (chrom, pos, gene) in gt.BUILD_CHECK_SNPS.items():
        assert (ref.loc[rsid, "chrom"], ref.loc[rsid, "pos_grch37"], ref.loc[rsid, "gene"]) == (chrom, pos, gene)
    for rsid, snp in gt.APOE_SNPS.items():
        assert ref.loc[rsid, "pos_grch37"] == snp["pos"]
    _, variants = gt.simulate_panel_genotypes(panel_table, 40, 300, np.random.default_rng(11))
    bim = bim_frame(variants["chrom"], variants["snp"], variants["pos"])
    verdict = decide_build(bim, reference)
    assert verdict.build == "GRCh37" and verdict.n_matched >= 6 and verdict.counts["GRCh37"] == verdict.n_matched
    # Placing them moved no row: positions stay sorted inside each chromosome.
    assert all(g["pos"].is_monotonic_increasing for _, g in variants.groupby("chrom"))


# ---------------------------------------------------------------- IDs


def test_parse_variant_ids():
    got = parse_variant_ids(["rs429358", "RS7412:C:T", "19:45411941", "chr19:45411941:C:T", "19_45411941_T_C",
                             "chrX:100", "kgp123", "exm-rs1", "rs12ab"])
    assert got["rsid"].tolist() == ["rs429358", "rs7412", "", "", "", "", "", "", ""]
    assert got["chrom"].tolist() == ["", "", "19", "19", "19", "X", "", "", ""]
    assert got["pos"].tolist() == [-1, -1, 45411941, 45411941, 45411941, 100, -1, -1, -1]


# ---------------------------------------------------------------- decision


def test_grch37_file_passes_with_every_reference_snp(reference):
    verdict = check_build(reference_bim(reference), "x.bim", reference)
    assert verdict.build == "GRCh37" and verdict.n_matched == len(reference)
    assert verdict.counts == {"GRCh37": len(reference), "GRCh38": 0, "NCBI36": 0} and verdict.notes == []


@pytest.mark.parametrize("build,label", [("GRCh38", "GRCh38 (hg38)"), ("NCBI36", "NCBI36 (hg18)")])
def test_shifted_file_is_named_with_examples(reference, build, label):
    bim = reference_bim(reference, build)
    with pytest.raises(InputDataError) as err:
        check_build(bim, "x.bim", reference)
    text = str(err.value)
    n = int(reference[BUILD_COLUMNS[build]].notna().sum())
    assert f"look like {label}, not GRCh37" in text and f"{n} of the {n} reference SNPs" in text
    # Three examples with found and expected positions.
    assert text.count("GRCh37: chr") == 3 and "--update-map" in text and "liftOver" in text
    first = reference[reference[BUILD_COLUMNS[build]].notna()].iloc[0]
    assert f"{first['rsid']} at chr{first['chrom']}:{first[BUILD_COLUMNS[build]]}" in text


def test_no_reference_snp_stops_unless_grch37_is_assumed(reference):
    bim = bim_frame(["3"] * 5, [f"rs9{i:011d}" for i in range(5)], 1_000_000 + np.arange(5))
    with pytest.raises(InputDataError, match="cannot tell the genome build") as err:
        check_build(bim, "x.bim", reference)
    assert "genetics.assume_build: GRCh37" in str(err.value)
    verdict = check_build(bim, "x.bim", reference, assume_build="GRCh37")
    assert verdict.build is None and verdict.n_matched == 0 and "assumed" in verdict.notes[0]


@pytest.mark.parametrize("style", [lambda c, p: f"{c}:{p}", lambda c, p: f"chr{c}:{p}:C:T", lambda c, p: f"{c}_{p}"])
def test_positional_ids_are_matched_by_chrom_and_position(reference, style):
    grch37 = reference_bim(reference, "GRCh37", ids=lambda r: style(r.chrom, r.pos_grch37))
    verdict = check_build(grch37, "x.bim", reference)
    assert verdict.build == "GRCh37" and verdict.n_matched == len(reference)
    assert set(verdict.matched["matched_by"]) == {"chr:pos ID"}
    grch38 = reference_bim(reference, "GRCh38", ids=lambda r: style(r.chrom, r.pos_grch38))
    with pytest.raises(InputDataError, match="look like GRCh38"):
        check_build(grch38, "x.bim", reference)


def test_nearly_all_rule(reference):
    n = len(reference)
    allowed = n - int(np.ceil(GRCH37_MIN_FRACTION * n - 1e-9))  # 3 of 31 may be off
    for off in (allowed, allowed + 1):
        bim = reference_bim(reference)
        bim.loc[:off - 1, "pos"] += 17  # off their position in every build
        verdict = decide_build(bim, reference)
        assert verdict.build == ("GRCh37" if off == allowed else None), off
    ok = check_build(reference_bim(reference).assign(pos=lambda b: b["pos"].where(b.index > 0, 1)), "x.bim",
                     reference)
    assert ok.build == "GRCh37" and ok.notes and "1 of 31 reference SNPs are not at their GRCh37" in ok.notes[0]
    # Two SNPs only (a file with APOE and nothing else): both must agree.
    apoe = bim_frame(["19", "19"], ["rs429358", "rs7412"], [45411941, 45412079 + 1])
    with pytest.raises(InputDataError, match="fit no single genome build"):
        check_build(apoe, "x.bim", reference)


def test_constant_shift_fits_no_build(reference):
    bim = reference_bim(reference)
    bim["pos"] += 1000
    with pytest.raises(InputDataError, match=r"fit no single genome build \(0 at GRCh37, 0 at GRCh38, 0 at NCBI36"):
        check_build(bim, "x.bim", reference)


def test_rsid_match_wins_over_a_positional_id(reference):
    # rs429358 listed twice: by rsID at GRCh37 and by a chr:pos ID of its GRCh38 position -> counted once.
    bim = bim_frame(["19", "19"], ["rs429358", "19:44908684"], [45411941, 44908684])
    verdict = decide_build(bim, reference)
    assert verdict.n_matched == 1 and verdict.matched["matched_by"].item() == "rsID" and verdict.build == "GRCh37"


# ---------------------------------------------------------------- chromosomes and gene coverage


def test_grch37_on_other_chromosomes_is_not_blamed_on_the_build(panel):
    bim = bim_frame(["13"] * 3 + ["X"] * 2, [f"rs9{i:011d}" for i in range(5)], 30_000_000 + np.arange(5))
    with pytest.raises(InputDataError) as err:
        check_panel_chromosomes(bim, panel, "x.bim")
    text = str(err.value)
    assert "chromosome(s) 13, X" in text and "1-12, 14-22" in text and "not a genome-build problem" in text
    assert "lift" not in text


def test_most_genes_empty_says_what_another_build_looks_like(panel):
    # Variants on the panel's chromosomes, 5 Mb off every gene body start: the look of another build.
    bim = bim_frame(panel["chrom"], [f"rs9{i:011d}" for i in range(len(panel))], panel["start_grch37"] + 5_000_000)
    mapping = map_variants_to_genes(bim, panel, 0)
    covered = mapping.loc[mapping["gene"] != "", "gene"].nunique()
    assert covered < len(panel) / 2
    with pytest.raises(InputDataError) as err:
        check_gene_coverage(mapping, bim, panel, 0, "x.bim", min_fraction=0.5)
    text = str(err.value)
    assert f"{len(panel) - covered} of the {len(panel)} panel genes" in text
    assert "what genotypes on another genome build look like" in text and "genetics.min_gene_fraction" in text
    # A targeted panel may lower the threshold (when at least one gene holds a variant).
    if covered:
        check_gene_coverage(mapping, bim, panel, 0, "x.bim", min_fraction=0.0)


def test_half_the_chromosomes_missing_is_named(panel):
    keep = panel[panel["chrom"].astype(int) <= 6]
    bim = bim_frame(keep["chrom"], [f"rs9{i:011d}" for i in range(len(keep))], keep["start_grch37"] + 1)
    mapping = map_variants_to_genes(bim, panel, 0)
    with pytest.raises(InputDataError) as err:
        check_gene_coverage(mapping, bim, panel, 0, "x.bim", min_fraction=0.5)
    text = str(err.value)
    assert "lie on chromosomes the file lacks (7-12, 14-22)" in text and "another genome build" not in text


def test_read_bim_round_trip_of_reference_file(tmp_path, reference):
    bim = reference_bim(reference)
    path = tmp_path / "x.bim"
    bim[["chrom", "snp", "cm", "pos", "a1", "a2"]].to_csv(path, sep="\t", header=False, index=False)
    assert check_build(read_bim(path), path, reference).build == "GRCh37"
