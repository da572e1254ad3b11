"""Config validation in the Snakefile: defaults filled, unknown keys and wrong types named."""

import yaml

from conftest import REPO, make_workdir, planned_jobs, run_snakemake
from rgenima_lib.model_ids import ENCODERS


def plan_with(tmp_path, config_text: str):
    """A dry run of ``all`` with ``config_text`` as the config file over config/config.yaml."""
    work = make_workdir(tmp_path)
    bad = work / "config" / "bad.yaml"
    bad.write_text(config_text)
    return run_snakemake(work, "-n", "all", configfile=bad, check=False)


def expected_jobs(cfg: dict) -> dict[str, int]:
    """The jobs of a first run of ``all`` on the synthetic cohort, counted from the config alone.

    Restates the pipeline of docs/design.md ("Data flow"): one job per cohort-wide step, one per fold for
    each encoder and each Table 1 run, one per backbone for the demo LLMs, one per attributed model for
    the tables and figures of paper 2.2-2.4.
    """
    folds = cfg["split"]["n_folds"]
    backbones = len(cfg["llm"]["backbones"])
    # Table 1's LLM rows: SNP text alone on gene_only, one row per visual encoder on the image configurations.
    llm_runs = sum(backbones * (1 if d == "gene_only" else len(ENCODERS)) for d in cfg["datasets"]["configs"])
    baseline_runs = sum(len(cfg["baselines"]["runs"][d]) for d in ("gene_only", "image_gene"))
    attributed = len(cfg["attribution"]["models"] or cfg["llm"]["backbones"])  # null: one model per backbone
    once = ["synth_cohort", "manifest", "panel_extract", "plink_qc", "genotype_matrix", "impute_genotypes",
            "snp_text_tokens", "splits", "leakage_audit", "roi_index", "wholebrain_index", "imaging_qc", "roi_montage",
            "evaluate", "pair_association", "all"]
    return {**dict.fromkeys(once, 1), "datasets": len(cfg["datasets"]["configs"]),
            "build_demo_llm": backbones, "resource_plan": backbones, "pretrain_encoder": len(ENCODERS) * folds, "embed": len(ENCODERS) * folds,
            "gene_tokens": folds, "train_baseline": baseline_runs * folds, "finetune": llm_runs * folds,
            "predict": llm_runs * folds, "attribute": attributed * folds,
            **{rule: attributed for rule in ("bootstrap_genes", "bootstrap_rois", "bootstrap_roi_gene", "enrichment",
                                             "attribution_recovery", "attribution_select", "faithfulness", "figure_1",
                                             "figure_2")}}


def test_demo_config_validates_and_plans_the_demo(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "-n", "all", configfile=work / "config" / "demo.yaml")
    cfg = _validated(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    assert planned_jobs(proc.stdout) == expected_jobs(cfg), proc.stdout[-4000:]


def test_misspelled_key_is_named(tmp_path):
    proc = plan_with(tmp_path, "synthetic:\n  enabled: true\n  n_subject: 60\n")
    assert proc.returncode != 0
    assert "n_subject" in proc.stdout and "was unexpected" in proc.stdout


def test_wrong_type_is_named(tmp_path):
    proc = plan_with(tmp_path, "genetics:\n  plink:\n    maf: high\n")
    assert proc.returncode != 0
    assert "maf" in proc.stdout and "'high'" in proc.stdout


def test_real_data_mode_without_paths_says_what_to_set(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "-n", "all", check=False)
    assert proc.returncode != 0
    assert "data.clinical" in proc.stdout and "config/demo.yaml" in proc.stdout


def test_paper_settings_in_main_config():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert (cfg["imaging"]["roi_size"], cfg["imaging"]["n_rois"]) == (96, 109)
    assert cfg["genetics"]["plink"] == {"geno": 0.95, "maf": 0.05, "hwe": 1e-6}
    assert cfg["attribution"]["n_bootstrap"] == 1000
    assert (cfg["train"]["lr"], cfg["train"]["epochs"]) == (2e-6, 3)
    # 16 per GPU x 8 GPUs, as 8 x 2 accumulated with checkpointing: what fits 80 GB (docs/resources.md).
    train = cfg["train"]
    assert train["batch_size_per_gpu"] * train["grad_accum"] * cfg["llm"]["gpus_per_finetune"] == 16 * 8
    assert train["gradient_checkpointing"] is True
    assert set(cfg["llm"]["backbones"]) == {"qwen", "llama"}


def test_workflow_is_lint_clean(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "--lint", configfile=work / "config" / "demo.yaml", check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout
    assert "Lints for" not in proc.stdout


def test_numeric_bounds_the_code_needs_are_checked_by_the_schema(tmp_path):
    # A negative learning rate used to pass validation and stop the job inside AdamW.
    proc = plan_with(tmp_path, "encoders:\n  rit:\n    train: {lr: -1.0e-4, epochs: 3}\n")
    assert proc.returncode != 0
    assert "-0.0001 is less than or equal to the minimum of 0" in proc.stdout
    assert "On instance['encoders']['rit']['train']['lr']" in proc.stdout


def test_misspelled_encoder_training_key_is_named(tmp_path):
    proc = plan_with(tmp_path, "encoders:\n  med3d:\n    train: {learning_rate: 0.001}\n")
    assert proc.returncode != 0
    assert "'learning_rate' was unexpected" in proc.stdout


def _validated(*overlays):
    """config/config.yaml with ``overlays`` merged over it, validated with the schema's defaults filled in."""
    from snakemake.utils import update_config, validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(cfg, overlay)
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg


def test_every_encoder_and_baseline_default_comes_from_the_schema():
    import json

    from rgenima_lib.train.baseline import BaselineSettings
    from rgenima_lib.train.encoder import EncoderSettings
    from rgenima_lib.train.finetune import FinetuneConfig

    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg = _validated(demo, {"encoders": {"med3d": {"train": {"patience": 3}}}})
    enc, base = cfg["encoders"], cfg["baselines"]
    # What the rules pass (as JSON) is whole: each stage's settings object takes it without a fallback.
    for name in ("rit", "med3d"):
        section = json.loads(json.dumps({**enc[name], "embed_batch_size": enc["embed_batch_size"]}))
        settings = EncoderSettings.from_dict(section, name)
        assert settings.fit_config(0).monitor == "balanced_accuracy" and settings.val_fraction == 0.2
    assert BaselineSettings.from_dict({k: base[k] for k in ("model", "train", "val_fraction", "max_copies")})
    # by_data_config is resolved by the workflow (rules/common.smk, train_settings) before the section is passed.
    train = {k: v for k, v in cfg["train"].items() if k != "by_data_config"}
    assert FinetuneConfig.from_dict({**train, "seed": cfg["seed"]}).log_every == 10
    # Each train block holds its own defaults: a value set for one encoder leaves the others' alone.
    assert enc["rit"]["train"]["epochs"] == demo["encoders"]["rit"]["train"]["epochs"]
    assert enc["med3d"]["train"]["patience"] == 3 and enc["rit"]["train"]["patience"] == 8
    assert base["train"]["patience"] == 10 and base["train"]["monitor"] == "loss" and base["train"]["epochs"] == 100
    assert enc["rit"]["model"]["patch_rank"] == 1 and enc["med3d"]["model"]["layers"] == [2, 2, 2, 2]
    assert base["runs"]["gene_only"] == ["mlp", "bert"] and base["max_copies"] == 0


def test_the_per_encoder_embed_batch_size_is_gone():
    import pytest
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="embed_batch_size"):
        _validated({"encoders": {"rit": {"embed_batch_size": 8}}})
    assert _validated({"encoders": {"embed_batch_size": 8}})["encoders"]["embed_batch_size"] == 8


def test_finetune_waits_for_the_resource_plan_and_a_config_that_cannot_fit_is_refused_while_planning(tmp_path):
    import json

    from rgenima_lib.result_paths import result_path

    work = make_workdir(tmp_path)
    target = result_path("llm_checkpoint", model="rgenima_qwen", dconfig="image_gene", k=0)
    proc = run_snakemake(work, "-n", target, configfile=work / "config" / "demo.yaml")
    assert planned_jobs(proc.stdout)["resource_plan"] == 1, proc.stdout[-3000:]
    # Real weights on 8 GPUs at the paper's 16 per GPU without checkpointing: no job is planned at all.
    model = tmp_path / "qwen7b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}))
    proc = plan_with(tmp_path / "refused", f"synthetic:\n  enabled: true\nfreesurfer:\n  mode: precomputed\n"
                               f"llm:\n  gpus_per_finetune: 8\n  backbones: {{qwen: {{model_path: {model}}}}}\n"
                               "train:\n  batch_size_per_gpu: 16\n  grad_accum: 1\n  gradient_checkpointing: false\n")
    assert proc.returncode != 0
    assert "train.gradient_checkpointing: true" in proc.stdout and "Job stats" not in proc.stdout


def test_every_rule_that_writes_snp_text_passes_the_pipelines_text_settings():
    """genetics.snp_separator and snp_packing reach every command that writes SNP text: all of them write one text."""
    import argparse
    import re

    from rgenima_lib.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    writers = {name for name, p in subparsers.choices.items()
               if any("--snp-packing" in a.option_strings for a in p._actions)}
    assert {"attribute", "null-control", "finetune", "predict", "gene-tokens", "snp-text-tokens"} <= writers
    checked = set()
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.MULTILINE)[1:]:
            rule = block.split(":", 1)[0].removeprefix("rule ")
            # finetune starts as "${launch[@]}" finetune (torchrun or rgenima).
            runs = set(re.findall(r'(?:rgenima|launch\[@\]\}\}\\") ([a-z][a-z0-9-]*)', block)) & writers
            if not runs:
                continue
            checked |= runs
            for setting, flag in (("snp_separator", "--snp-separator"), ("snp_packing", "--snp-packing")):
                assert f'{setting}=GEN["{setting}"]' in block, f"rule {rule}: no params.{setting} from the config"
                assert f"{flag} {{params.{setting}:q}}" in block, f"rule {rule}: {flag} not passed"
    assert {"attribute", "null-control", "finetune", "predict", "gene-tokens", "snp-text-tokens"} <= checked


def test_train_settings_can_differ_by_data_configuration(tmp_path):
    """train.by_data_config reaches the fine-tuning runs of that configuration only; a bad name is refused."""
    import re

    from rgenima_lib.result_paths import result_path

    work = make_workdir(tmp_path)
    cfg = work / "config" / "steps.yaml"
    demo = (work / "config" / "demo.yaml").read_text()
    text = demo.replace("  max_steps: 120", "  max_steps: 7\n  by_data_config:\n    gene_only: {max_steps: 9}")
    assert text != demo
    cfg.write_text(text)
    targets = {d: result_path("llm_checkpoint", model="qwen", dconfig=d, k=0) for d in ("gene_only", "image_gene")}
    targets["image_gene"] = result_path("llm_checkpoint", model="rgenima_qwen", dconfig="image_gene", k=0)
    proc = run_snakemake(work, "-n", "-p", *targets.values(), configfile=cfg)
    commands = [line for line in proc.stdout.splitlines() if " finetune --base " in line]
    steps = {d: {int(n) for c in commands if f"/{d}/" in c for n in re.findall(r'"max_steps": (\d+)', c)}
             for d in targets}
    assert steps == {"gene_only": {9}, "image_gene": {7}}, proc.stdout[-3000:]
    bad = plan_with(tmp_path / "bad", "train:\n  by_data_config:\n    gene_olny: {max_steps: 9}\n")
    assert bad.returncode != 0 and "gene_olny" in bad.stdout
