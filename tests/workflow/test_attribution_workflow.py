"""Rules attribute, bootstrap_*, enrichment, figure_1, figure_2 on a tiny demo checkpoint.

The upstream inputs of ``attribute`` (checkpoint, samples, imputed genotypes, SNP table, RiT embeddings) are
made here with the project's own writers and a random-init demo LLM, so the test does not wait for the
encoder and LLM rules; Snakemake is restricted with ``--allowed-rules`` to the interpretability rules, the
documented way to redraw the figures on a machine that holds only the dumps.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import make_workdir, planned_jobs, run_snakemake
from rgenima_lib.vocabulary import STAGES

MODEL = "rgenima_qwen"
DCONFIG = "image_gene"
N_FOLDS = 2
# The recovery rule also reads the cohort's voxel counts, manifest and genotypes (leak check, pair association):
# it runs in the demo and the validation run, and recovery_table has its own tests.
ATTR_RULES = ["attribute", "bootstrap_genes", "bootstrap_rois", "bootstrap_roi_gene", "enrichment", "figure_1",
              "figure_2"]
ATTR = f"results/attribution/{MODEL}/{DCONFIG}"
FIG = f"results/figures/{MODEL}/{DCONFIG}"


def make_attribution_inputs(root, genes: list[str], rois: list[str], base, n_per_stage_fold: int = 2,
                            d_vis: int = 8, seed: int = 0) -> dict:
    """Write the inputs of rule ``attribute`` for every fold under ``root`` (a workflow directory).

    One SNP per panel gene (a short prompt), 109 ROI tokens of width ``d_vis`` (one ROI absent in one
    subject), a checkpoint of the demo LLM in ``base`` with a linear connector (copied to every fold).
    """
    import torch

    from rgenima_lib.genetics.genotype_matrix import save_genotypes
    from rgenima_lib.io import write_json
    from rgenima_lib.models.embedding_cache import save_embeddings
    from rgenima_lib.models.mllm import MLLMConfig, RGenIMA

    rng = np.random.default_rng(seed)
    snps = pd.DataFrame({"snp": [f"rs{1000 + i}" for i in range(len(genes))], "chrom": "1",
                         "pos": np.arange(len(genes)) * 1000 + 1, "a1": "A", "a2": "G", "gene": genes,
                         "block": np.arange(len(genes)), "maf": 0.3, "f_miss": 0.0})
    (root / "results/genetics/imputed").mkdir(parents=True)
    snps.to_csv(root / "results/genetics/snps.tsv", sep="\t", index=False)
    subjects = [f"{100 + i:03d}_S_{i:04d}" for i in range(N_FOLDS * 4 * n_per_stage_fold)]
    stage_of = {s: STAGES[(i // n_per_stage_fold) % 4] for i, s in enumerate(subjects)}
    fold_of = {s: i // (4 * n_per_stage_fold) for i, s in enumerate(subjects)}
    dosage = rng.integers(0, 3, (len(subjects), len(genes))).astype(np.float32)
    tokens = rng.normal(size=(len(subjects), len(rois), d_vis)).astype(np.float32)
    presence = np.ones((len(subjects), len(rois)), np.uint8)
    presence[1, 5] = 0
    # a row-stochastic RiT rollout per subject (what rule embed caches beside the tokens)
    mix = rng.random((len(subjects), len(rois), len(rois))).astype(np.float32)
    rollout = (0.5 * np.eye(len(rois)) + 0.5 * mix / mix.sum(-1, keepdims=True)).astype(np.float16)
    torch.manual_seed(seed)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=d_vis), seed=seed)
    ckpt0 = model.save_checkpoint(root / f"results/llm/{MODEL}/{DCONFIG}/fold0/checkpoint")
    for k in range(N_FOLDS):
        if k:
            shutil.copytree(ckpt0, root / f"results/llm/{MODEL}/{DCONFIG}/fold{k}/checkpoint")
        test = [s for s in subjects if fold_of[s] == k]
        train = [s for s in subjects if fold_of[s] != k]
        rows = [{"sample": f"{s}/paired/0", "subject": s, "stage": stage_of[s], "label": STAGES.index(stage_of[s]),
                 "view": "paired", "copy": 0, "perm_seed": -1, "with_image": True, "side": side}
                for side, group in (("train", train), ("test", test)) for s in group]
        out = root / f"results/datasets/{DCONFIG}/fold{k}"
        out.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(out / "samples.tsv", sep="\t", index=False)
        save_genotypes(root / f"results/genetics/imputed/fold{k}.npz", dosage, subjects, snps["snp"])
        save_embeddings(root / f"results/embeddings/rit/fold{k}.safetensors", subjects, tokens, presence,
                        info={"encoder": "rit", "fold": k}, rollout=rollout)
    write_json({"causal_genes": [{"gene": g} for g in ("APOE", "BIN1", "CLU")],
                "stage_rois": {"SMC": [{"roi": "Left-Putamen"}], "MCI": [{"roi": "ctx-rh-temporalpole"}],
                               "AD": [{"roi": "Left-Hippocampus"}, {"roi": "Right-Hippocampus"}]},
                "roi_gene_pairs": [{"roi": "Left-Hippocampus", "gene": "APOE", "stages": ["MCI", "AD"]}]},
               root / "results/synthetic/truth.json")
    return {"genes": genes, "rois": rois, "subjects": subjects, "stage_of": stage_of, "fold_of": fold_of}


@pytest.fixture(scope="module")
def attr_run(tmp_path_factory, panel_table, rois, demo_llm):
    work = make_workdir(tmp_path_factory.mktemp("attr"))
    genes = panel_table["gene"].tolist()
    base = demo_llm(hidden_size=32, n_heads=2, n_kv_heads=1, intermediate_size=64, gene_names=genes)
    info = make_attribution_inputs(work, genes, rois["name"].tolist(), base)
    cfg = work / "config" / "attr.yaml"
    cfg.write_text(
        "synthetic:\n  enabled: true\n  n_subjects: 16\nfreesurfer:\n  mode: precomputed\n"
        f"split:\n  n_folds: {N_FOLDS}\nseed: 3\nllm:\n  demo:\n    enabled: true\n"
        f"attribution:\n  models: [{MODEL}]\n  dconfig: {DCONFIG}\n  n_bootstrap: 50\n  n_permutations: 1000\n"
        "  top_genes: 10\n  top_rois: 4\n  top_pairs: 5\n  figure1_volume: centroids\n  gene_orders: 2\n")
    targets = [f"{FIG}/figure1.png", f"{FIG}/figure2.png", f"{ATTR}/enrichment.md", f"{ATTR}/roi_gene_top.tsv"]
    # One thread per attribute job, so that the two folds run side by side on the 2 cores.
    proc = run_snakemake(work, *targets, "--allowed-rules", *ATTR_RULES, "--set-threads", "attribute=1",
                         configfile=cfg)
    return work, cfg, info, proc.stdout


def test_dumps_hold_every_test_subject_in_float16_with_names_and_the_demo_note(attr_run):
    from rgenima_lib.attribution.dump_format import read_dump

    work, _, info, _ = attr_run
    for k in range(N_FOLDS):
        dump = read_dump(work / ATTR / f"fold{k}" / "dump.npz")
        expected = [s for s in info["subjects"] if info["fold_of"][s] == k]
        assert dump.subjects.tolist() == expected
        assert dump.genes.tolist() == info["genes"] and dump.rois.tolist() == info["rois"]
        assert dump.roi_gene.shape == (len(expected), 109, 105) and dump.roi_gene.dtype == np.float16
        assert dump.gene_importance.dtype == dump.roi_importance.dtype == np.float16
        assert dump.label.tolist() == [info["stage_of"][s] for s in expected]
        np.testing.assert_allclose(dump.probabilities.astype(float).sum(1), 1.0, atol=2e-3)
        assert dump.note == "demo model, random init; attribution: rollout" and dump.meta["sink"] == "exclude"
        assert dump.method == "rollout"
        assert dump.meta["gene_orders"] == 2 and dump.meta["gene_order_source"] == "permuted"
        assert (dump.gene_importance > 0).all() and (dump.gene_tokens > 0).all()  # every gene has tokens
        summary = json.loads((work / ATTR / f"fold{k}" / "summary.json").read_text())
        assert summary["n_subjects"] == len(expected) and 0 <= summary["sink_share_mean"] < 1
    dump0 = read_dump(work / ATTR / "fold0" / "dump.npz")
    assert dump0.roi_importance[1, 5] == 0 and (dump0.roi_gene[1, 5] == 0).all()  # the absent ROI


def test_tables_and_figures_are_made_and_say_demo(attr_run):
    from rgenima_lib.io import read_tsv

    work, _, _, _ = attr_run
    for name in ("genes.tsv", "rois.tsv", "roi_gene.tsv", "roi_gene_top.tsv", "enrichment.tsv"):
        path = work / ATTR / name
        assert path.read_text().startswith("# demo model, random init; attribution: rollout\n"), name
    genes = read_tsv(work / ATTR / "genes.tsv")
    assert len(genes) == 105 and set(genes.columns) >= {"gene", "frequency", "stable", "rank", "gwas_ad"}
    rois = read_tsv(work / ATTR / "rois.tsv")
    assert set(rois["stage"]) == {"SMC", "MCI", "AD"} and {"p_perm", "q_bh", "frequency"} <= set(rois.columns)
    pairs = read_tsv(work / ATTR / "roi_gene.tsv")
    assert len(pairs) == 3 * 109 * 105
    enrichment = read_tsv(work / ATTR / "enrichment.tsv")
    assert enrichment.loc[0, "universe"] == 105 and enrichment.loc[0, "n_gwas"] == 45
    for n in (1, 2):
        for ext in ("png", "pdf"):
            assert (work / FIG / f"figure{n}.{ext}").stat().st_size > 10_000


def test_forcerun_figures_reruns_only_the_figures(attr_run):
    work, cfg, _, _ = attr_run
    # The documented command; --allowed-rules because this work directory has no upstream rules' outputs.
    before = {p: p.stat().st_mtime_ns for p in (work / ATTR).rglob("*") if p.is_file()}
    command = ["figures", "--forcerun", "figure_1", "figure_2",
               "--allowed-rules", "bootstrap_rois", "bootstrap_roi_gene", "figure_1", "figure_2", "figures"]
    proc = run_snakemake(work, *command, "-n", configfile=cfg)
    assert planned_jobs(proc.stdout) == {"figure_1": 1, "figure_2": 1, "figures": 1}, proc.stdout[-3000:]
    figures = sorted((work / FIG).glob("figure*.*"))
    drawn = {p: p.stat().st_mtime_ns for p in figures}
    run_snakemake(work, *command, configfile=cfg)
    assert before == {p: p.stat().st_mtime_ns for p in (work / ATTR).rglob("*") if p.is_file()}
    assert all(p.stat().st_mtime_ns > drawn[p] for p in figures), "the figures were not redrawn"
