"""Subject-level splits, the three data configurations, both protocols and the leakage audit.

The last test runs the genetics and data rules on the session's tiny synthetic
cohort: QC against the planted truth, the audit of both protocols, and a
sample's text rebuilt from its permutation seed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from rgenima_lib.data.audit import audit_split, audit_table
from rgenima_lib.data.datasets import DATA_CONFIGS, build_dataset
from rgenima_lib.data.splits import make_subject_folds
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.augment import CANONICAL
from rgenima_lib.vocabulary import STAGES

K = 3  # permutations per training subject in these tests


@pytest.fixture(scope="module")
def manifest():
    rng = np.random.default_rng(5)
    n = 90
    stage = rng.choice(STAGES, size=n, p=[0.32, 0.05, 0.46, 0.17])
    return pd.DataFrame({"subject": [f"{i:03d}_S_{1000 + i}" for i in range(n)], "stage": stage,
                         "has_genotype": rng.random(n) < 0.9, "has_image": rng.random(n) < 0.75})


@pytest.fixture(scope="module")
def folds(manifest):
    table, _ = make_subject_folds(manifest, 5, seed=11)
    return table


def test_folds_partition_subjects_stratified_and_deterministic(manifest, folds):
    assert list(folds["subject"]) == list(manifest["subject"])
    assert folds["fold"].between(0, 4).all()
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    for _, stratum in folds.groupby(["stage", "has_genotype", "has_image"]):
        counts = stratum["fold"].value_counts().reindex(range(5), fill_value=0)
        assert counts.max() - counts.min() <= 1
    again, _ = make_subject_folds(manifest, 5, seed=11)
    pd.testing.assert_frame_equal(folds, again)
    other, _ = make_subject_folds(manifest, 5, seed=12)
    assert not (other["fold"] == folds["fold"]).all()
    with pytest.raises(InputDataError, match="cannot fill"):
        make_subject_folds(manifest.iloc[:3], 5, seed=1)


@pytest.mark.parametrize("config", DATA_CONFIGS)
def test_subject_protocol_keeps_subjects_apart(folds, config):
    for k in range(5):
        s = build_dataset(folds, config, k, protocol="subject", n_permutations=K, seed=3)
        audit = audit_split(s)
        assert audit["subjects_both_sides"] == 0 and audit["test_augmented_samples"] == 0
        train, test = s[s["side"] == "train"], s[s["side"] == "test"]
        assert set(test["subject"]) <= set(folds.loc[folds["fold"] == k, "subject"])
        assert set(train["subject"]).isdisjoint(folds.loc[folds["fold"] == k, "subject"])
        assert test["subject"].is_unique and (test["perm_seed"] == CANONICAL).all()
        assert s["sample"].is_unique
        assert (s["label"] == s["stage"].map({st: i for i, st in enumerate(STAGES)})).all()
        f = folds.set_index("subject")
        if config == "gene_only":
            assert f.loc[s["subject"], "has_genotype"].all() and not s["with_image"].any()
            assert len(train) == (1 + K) * train["subject"].nunique()
        if config in ("image_gene", "mixture"):
            paired = s[s["view"] == "paired"]
            assert (f.loc[paired["subject"], "has_genotype"] & f.loc[paired["subject"], "has_image"]).all()
            assert paired["with_image"].all() and (test["view"] == "paired").all()
        if config == "mixture":
            views = train["view"].value_counts()
            assert views["paired"] == views["gene_only"]  # 50 % paired, 50 % gene-only
            ig = build_dataset(folds, "image_gene", k, protocol="subject", n_permutations=K, seed=3)
            assert list(test["sample"]) == list(ig.loc[ig["side"] == "test", "sample"])


def test_datasets_are_deterministic_and_fold_independent(folds):
    a = build_dataset(folds, "mixture", 1, protocol="subject", n_permutations=K, seed=3)
    b = build_dataset(folds, "mixture", 1, protocol="subject", n_permutations=K, seed=3)
    pd.testing.assert_frame_equal(a, b)
    # A subject's k-th permutation is the same in every fold it trains in.
    c = build_dataset(folds, "mixture", 2, protocol="subject", n_permutations=K, seed=3)
    common = a.merge(c, on="sample", suffixes=("_a", "_c"))
    common = common[(common["side_a"] == "train") & (common["side_c"] == "train") & (common["view_a"] == "paired")]
    assert len(common) > 0 and (common["perm_seed_a"] == common["perm_seed_c"]).all()


def test_paper_protocol_leaks_and_audit_shows_it(folds):
    splits = []
    for protocol in ("subject", "paper"):
        for k in range(5):
            splits.append(((protocol, "gene_only", k),
                           build_dataset(folds, "gene_only", k, protocol=protocol, n_permutations=K, seed=3)))
    paper = [s for (p, _, _), s in splits if p == "paper"]
    # Sample-level folds: every augmented sample is in exactly one test fold.
    tests = pd.concat([s[s["side"] == "test"] for s in paper])
    assert tests["sample"].is_unique and len(tests) == len(paper[0])
    table = audit_table(splits, used_protocol="subject")
    per_fold = table[table["fold"] != "sum"]
    assert (per_fold.loc[per_fold["protocol"] == "subject", "subjects_both_sides"] == 0).all()
    leaky = per_fold[per_fold["protocol"] == "paper"]
    assert leaky["leaky"].all() and (leaky["subjects_both_sides"] > 0).all()
    assert (leaky["subjects_both_sides"] / leaky["test_subjects"]).min() > 0.5
    assert table.loc[table["protocol"] == "subject", "used"].all()


# ---------------------------------------------------------------- workflow


def test_workflow_genetics_and_datasets_on_tiny_cohort(tiny_cohort):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 not on PATH")
    work = tiny_cohort
    run_snakemake(work, "results/datasets/leakage_audit.tsv", "results/genetics/snp_text_tokens.tsv",
                  "results/genetics/qc_report.tsv", configfile=work / "config" / "tiny.yaml")
    res = work / "results"
    truth = json.loads((res / "synthetic" / "truth.json").read_text())
    planted = {s for snps in truth["planted_qc_failures"].values() for s in snps}
    qc = pd.read_csv(res / "genetics" / "qc" / "qc_variants.tsv", sep="\t", keep_default_na=False)
    assert set(qc.loc[qc["removed_by"] != "", "snp"]) == planted
    report = pd.read_csv(res / "genetics" / "qc_report.tsv", sep="\t", keep_default_na=False).set_index("gene")
    assert report.loc["TOTAL", "left"] == len(qc) - len(planted)

    audit = pd.read_csv(res / "datasets" / "leakage_audit.tsv", sep="\t")
    assert set(audit["protocol"]) == {"subject", "paper"}
    assert (audit.loc[audit["protocol"] == "subject", "subjects_both_sides"] == 0).all()
    assert (audit.loc[(audit["protocol"] == "paper") & (audit["fold"] == "sum"), "subjects_both_sides"] > 0).all()

    tokens = pd.read_csv(res / "genetics" / "snp_text_tokens.tsv", sep="\t").set_index("format")
    assert tokens.loc["compact", "tokens_per_snp"] < tokens.loc["verbose", "tokens_per_snp"] / 3

    samples = pd.read_csv(res / "datasets" / "gene_only" / "fold0" / "samples.tsv", sep="\t")
    meta = json.loads((res / "datasets" / "gene_only" / "fold0" / "meta.json").read_text())
    assert meta["leaky"] is False and meta["counts"]["test"]["augmented"] == 0
    permuted = samples[samples["perm_seed"] != CANONICAL].iloc[0]
    cmd = [sys.executable, "-m", "rgenima_lib.cli", "sample-text", "--samples",
           str(res / "datasets" / "gene_only" / "fold0" / "samples.tsv"), "--sample", permuted["sample"],
           "--imputed", str(res / "genetics" / "imputed" / "fold0.npz"), "--snps", str(res / "genetics" / "snps.tsv")]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    again = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    genes = pd.read_csv(res / "genetics" / "genes.tsv", sep="\t")
    lines = text.strip().split("\n")
    assert text == again and len(lines) == (genes["block"] >= 0).sum()
    assert [line.split(":")[0] for line in lines] != genes.loc[genes["block"] >= 0, "gene"].tolist()
