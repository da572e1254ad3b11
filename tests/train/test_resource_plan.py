"""The resource planner (rgenima_lib.train.resource_plan, ``rgenima plan``) and ``make gpu-check``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rgenima_lib.errors import InputDataError
from rgenima_lib.train.resource_plan import (ModelShape, PlanSettings, check_plan, make_plan,
                                             require_attn_implementation)

REPO = Path(__file__).resolve().parents[2]
QWEN_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False}
LLAMA_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}
# CPU measurement (bench llm_memory): bytes autograd saves per token in one Qwen2.5-7B-width layer, bf16, SDPA.
QWEN_7B_MEASURED_PER_TOKEN = 225912


def _sections():
    """The train and llm.plan sections as the workflow sees them: schema defaults under config/config.yaml."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    train = {k: v["default"] for k, v in schema["train"]["properties"].items()} | config["train"]
    plan = {k: v["default"] for k, v in schema["llm"]["properties"]["plan"]["properties"].items()}
    return train, plan | config["llm"].get("plan", {}), config["llm"]["gpus_per_finetune"]


def test_parameter_counts_match_the_published_models():
    assert ModelShape.from_config(QWEN_7B).n_params() == 7_615_616_512  # Qwen2.5-7B's model card: 7.61B
    assert ModelShape.from_config(LLAMA_8B).n_params() == 8_030_261_248  # Llama-3-8B


def test_plan_figures_match_a_hand_computation():
    shape = ModelShape.from_config(QWEN_7B)
    s = PlanSettings(batch_size_per_gpu=16, grad_accum=1, gradient_checkpointing=False, bf16=True, epochs=3,
                     gpus=8, gpu_memory_gb=80, peak_tflops=312, utilisation=0.4, overhead_gb=4,
                     tokens_per_sample=2800, train_samples=48000)
    plan = make_plan(shape, s, model="qwen")
    n = 7_615_616_512
    terms = plan.memory_bytes
    assert terms["weights (bf16 shard)"] == pytest.approx(2 * n / 8)
    assert terms["optimizer (fp32 master + Adam moments, shard)"] == pytest.approx(12 * n / 8)
    assert terms["gathered parameters (ZeRO-3 working set)"] == 4 * 152064 * 3584  # the embedding, x2 prefetch
    assert terms["optimizer step fp32 gradients (one sub-group)"] == pytest.approx(4 * n / 8)
    assert terms["activations"] == 28 * 16 * 2800 * QWEN_7B_MEASURED_PER_TOKEN  # 283 GB
    assert terms["attention mask"] == 16 * 2800 ** 2
    # Checkpointing: each layer's bf16 input, plus one layer recomputed in full.
    assert plan.activations_with_checkpointing_gb * 1e9 == pytest.approx(
        16 * 2800 * (28 * 2 * 3584 + QWEN_7B_MEASURED_PER_TOKEN))
    assert plan.tokens_per_epoch == 48000 * 2800 and plan.steps_per_epoch == 375
    layer_params = (n - 2 * 152064 * 3584 - 3584) // 28
    flops = 48000 * 2800 * (6 * 28 * layer_params + 3 * 4 * 28 * 3584 * 2800)
    assert plan.hours_per_epoch == pytest.approx(flops / (8 * 312e12 * 0.4) / 3600)
    assert not plan.fits and plan.total_gb == pytest.approx(sum(terms.values()) / 1e9)


def test_the_papers_micro_batch_without_checkpointing_is_refused_with_the_fix():
    train, plan, gpus = _sections()
    paper = {**train, "batch_size_per_gpu": 16, "grad_accum": 1, "gradient_checkpointing": False}
    for config in (QWEN_7B, LLAMA_8B):
        settings = PlanSettings.from_sections(paper, plan, gpus=gpus)
        with pytest.raises(InputDataError, match="activations") as err:
            check_plan(make_plan(ModelShape.from_config(config), settings))
        assert "train.gradient_checkpointing: true" in str(err.value)
        assert "train.grad_accum" in str(err.value)


@pytest.mark.parametrize("config", [QWEN_7B, LLAMA_8B], ids=["qwen2.5-7b", "llama-3-8b"])
def test_the_default_config_fits_8_x_80_gb_with_the_papers_effective_batch(config):
    train, plan, gpus = _sections()
    settings = PlanSettings.from_sections(train, plan, gpus=gpus)
    assert (gpus, settings.gpu_memory_gb, settings.effective_batch) == (8, 80, 16 * 8)
    result = check_plan(make_plan(ModelShape.from_config(config), settings))
    assert result.total_gb < 0.5 * 80  # room for what the plan leaves out


def test_a_cpu_run_passes_and_flash_attention_needs_its_package(monkeypatch):
    tiny = ModelShape(arch="qwen2", hidden=64, intermediate=256, layers=2, heads=4, kv_heads=2, vocab=2000)
    train, plan, _ = _sections()
    assert make_plan(tiny, PlanSettings.from_sections(train, plan, gpus=0)).fits
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputDataError, match="flash_attn.*llm.attn_implementation: sdpa"):
        require_attn_implementation("flash_attention_2")
    with pytest.raises(InputDataError, match="one of sdpa, eager, flash_attention_2"):
        require_attn_implementation("flash")


def test_plan_command_writes_the_table_and_refuses_with_the_fix(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN_7B))
    train, plan, _ = _sections()
    cmd = [sys.executable, "-m", "rgenima_lib.cli", "plan", "--model", str(tmp_path), "--plan", json.dumps(plan),
           "--gpus", "8", "--output-tsv", str(tmp_path / "plan.tsv"), "--output-json", str(tmp_path / "plan.json")]
    ok = subprocess.run(cmd + ["--train", json.dumps(train)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "plan.json").read_text())["fits"] is True
    bad = {**train, "batch_size_per_gpu": 16, "grad_accum": 1, "gradient_checkpointing": False}
    refused = subprocess.run(cmd + ["--train", json.dumps(bad)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert refused.returncode != 0 and "train.gradient_checkpointing: true" in refused.stderr
    assert "activations" in (tmp_path / "plan.tsv").read_text()


def test_gpu_check_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "rgenima_lib.bench.gpu_check", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_gpu_check_tiny_cpu_smoke_runs_zero3_and_the_rollout(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "rgenima_lib.bench.gpu_check", "--device", "cpu", "--tiny",
                           "--layers", "2", "--steps", "2", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [(r["attn"], r["gradient_checkpointing"], r["steps"]) for r in result["runs"]] == [
        ("sdpa", False, 2), ("sdpa", True, 2)]
    assert all(r["planned_gb"] > 0 and r["tokens_per_step"] > 2000 for r in result["runs"])
    assert result["rollout"]["layers_seen"] == 2 and result["rollout"]["finite"]
