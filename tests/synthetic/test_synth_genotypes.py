"""Synthetic panel genotypes: layout, planted QC failures, HWE test, PLINK 1 binary I/O.

The PLINK checks run the real plink2 (skipped when it is not on PATH): the
planted failures must be exactly what ``--geno 0.95 --maf 0.05 --hwe 1e-6``
removes, and plink2's statistics must match ``allele_summary``.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.genetics import allele_stats, plink_io
from rgenima_lib.synthetic import genotypes as gt
from rgenima_lib.errors import InputDataError

PLINK2 = shutil.which("plink2")
needs_plink2 = pytest.mark.skipif(PLINK2 is None, reason="plink2 not on PATH (PLINK 2 checks skipped)")


def simulate(panel, n_subjects=60, n_variants=400, seed=0):
    return gt.simulate_panel_genotypes(panel, n_subjects, n_variants, np.random.default_rng(seed))


def make_fam(n_subjects: int) -> pd.DataFrame:
    ids = [f"SYN{i:04d}" for i in range(n_subjects)]
    return pd.DataFrame({"fid": ids, "iid": ids, "father": "0", "mother": "0",
                         "sex": np.arange(n_subjects) % 2 + 1, "phenotype": -9})


@pytest.fixture(scope="module")
def cohort(panel_table):
    """(dosage, variants) for 60 subjects x 400 variants, seed 0."""
    return simulate(panel_table)


def run_plink2(*args: str) -> None:
    # Small memory and one thread: the test machine is shared.
    cmd = [PLINK2, "--threads", "1", "--memory", "640", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def read_plink2_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t").rename(columns=lambda c: c.lstrip("#"))


def as_printed(values: pd.Series) -> np.ndarray:
    """``values`` rounded as plink2 prints them (6 significant digits, no precision flag)."""
    return np.array([float(f"{v:.6g}") for v in values])


# ---------------------------------------------------------------- layout


def test_shapes_columns_and_sorting(cohort, panel_table):
    dosage, variants = cohort
    assert dosage.dtype == np.int8 and dosage.shape == (60, 400)
    assert set(np.unique(dosage)) <= {-1, 0, 1, 2}
    assert list(variants.columns) == list(gt.VARIANT_COLUMNS)
    assert variants["snp"].is_unique and variants["snp"].str.fullmatch(r"rs\d+").all()
    assert not variants["chrom"].str.startswith("chr").any()
    assert (variants["cm"] == 0.0).all()
    key = list(zip(variants["chrom"].astype(int), variants["pos"]))
    assert key == sorted(key) and len(set(key)) == len(key)
    assert not variants.duplicated(["chrom", "pos"]).any()
    genes = panel_table.set_index("gene")
    inside = [genes.at[g, "start_grch37"] < p < genes.at[g, "end_grch37"]
              and str(genes.at[g, "chrom"]) == c
              for g, c, p in zip(variants["gene"], variants["chrom"], variants["pos"])]
    assert all(inside)
    assert (variants["a1"] != variants["a2"]).all()


def test_snps_per_gene_sublinear_with_minimum(panel_table):
    length = (panel_table["end_grch37"] - panel_table["start_grch37"]).to_numpy()
    for total in (210, 400, 1500):
        counts = gt.snps_per_gene(length, total)
        assert counts.sum() == total and counts.min() >= 2
    counts = gt.snps_per_gene(length, 1500)
    longest, shortest = np.argmax(length), np.argmin(length)
    assert counts[longest] > counts[shortest]
    # Sub-linear: the longest gene gets far fewer SNPs than its share of base pairs.
    assert counts[longest] / counts.sum() < length[longest] / length.sum() / 2


def test_apoe_snps_present_valid_and_exact(cohort):
    dosage, variants = cohort
    assert set(gt.APOE_SNPS) == {"rs429358", "rs7412"}
    for rsid, snp in gt.APOE_SNPS.items():
        row = variants.loc[variants["snp"] == rsid].iloc[0]
        assert (row["chrom"], row["pos"], row["a1"], row["a2"], row["gene"]) == (
            snp["chrom"], snp["pos"], snp["a1"], snp["a2"], "APOE")
        assert row["planted"] == "" and row["freq_a1"] == snp["freq"]
    assert gt.APOE_SNPS["rs429358"]["pos"] == 45411941 and gt.APOE_SNPS["rs429358"]["a1"] == "C"
    assert gt.APOE_SNPS["rs7412"]["pos"] == 45412079 and gt.APOE_SNPS["rs7412"]["a1"] == "T"


def test_deterministic_by_seed(panel_table, cohort):
    dosage, variants = cohort
    again_dosage, again_variants = simulate(panel_table, seed=0)
    np.testing.assert_array_equal(dosage, again_dosage)
    pd.testing.assert_frame_equal(variants, again_variants)
    other_dosage, _ = simulate(panel_table, seed=1)
    assert not np.array_equal(dosage, other_dosage)


# ---------------------------------------------------------------- planted failures


@pytest.mark.parametrize("n_subjects,n_variants,seed", [(40, 300, 5), (60, 400, 0), (300, 600, 2)])
def test_valid_margins_and_planted_kinds(panel_table, n_subjects, n_variants, seed):
    dosage, variants = simulate(panel_table, n_subjects, n_variants, seed)
    summary = allele_stats.allele_summary(dosage)
    kind = variants["planted"].to_numpy()
    valid = summary[kind == ""]
    assert (valid["maf"] >= 0.07).all() and (valid["hwe_p"] >= 1e-3).all()
    assert (valid["missing_frac"] <= 0.05).all()
    assert (summary.loc[kind == "", "missing_frac"] == 0).any()
    counts = pd.Series(kind).value_counts()
    assert all(counts.get(k, 0) >= 1 for k in gt.PLANTED_KINDS)
    assert counts.get("low_maf") == round(0.04 * n_variants) and counts.get("hwe") == round(0.02 * n_variants)
    low = summary[kind == "low_maf"]
    assert low["maf"].between(0.002, 0.04).all() and (2 * low["hom_a1"] + low["het"] >= 1).all()
    hwe = summary[kind == "hwe"]
    assert (hwe["hwe_p"] < 1e-8).all() and (hwe["maf"] >= 0.05).all()
    assert (summary.loc[kind == "missing", "missing_frac"] > 0.97).all()
    # Planted SNPs never on APOE's real SNPs, and every gene keeps >= 2 valid SNPs.
    assert (variants.loc[variants["snp"].isin(gt.APOE_SNPS), "planted"] == "").all()
    assert variants[variants["planted"] == ""].groupby("gene").size().min() >= 2


def test_small_cohort_skips_impossible_hwe_plant(panel_table):
    # With 16 subjects the most extreme het-free table has p = 2e-5: PLINK's 1e-6 keeps it.
    assert gt.hwe_min_subjects() == 28
    dosage, variants = simulate(panel_table, 16, 300, 3)
    counts = variants["planted"].value_counts()
    assert "hwe" not in counts and counts["low_maf"] == 12 and counts["missing"] == 1
    summary = allele_stats.allele_summary(dosage)
    assert (summary.loc[variants["planted"].to_numpy() == "", "missing_frac"] == 0).all()


def test_rejects_bad_sizes(panel_table):
    with pytest.raises(InputDataError, match="n_variants"):
        simulate(panel_table, 60, 100)
    with pytest.raises(InputDataError, match="n_subjects"):
        simulate(panel_table, 5, 400)
    with pytest.raises(InputDataError, match="APOE"):
        simulate(panel_table[panel_table["gene"] != "APOE"], 60, 400)


# ---------------------------------------------------------------- HWE exact test


def brute_force_hwe_p(n_het: int, n_hom1: int, n_hom2: int) -> Fraction:
    """Exact p by enumerating every way to pair the observed alleles into genotypes."""
    n = n_het + n_hom1 + n_hom2
    n_a = 2 * n_hom1 + n_het
    het_counts = []
    for slots in itertools.combinations(range(2 * n), n_a):
        a_at = np.zeros(2 * n, bool)
        a_at[list(slots)] = True
        het_counts.append(int((a_at[0::2] != a_at[1::2]).sum()))
    freq = pd.Series(het_counts).value_counts()
    total = freq.sum()
    return Fraction(int(freq[freq <= freq[n_het]].sum()), int(total))


@pytest.mark.parametrize("counts", [(0, 1, 1), (1, 0, 0), (0, 3, 3), (6, 0, 0), (1, 2, 3),
                                    (2, 2, 2), (0, 0, 6), (4, 1, 1), (3, 1, 2), (0, 2, 5)])
def test_hwe_exact_p_matches_brute_force(counts):
    assert allele_stats.hwe_exact_p(*counts) == pytest.approx(float(brute_force_hwe_p(*counts)), rel=1e-12)


def test_hwe_exact_p_hand_values():
    # n = 2, one allele of each kind twice: P(0 het) = 1/3, P(2 het) = 2/3.
    assert allele_stats.hwe_exact_p(0, 1, 1) == pytest.approx(1 / 3)
    assert allele_stats.hwe_exact_p(2, 0, 0) == pytest.approx(1.0)
    assert allele_stats.hwe_exact_p(0, 0, 0) == 1.0
    # Closed form for a het-free 50/50 split of n subjects: P = 2^0 n!/(k! k!) * (2k)!^2/(2n)!
    # is the observed (least likely) table, the only one in the tail.
    n, k = 20, 10
    p0 = math.comb(n, k) * math.factorial(2 * k) ** 2 / math.factorial(2 * n)
    assert allele_stats.hwe_exact_p(0, k, k) == pytest.approx(p0, rel=1e-9)
    assert allele_stats.hwe_exact_p(0, 30, 30) < 1e-15
    with pytest.raises(ValueError):
        allele_stats.hwe_exact_p(-1, 2, 2)


# ---------------------------------------------------------------- PLINK 1 binary I/O


def test_round_trip_pyplink_and_reader(tmp_path, cohort):
    from pyplink import PyPlink

    dosage, variants = cohort
    # 59 subjects: the last byte of each SNP block is padded.
    dosage = dosage[:59]
    fam = make_fam(59)
    prefix = tmp_path / "geno"
    plink_io.write_plink_bed(prefix, dosage, variants, fam)
    assert (tmp_path / "geno.bed").read_bytes()[:3] == bytes([0x6C, 0x1B, 0x01])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["geno.bed", "geno.bim", "geno.fam"]
    with PyPlink(str(prefix)) as bed:
        bim = bed.get_bim()
        assert list(bim.index) == list(variants["snp"])
        assert list(bim["a1"]) == list(variants["a1"]) and list(bim["a2"]) == list(variants["a2"])
        assert list(bed.get_fam()["iid"]) == list(fam["iid"])
        back = np.column_stack([g for _, g in bed.iter_geno()])
    # pyplink counts the .bim a1 (column 5) allele and codes missing as -1, like us.
    np.testing.assert_array_equal(back, dosage)
    ours, bim_back, fam_back = plink_io.read_plink_bed(prefix)
    np.testing.assert_array_equal(ours, dosage)
    assert list(bim_back["pos"]) == list(variants["pos"]) and list(fam_back["iid"]) == list(fam["iid"])


def test_write_is_atomic(tmp_path, cohort, monkeypatch):
    dosage, variants = cohort
    calls = []
    real_replace = os.replace

    def fail_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second_rename)
    with pytest.raises(OSError, match="disk full"):
        plink_io.write_plink_bed(tmp_path / "geno", dosage, variants, make_fam(60))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputDataError):
        plink_io.write_plink_bed(tmp_path / "geno", dosage, variants, make_fam(59))
    assert list(tmp_path.iterdir()) == []


@needs_plink2
def test_plink2_statistics_agree(tmp_path, cohort):
    dosage, variants = cohort
    prefix = tmp_path / "geno"
    plink_io.write_plink_bed(prefix, dosage, variants, make_fam(60))
    run_plink2("--bfile", str(prefix), "--freq", "--missing", "--hardy", "--out", str(tmp_path / "stats"))
    ours = allele_stats.allele_summary(dosage).set_index(variants["snp"])

    freq = read_plink2_table(tmp_path / "stats.afreq").set_index("ID").loc[ours.index]
    # PLINK 2 reads .bim column 5 (our a1) as ALT.
    assert list(freq["ALT"]) == list(variants["a1"])
    assert (freq["OBS_CT"] == 2 * ours["n_obs"]).all()
    called = ours["n_obs"] > 0
    np.testing.assert_allclose(freq.loc[called, "ALT_FREQS"], as_printed(ours.loc[called, "freq_a1"]),
                               rtol=1e-12)

    vmiss = read_plink2_table(tmp_path / "stats.vmiss").set_index("ID").loc[ours.index]
    assert (vmiss["MISSING_CT"] == ours["n_missing"]).all()
    np.testing.assert_allclose(vmiss["F_MISS"], as_printed(ours["missing_frac"]), rtol=1e-12)

    hardy = read_plink2_table(tmp_path / "stats.hardy").set_index("ID").loc[ours.index]
    # .hardy's A1 is PLINK 2's REF, i.e. our a2 (.bim column 6); match counts by allele.
    assert list(hardy["A1"]) == list(variants["a2"]) and list(hardy["AX"]) == list(variants["a1"])
    assert (hardy["HOM_A1_CT"] == ours["hom_a2"]).all()
    assert (hardy["HET_A1_CT"] == ours["het"]).all()
    assert (hardy["TWO_AX_CT"] == ours["hom_a1"]).all()
    # Equal once ours is rounded like plink2's output: agreement to its 6 printed digits
    # (~1e-6 relative), over p from 1 down to ~1e-18.
    np.testing.assert_allclose(hardy.loc[called, "P"], as_printed(ours.loc[called, "hwe_p"]), rtol=1e-12)
    assert hardy.loc[called, "P"].min() < 1e-12


@needs_plink2
@pytest.mark.parametrize("seed", [0, 11, 12])
def test_plink2_qc_removes_exactly_planted(tmp_path, panel_table, seed):
    dosage, variants = simulate(panel_table, 60, 400, seed)
    prefix = tmp_path / "geno"
    plink_io.write_plink_bed(prefix, dosage, variants, make_fam(60))
    run_plink2("--bfile", str(prefix), "--geno", "0.95", "--maf", "0.05", "--hwe", "1e-6",
               "--write-snplist", "--out", str(tmp_path / "qc"))
    kept = set((tmp_path / "qc.snplist").read_text().split())
    removed = set(variants["snp"]) - kept
    assert removed == set(variants.loc[variants["planted"] != "", "snp"])
