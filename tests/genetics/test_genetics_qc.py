"""Genetics stage with the real plink2: panel extraction, QC report, genotype matrix, bad input.

The QC of the demo cohort's genotypes is checked against an independent Python
computation (``rgenima_lib.genetics.plink_io.read_plink_bed`` + ``allele_summary``:
missingness, MAF, HWE exact p) on the same ``.bed``; the planted failures must
all go and no valid SNP may be lost.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from rgenima_lib.genetics import allele_stats, plink_io
from rgenima_lib.synthetic import genotypes as gt
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.genotype_matrix import gene_table, read_qc_genotypes
from rgenima_lib.genetics.panel import BUILD_COLUMNS, read_reference_snps
from rgenima_lib.genetics.plink_qc import REMOVED_BY, extract_panel, qc_report, run_plink2, run_qc

pytestmark = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")
PLINK_KW = dict(threads=1, memory_mb=640)
QC = dict(geno=0.95, maf=0.05, hwe=1e-6)


def demo_settings() -> tuple[int, int, int]:
    """(seed, n_subjects, n_variants) of the demo cohort, read from the configs so they stay in sync."""
    main = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    return demo.get("seed", main["seed"]), demo["synthetic"]["n_subjects"], demo["synthetic"]["n_variants"]


def make_fam(ids) -> pd.DataFrame:
    return pd.DataFrame({"fid": ids, "iid": ids, "father": "0", "mother": "0", "sex": 1, "phenotype": -9})


@pytest.fixture(scope="module")
def demo(panel, panel_table, tmp_path_factory):
    """The demo cohort's genotypes (as rule synth_cohort draws them), extracted and QC'd once."""
    seed, n_subjects, n_variants = demo_settings()
    dosage, variants = gt.simulate_panel_genotypes(panel_table, n_subjects, n_variants, np.random.default_rng([seed, 1]))
    ids = [f"SYN{i:04d}" for i in range(n_subjects)]
    tmp = tmp_path_factory.mktemp("demo_geno")
    plink_io.write_plink_bed(tmp / "raw", dosage, variants, make_fam(ids))
    extracted, summary = extract_panel(tmp / "raw", panel, 0, ids, tmp / "panel", **PLINK_KW)
    table = run_qc(tmp / "panel", extracted, tmp / "qc", **QC, **PLINK_KW)
    return dict(dosage=dosage, variants=variants, ids=ids, dir=tmp, summary=summary, table=table,
                report=qc_report(table, panel))


def independent_qc(bed_prefix, geno, maf, hwe) -> pd.DataFrame:
    """Python-only QC of a .bed: statistics, then the filters in the paper's order."""
    dosage, bim, _ = plink_io.read_plink_bed(bed_prefix)
    stats = allele_stats.allele_summary(dosage)
    stats.index = bim["snp"]
    removed = pd.Series("", index=stats.index)
    fail = {"geno": stats["missing_frac"] > geno, "maf": stats["maf"] < maf, "hwe": stats["hwe_p"] < hwe}
    for name in ("geno", "maf", "hwe"):
        removed[(removed == "") & fail[name]] = name
    stats["removed_by"] = removed
    return stats


def test_qc_report_matches_independent_computation(demo, panel):
    table = demo["table"].set_index("snp")
    ours = independent_qc(demo["dir"] / "panel", **QC)
    assert set(ours.index) == set(table.index)
    t = table.loc[ours.index]
    # plink2 prints 6 significant digits.
    np.testing.assert_allclose(t["f_miss"], ours["missing_frac"], rtol=1e-5, atol=1e-12)
    called = ours["n_obs"] > 0
    np.testing.assert_allclose(t.loc[called, "maf"], ours.loc[called, "maf"], rtol=1e-5)
    np.testing.assert_allclose(t.loc[called, "hwe_p"], ours.loc[called, "hwe_p"], rtol=1e-5)
    assert (t["removed_by"] == ours["removed_by"]).all()

    # The per-gene report, recounted from the independent decisions.
    report = demo["report"].set_index("gene")
    ours["gene"] = t["gene"]
    for step in ("geno", "maf", "hwe"):
        expected = ours[ours["removed_by"] == step].groupby("gene").size().reindex(panel["gene"], fill_value=0)
        assert (report.loc[panel["gene"], f"removed_{step}"] == expected).all(), step
    left = ours[ours["removed_by"] == ""].groupby("gene").size().reindex(panel["gene"], fill_value=0)
    assert (report.loc[panel["gene"], "left"] == left).all()
    total = report.loc["TOTAL"]
    assert total["in"] == len(demo["variants"])
    assert total["in"] == sum(total[f"removed_{s}"] for s in REMOVED_BY) + total["left"]


def test_planted_failures_removed_and_no_valid_snp_lost(demo):
    table = demo["table"].set_index("snp")
    planted = demo["variants"].set_index("snp")["planted"].reindex(table.index)
    removed = table["removed_by"] != ""
    assert set(table.index[removed]) == set(planted.index[planted != ""])
    # Each planted kind is removed by the filter it was planted against.
    expected_step = {"missing": "geno", "low_maf": "maf", "hwe": "hwe"}
    for kind, step in expected_step.items():
        assert (table.loc[planted == kind, "removed_by"] == step).all(), kind
    assert (planted == "hwe").sum() > 0 and (planted == "low_maf").sum() > 0 and (planted == "missing").sum() > 0


def test_genotype_matrix_minor_allele_text_order(demo, panel):
    kept = demo["table"][demo["table"]["removed_by"] == ""]
    dosage, snps, subjects = read_qc_genotypes(demo["dir"] / "qc", kept, panel, demo["ids"][::-1])
    assert subjects == demo["ids"][::-1]
    assert dosage.dtype == np.int8 and dosage.shape == (len(subjects), len(kept))
    assert (snps["maf"] <= 0.5).all()
    # Columns: gene blocks in panel order, positions increasing inside each block.
    rank = snps["gene"].map({g: i for i, g in enumerate(panel["gene"])})
    assert rank.is_monotonic_increasing
    assert all(g["pos"].is_monotonic_increasing for _, g in snps.groupby("gene"))
    assert (np.diff(snps["block"]) >= 0).all() and snps["block"].iloc[0] == 0
    # The same calls as the simulated a1 counts, flipped where a1 is not the sample's minor allele.
    raw = demo["dosage"][::-1][:, [list(demo["variants"]["snp"]).index(s) for s in snps["snp"]]]
    a1_sim = demo["variants"].set_index("snp").loc[snps["snp"], "a1"].to_numpy()
    flipped = snps["a1"].to_numpy() != a1_sim
    expected = np.where(raw < 0, -1, np.where(flipped, 2 - raw, raw))
    np.testing.assert_array_equal(dosage, expected)
    assert snps.loc[snps["snp"] == "rs429358", "a1"].item() == "C"  # epsilon4 is the minor allele
    genes = gene_table(panel, snps)
    assert (genes["n_snps"] > 0).all() and genes["block"].tolist() == list(range(len(panel)))


# ---------------------------------------------------------------- bad input


@pytest.fixture()
def small(panel_table):
    """A 40-subject cohort on the panel's first 8 genes, as (dosage, variants, ids)."""
    sub = panel_table.iloc[:8]
    dosage, variants = gt.simulate_panel_genotypes(sub, 40, 40, np.random.default_rng(3))
    return dosage, variants, [f"S{i:03d}" for i in range(40)]


def extract(tmp, panel, dosage, variants, ids, subjects=None, **kw):
    """Extract a cohort simulated on the panel's first 8 genes: the other 97 genes are empty by design."""
    plink_io.write_plink_bed(tmp / "raw", dosage, variants, make_fam(ids))
    return extract_panel(tmp / "raw", panel, 0, ids if subjects is None else subjects, tmp / "panel",
                         min_gene_fraction=0.0, **PLINK_KW, **kw)


def test_chr_prefix_is_normalised(tmp_path, panel, small):
    dosage, variants, ids = small
    plain, _ = extract(tmp_path, panel, dosage, variants, ids)
    prefixed = variants.assign(chrom="chr" + variants["chrom"])
    got, summary = extract(tmp_path, panel, dosage, prefixed, ids)
    assert list(got["snp"]) == list(plain["snp"]) and list(got["gene"]) == list(plain["gene"])
    assert summary["chrom_names_normalised"] == len(variants)
    assert any("normalised" in n for n in summary["notes"])
    # plink2 writes the normalised names too.
    written = set(pd.read_csv(tmp_path / "panel.bim", sep="\t", header=None)[0].astype(str))
    assert written == set(plain["chrom"])


def to_build(variants, build):
    """The simulated variants with every reference SNP moved to its position in ``build``."""
    ref = read_reference_snps().set_index("rsid")
    out = variants.copy()
    hit = out["snp"].isin(ref.index)
    out.loc[hit, "pos"] = ref.loc[out.loc[hit, "snp"], BUILD_COLUMNS[build]].astype(int).to_numpy()
    return out


def test_build_mismatch_names_grch38(tmp_path, panel, small):
    dosage, variants, ids = small
    with pytest.raises(InputDataError, match=r"look like GRCh38 \(hg38\), not GRCh37") as err:
        extract(tmp_path, panel, dosage, to_build(variants, "GRCh38"), ids)
    assert "raw.bim" in str(err.value) and "liftOver" in str(err.value) and "--update-map" in str(err.value)
    assert not (tmp_path / "panel.bed").exists()
    # One of the few reference SNPs off its position: no longer "nearly all" at GRCh37.
    shifted = variants.copy()
    shifted.loc[shifted["snp"] == "rs7412", "pos"] += 17
    with pytest.raises(InputDataError, match="fit no single genome build") as err:
        extract(tmp_path, panel, dosage, shifted, ids)
    assert "rs7412 at chr19:45412096 (GRCh37: chr19:45412079)" in str(err.value)


def test_extraction_summary_records_the_build_and_the_sex_check(tmp_path, panel, small):
    dosage, variants, ids = small
    sexes = {s: "Male" for s in ids}  # make_fam codes everyone 1 = male
    _, summary = extract(tmp_path, panel, dosage, variants, ids, sexes=sexes)
    assert summary["genome_build"]["build"] == "GRCh37"
    assert summary["genome_build"]["reference_snps_found"] >= 2
    assert summary["genes_with_variants"] == 8 and summary["notes"] == []
    sexes[ids[0]] = "Female"  # 1 of 40 = 2.5 % > 2 %: stop
    with pytest.raises(InputDataError, match="1 of 40 subjects") as err:
        extract(tmp_path, panel, dosage, variants, ids, sexes=sexes)
    assert ids[0] in str(err.value) and "max_sex_mismatch_fraction" in str(err.value)
    _, summary = extract(tmp_path, panel, dosage, variants, ids, sexes=sexes, max_sex_mismatch_fraction=0.05)
    assert any("1 of 40 subjects" in n and "going on" in n for n in summary["notes"])


def test_non_acgt_alleles_removed_and_reported(tmp_path, panel, small):
    dosage, variants, ids = small
    bad = variants.copy()
    victims = bad.index[bad["gene"] == "BIN1"][:2]
    bad.loc[victims[0], ["a1", "a2"]] = ["I", "D"]
    bad.loc[victims[1], ["a1", "a2"]] = ["AT", "A"]
    table, summary = extract(tmp_path, panel, dosage, bad, ids)
    assert (table.set_index("snp").loc[bad.loc[victims, "snp"], "removed_by"] == "alleles").all()
    assert summary["removed_alleles"] == 2
    qc = run_qc(tmp_path / "panel", table, tmp_path / "qc", **QC, **PLINK_KW)
    report = qc_report(qc, panel).set_index("gene")
    assert report.loc["BIN1", "removed_alleles"] == 2 and report.loc["TOTAL", "removed_alleles"] == 2
    numeric = variants.assign(a1="1", a2="2")
    with pytest.raises(InputDataError, match="1/2/3/4"):
        extract(tmp_path, panel, dosage, numeric, ids)


def test_all_missing_snp_removed_even_without_geno_filter(tmp_path, panel, small):
    dosage, variants, ids = small
    dosage = dosage.copy()
    j = int(np.flatnonzero(variants["planted"].to_numpy() == "")[5])
    dosage[:, j] = -1
    table, _ = extract(tmp_path, panel, dosage, variants, ids)
    qc = run_qc(tmp_path / "panel", table, tmp_path / "qc", geno=1.0, maf=0.05, hwe=1e-6, **PLINK_KW)
    assert qc.set_index("snp").loc[variants["snp"][j], "removed_by"] == "geno"
    assert variants["snp"][j] not in set(pd.read_csv(tmp_path / "qc.bim", sep="\t", header=None)[1])


def test_fam_matching_no_subject_is_refused(tmp_path, panel, small):
    dosage, variants, ids = small
    with pytest.raises(InputDataError, match="none of the 40 individual IDs") as err:
        extract(tmp_path, panel, dosage, variants, ids, subjects=["011_S_0002", "011_S_0003"])
    assert "raw.fam" in str(err.value) and "--update-ids" in str(err.value)
    assert not (tmp_path / "panel.bed").exists()
    # FID/IID swapped: say so.
    plink_io.write_plink_bed(tmp_path / "swap", dosage, variants,
                       make_fam(ids).assign(iid=[f"X{i}" for i in range(40)]))
    with pytest.raises(InputDataError, match="swapped"):
        extract_panel(tmp_path / "swap", panel, 0, ids, tmp_path / "panel", min_gene_fraction=0.0, **PLINK_KW)


def test_gene_without_snps_after_qc_is_reported_and_dropped(tmp_path, panel, small):
    dosage, variants, ids = small
    dosage = dosage.copy()
    cols = np.flatnonzero(variants["gene"].to_numpy() == "CLU")
    dosage[:, cols] = 0  # monomorphic: MAF 0, removed by --maf
    table, _ = extract(tmp_path, panel, dosage, variants, ids)
    qc = run_qc(tmp_path / "panel", table, tmp_path / "qc", **QC, **PLINK_KW)
    report = qc_report(qc, panel).set_index("gene")
    assert report.loc["CLU", "left"] == 0 and report.loc["CLU", "removed_maf"] == len(cols)
    assert report.loc["CLU", "status"].startswith("empty")
    # Genes outside the 8 simulated ones have no variant at all: also reported, also empty.
    assert report.loc["PPARG", "in"] == 0 and report.loc["PPARG", "status"].startswith("empty")
    _, snps, _ = read_qc_genotypes(tmp_path / "qc", qc[qc["removed_by"] == ""], panel, ids)
    genes = gene_table(panel, snps).set_index("gene")
    assert genes.loc["CLU", "block"] == -1 and "CLU" not in set(snps["gene"])
    assert sorted(genes.loc[genes["block"] >= 0, "block"]) == list(range(snps["gene"].nunique()))


def test_cli_build_mismatch_exits_2_and_leaves_nothing(tmp_path, small):
    dosage, variants, ids = small
    plink_io.write_plink_bed(tmp_path / "raw", dosage, to_build(variants, "NCBI36"), make_fam(ids))
    pd.DataFrame({"subject": ids, "sex": "Male"}).to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "rgenima_lib.cli", "panel-extract", "--bfile", str(tmp_path / "raw"),
         "--gene-panel", str(REPO / "config" / "gene_panel.tsv"), "--manifest", str(tmp_path / "manifest.tsv"),
         "--min-gene-fraction", "0", "--out-prefix", str(out / "panel"), "--variants", str(out / "v.tsv"),
         "--summary", str(out / "s.json")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "look like NCBI36 (hg18), not GRCh37" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_plink2_failure_names_the_command_and_the_log(tmp_path, caplog):
    with pytest.raises(InputDataError) as err:
        run_plink2(["--bfile", str(tmp_path / "absent"), "--make-bed", "--out", str(tmp_path / "x")],
                   memory_mb=640, input_path=tmp_path / "absent", log_hint="results/logs/genetics/plink_qc.log")
    text = str(err.value)
    assert "plink2 failed (exit" in text and "Command: " in text and "--bfile" in text and "--out" in text
    assert "plink2 said: Error" in text and "results/logs/genetics/plink_qc.log" in text
    assert "-v" not in text.split("Fix:")[1]
    # The whole plink2 output went to the log (stderr) just before.
    assert any("plink2 output" in r.getMessage() for r in caplog.records)
