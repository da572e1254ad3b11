"""Config validation in the Snakefile: defaults filled, unknown keys and wrong types named."""

import yaml

from conftest import REPO, make_workdir, run_snakemake


def test_demo_config_validates_and_plans_the_demo(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "-n", "all", configfile=work / "config" / "demo.yaml")
    assert "synth_cohort" in proc.stdout and "manifest" in proc.stdout


def test_misspelled_key_is_named(tmp_path):
    work = make_workdir(tmp_path)
    bad = work / "config" / "bad.yaml"
    bad.write_text("synthetic:\n  enabled: true\n  n_subject: 60\n")
    proc = run_snakemake(work, "-n", "all", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "n_subject" in proc.stdout and "was unexpected" in proc.stdout


def test_wrong_type_is_named(tmp_path):
    work = make_workdir(tmp_path)
    bad = work / "config" / "bad.yaml"
    bad.write_text("genetics:\n  plink:\n    maf: high\n")
    proc = run_snakemake(work, "-n", "all", configfile=bad, check=False)
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
    assert (cfg["train"]["lr"], cfg["train"]["epochs"], cfg["train"]["batch_size_per_gpu"]) == (2e-6, 3, 16)
    assert set(cfg["llm"]["backbones"]) == {"qwen", "llama"}


def test_workflow_is_lint_clean(tmp_path):
    work = make_workdir(tmp_path)
    proc = run_snakemake(work, "--lint", configfile=work / "config" / "demo.yaml", check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout
    assert "Lints for" not in proc.stdout


def test_numeric_bounds_the_code_needs_are_checked_by_the_schema(tmp_path):
    # A negative learning rate used to pass validation and stop the job inside AdamW.
    work = make_workdir(tmp_path)
    bad = work / "config" / "bad.yaml"
    bad.write_text("encoders:\n  rit:\n    train: {lr: -1.0e-4, epochs: 3}\n")
    proc = run_snakemake(work, "-n", "all", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "-0.0001 is less than or equal to the minimum of 0" in proc.stdout
    assert "On instance['encoders']['rit']['train']['lr']" in proc.stdout


def test_misspelled_encoder_training_key_is_named(tmp_path):
    work = make_workdir(tmp_path)
    bad = work / "config" / "bad.yaml"
    bad.write_text("encoders:\n  med3d:\n    train: {learning_rate: 0.001}\n")
    proc = run_snakemake(work, "-n", "all", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "'learning_rate' was unexpected" in proc.stdout
