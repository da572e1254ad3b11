"""Catalog cases of model folders and numeric settings: what the code would refuse mid-job is refused first.

Model folders are shaped like what users copy from the Hugging Face hub by hand:
weights without ``config.json`` (the wrong level of a download), or a ``config.json``
of a model family this transformers version cannot build. Numeric settings go
through the workflow's own config validation (``snakemake -n``), which must name
the key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from catalog.base import BIN, REPO, BadInput, Invocation, rgenima
from catalog.caches import finetune


def _weights_only(tmp: Path) -> Path:
    base = tmp / "models" / "Qwen2.5-7B-Instruct"
    base.mkdir(parents=True)
    (base / "model-00001-of-00004.safetensors").write_bytes(b"\0" * 64)
    (base / "tokenizer.json").write_text("{}")
    return base


def model_folder_without_config(tmp: Path) -> Invocation:
    base = _weights_only(tmp)
    command, outputs = finetune(tmp, None, base=base)
    return Invocation(command, outputs, message=[str(base), "no config.json", "Fix: point llm.backbones.<name>.model_path",
                                                 "llm.demo.enabled: true"])


def unknown_backbone(tmp: Path) -> Invocation:
    base = tmp / "models" / "newmodel-8b"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"model_type": "newmodel9", "architectures": ["NewModel9ForCausalLM"]}))
    command, outputs = finetune(tmp, None, base=base)
    return Invocation(command, outputs, message=[str(base / "config.json"), "unknown backbone",
                                                 "model_type 'newmodel9'", "'qwen2'", "Fix: use a causal LM"])


def checkpoint_without_llm_config(tmp: Path) -> Invocation:
    ckpt = tmp / "results" / "llm" / "rgenima_qwen" / "image_gene" / "fold0" / "checkpoint"
    (ckpt / "llm").mkdir(parents=True)
    (ckpt / "rgenima.json").write_text(json.dumps({"format": "rgenima-mllm/1", "config": {"visual_dim": None}}))
    (ckpt / "llm" / "model.safetensors").write_bytes(b"\0" * 64)
    data = tmp / "results" / "datasets" / "image_gene" / "fold0"
    data.mkdir(parents=True)
    for name in ("samples.tsv", "imputed.npz", "snps.tsv"):
        (data / name).write_text("placeholder\n")
    out = ckpt.parent / "predictions.tsv"
    command = rgenima("predict", "--checkpoint", ckpt, "--samples", data / "samples.tsv", "--imputed",
                      data / "imputed.npz", "--snps", data / "snps.tsv", "--output", out,
                      "--summary", ckpt.parent / "predict_summary.json")
    return Invocation(command, [out, ckpt.parent / "predict_summary.json"],
                      message=[str(ckpt / "llm"), "no config.json", f"rm -r '{ckpt}'", "rule finetune rebuilds it"])


def _dry_run(tmp: Path, config_text: str) -> list[str]:
    """argv of a dry run of the demo workflow with ``config_text`` on top (config validation runs first)."""
    for folder in ("workflow", "config", "envs"):
        shutil.copytree(REPO / folder, tmp / folder)
    bad = tmp / "config" / "bad.yaml"
    bad.write_text(config_text)
    return [str(BIN / "snakemake"), "--configfile", str(tmp / "config" / "demo.yaml"), str(bad), "--snakefile",
            str(tmp / "workflow" / "Snakefile"), "--directory", str(tmp), "--workflow-profile", "none",
            "--cores", "1", "-n", "all"]


def _schema_case(config_text: str, value: str, key_path: list[str], bound: str):
    def build(tmp: Path) -> Invocation:
        return Invocation(_dry_run(tmp, config_text), [tmp / "results"], exit_code=1,
                          message=["Error validating config file", f"{value} is {bound}",
                                   "On instance" + "".join(f"['{k}']" for k in key_path)])
    return build


def backbone_without_weights_or_demo_arch(tmp: Path) -> Invocation:
    text = "llm:\n  backbones:\n    qwen: {model_path: null}\n    mistral: {model_path: null}\n"
    return Invocation(_dry_run(tmp, text), [tmp / "results"], exit_code=1,
                      message=["backbone(s) mistral of llm.backbones have no model_path and no demo architecture",
                               "llm.demo.arch.<name>", "llm.backbones.mistral.model_path"])


CASES = [
    BadInput("backbone-without-weights-or-demo-arch", "models_and_config",
             "a backbone in `llm.backbones` with no `model_path` and no `llm.demo.arch` entry",
             "refused when the workflow is planned (snakemake exits 1), naming the backbone and both keys that fix it",
             backbone_without_weights_or_demo_arch),
    BadInput("model-folder-without-config-json", "models_and_config",
             "a base LLM folder of weights and tokenizer without `config.json` (finetune --base)",
             "refused before any data is read: names the folder and `llm.backbones.<name>.model_path`",
             model_folder_without_config),
    BadInput("unknown-backbone-model-type", "models_and_config",
             "a base LLM whose `config.json` has a `model_type` transformers does not know",
             "refused: names config.json, the model_type and the supported families (qwen2, llama)", unknown_backbone),
    BadInput("checkpoint-without-llm-config", "models_and_config",
             "a fine-tuned checkpoint folder whose `llm/` lacks `config.json` (predict / attribute)",
             "refused: names the folder and `rm -r` it so rule finetune rebuilds it", checkpoint_without_llm_config),
    BadInput("encoder-lr-negative", "models_and_config", "`encoders.rit.train.lr: -0.001`",
             "refused by config validation (snakemake exits 1 before any job), naming encoders / rit / train / lr",
             _schema_case("encoders:\n  rit:\n    train: {lr: -0.001}\n", "-0.001",
                          ["encoders", "rit", "train", "lr"], "less than or equal to the minimum of 0")),
    BadInput("encoder-lr-zero", "models_and_config", "`encoders.med3d.train.lr: 0`",
             "refused by config validation (snakemake exits 1 before any job), naming encoders / med3d / train / lr",
             _schema_case("encoders:\n  med3d:\n    train: {lr: 0}\n", "0",
                          ["encoders", "med3d", "train", "lr"], "less than or equal to the minimum of 0")),
    BadInput("baseline-heads-zero", "models_and_config", "`baselines.model.heads: 0`",
             "refused by config validation (snakemake exits 1 before any job), naming baselines / model / heads",
             _schema_case("baselines:\n  model: {heads: 0}\n", "0", ["baselines", "model", "heads"],
                          "less than the minimum of 1")),
    BadInput("rit-dropout-one", "models_and_config", "`encoders.rit.model.dropout: 1.0`",
             "refused by config validation (snakemake exits 1 before any job), naming encoders / rit / model / dropout",
             _schema_case("encoders:\n  rit:\n    model: {dropout: 1.0}\n", "1.0", ["encoders", "rit", "model", "dropout"],
                          "greater than or equal to the maximum of 1")),
]
