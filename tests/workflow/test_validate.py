"""The positive control (config/validate.yaml, target `make validate`, docs/validation.md).

Fast: the config is schema-valid, labelled a calibration, and a dry run of rule ``validate`` plans only what
the recovery needs (gene-only LLMs for the genes, R-GenIMAs for the stage ROIs and pairs; no Med3D, no
baselines). Slow (e2e): the control's thresholds on its recovery tables, read from a finished run under
``RGENIMA_VALIDATION_DIR`` (the work folder of `make validate`, e.g. ``validation``) or from a fresh run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_workdir, planned_jobs, run_snakemake
from rgenima_lib.io import read_tsv

CONFIG = REPO / "config" / "validate.yaml"
# The thresholds.
MIN_PRECISION, MIN_RECALL, MIN_PAIR_RECALL, MIN_GENE_BALANCED_ACCURACY = 0.8, 0.8, 0.5, 0.35


def _validated():
    from snakemake.utils import update_config, validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load(CONFIG.read_text()))
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg


def test_validate_config_is_a_schema_valid_calibration_with_genes_from_the_gene_only_llm():
    cfg = _validated()
    assert cfg["synthetic"]["purpose"] == "calibration" and cfg["synthetic"]["n_genotype_only"] >= 1000
    assert cfg["llm"]["gene_input"] == "tokens" and set(cfg["llm"]["backbones"]) == {"qwen", "llama"}
    assert cfg["attribution"]["genes_from"] == "gene_only" and cfg["attribution"]["leak_action"] == "error"
    # recall 0.8 must be reachable with one miss: at least five planted items of each kind
    assert len(cfg["synthetic"]["causal_genes"]) >= 5
    assert all(len(rois) >= 5 for rois in cfg["synthetic"]["stage_atrophy"].values())


def test_validate_plans_the_gene_only_and_rgenima_models_of_both_backbones_and_nothing_else(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "-n", "validate", configfile=work / "config" / "validate.yaml")
    jobs = planned_jobs(proc.stdout)
    folds, backbones = 2, 2
    # per backbone and fold: the gene-only LLM and the R-GenIMA, each fine-tuned and attributed
    assert jobs["finetune"] == jobs["attribute"] == 2 * backbones * folds, proc.stdout[-3000:]
    assert jobs["bootstrap_genes"] == backbones and jobs["attribution_select"] == 2 * backbones
    assert jobs["bootstrap_rois"] == jobs["attribution_recovery"] == backbones and jobs["validate"] == 1
    assert jobs["pretrain_encoder"] == folds  # the RiT only
    # every compared method but the pipeline's own (its dumps are rule attribute's), on the R-GenIMA
    methods = _validated()["attribution"]["compare_methods"]
    assert jobs["attribute_method"] == backbones * folds * (len(methods) - 1) and jobs["method_recovery"] == backbones
    assert not {"train_baseline", "predict", "wholebrain", "null_control", "power"} & set(jobs)
    assert "results/attribution/qwen/gene_only/genes.tsv" in proc.stdout


def test_the_demo_still_takes_its_genes_from_the_rgenima(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "-n", "results/attribution/rgenima_qwen/image_gene/recovery.tsv",
                         configfile=work / "config" / "demo.yaml")
    assert "gene_only/genes.tsv" not in proc.stdout and planned_jobs(proc.stdout)["attribute"] == 2


def _validation_dir(tmp_path_factory) -> Path:
    """A finished run of `make validate` (RGENIMA_VALIDATION_DIR), else a fresh one in a scratch folder."""
    given = os.environ.get("RGENIMA_VALIDATION_DIR")
    if given:
        return Path(given)
    work = make_workdir(tmp_path_factory.mktemp("validate"))
    run_snakemake(work, "validate", configfile=work / "config" / "validate.yaml", timeout=45 * 60)
    return work


@pytest.mark.e2e
@pytest.mark.parametrize("backbone", ["qwen", "llama"])
def test_the_positive_control_recovers_the_planted_truth(tmp_path_factory, backbone):
    folder = _validation_dir(tmp_path_factory) / "results" / "attribution" / f"rgenima_{backbone}" / "image_gene"
    # the pipeline's chain (its genes from the gene-only LLM) and every compared method on the R-GenIMA
    table = pd.concat([read_tsv(folder / "recovery.tsv").assign(method="pipeline"),
                       read_tsv(folder / "methods" / "recovery.tsv")], ignore_index=True)
    table["ok"] = (table["precision"] >= MIN_PRECISION) & (table["recall"] >= MIN_RECALL)
    summary = table.groupby(["method", "what", "stage", "selection"])[["precision", "recall"]].max()

    genes = table[table["what"] == "causal genes"]
    assert genes["ok"].any(), summary
    # one method and selection that reaches both thresholds in every stage
    rois = table[table["what"] == "stage ROIs"].groupby(["method", "selection"])
    assert rois.apply(lambda t: set(t.loc[t["ok"], "stage"]) >= {"SMC", "MCI", "AD"}).any(), summary
    pairs = table[table["what"] == "ROI-gene pairs"]
    found = pairs.groupby(["method", "selection"])["true_positives"].sum()
    assert found.max() >= MIN_PAIR_RECALL * _n_pairs(table[table["method"] == "pipeline"]), found
    gene_model = re.search(r"Gene model.*?balanced accuracy ([\d.]+)%", (folder / "recovery.md").read_text())
    assert gene_model and float(gene_model.group(1)) / 100 >= MIN_GENE_BALANCED_ACCURACY


def _n_pairs(table) -> int:
    """Planted pairs, each counted in every stage it acts in (the table's pair rows are per stage)."""
    return int(table.loc[(table["what"] == "ROI-gene pairs") & (table["selection"] == "top_k"), "n_planted"].sum())
