"""One-GPU check of the real fine-tuning path at 7B width: ``make gpu-check`` (``results/bench/gpu.json``).

On one CUDA GPU, in a few minutes: a random-init Qwen2 model at Qwen2.5-7B's
widths (hidden 3,584, MLP 18,944, 28 heads, 4 KV heads, 152,064 embedding rows)
with a few decoder layers, fine-tuned for a few steps on paper-length prompts
(1,079 SNPs, 109 RiT tokens) through :func:`rgenima_lib.train.finetune.finetune`:
bf16, DeepSpeed ZeRO-3 (``config/deepspeed/zero3.json``) at world size 1, SDPA
with and without gradient checkpointing, and flash attention 2 when the
``flash_attn`` package is importable. Then one attention-rollout pass
(:class:`rgenima_lib.attribution.rollout.StreamingRollout` under
:func:`~rgenima_lib.attribution.rollout.rollout_attention`, as ``rgenima attribute`` runs it). Each run's tokens/s (after the first
step) and ``torch.cuda.max_memory_allocated`` stand next to the resource
planner's prediction for the same model, micro-batch and prompt length (its CUDA
reserve left out: the allocator does not see the context).

Without a GPU it stops with a message (exit 2) and writes nothing.
``--device cpu --tiny`` runs the same code path on CPU (a tiny model, gloo) so a
test can check it; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rgenima_lib.io import write_json

WIDTH_7B = dict(hidden_size=3584, n_heads=28, n_kv_heads=4, intermediate_size=18944, embedding_rows=152064,
                max_positions=32768)
TINY = dict(hidden_size=32, n_heads=2, n_kv_heads=1, intermediate_size=64, embedding_rows=4096)
PEAK_TFLOPS_BF16 = 989.0  # H100 / H200 SXM dense bf16: only the utilisation figure uses it


def paper_scale_samples(n: int, seed: int = 0) -> list:
    """``n`` training samples at the paper's size: 1,079 SNPs in 105 genes as text, 109 random RiT tokens."""
    import numpy as np

    from rgenima_lib.bench.bench_llm import PAPER_N_SNPS, RIT_DIM, genome_texts
    from rgenima_lib.models.prompting import PromptSample
    from rgenima_lib.vocabulary import N_ROIS, STAGES

    rng = np.random.default_rng(seed)
    texts = genome_texts(PAPER_N_SNPS, n_subjects=n, seed=seed)
    return [PromptSample(f"g{i}", texts[i], STAGES[i % 4], rng.normal(size=(N_ROIS, RIT_DIM)).astype(np.float32),
                         np.ones(N_ROIS, np.uint8)) for i in range(n)]


def _distributed_env() -> None:
    """World size 1 for DeepSpeed, without torchrun."""
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29571", "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        os.environ.setdefault(key, value)


def _planned_gb(base: Path, batch: int, tokens: int, checkpointing: bool, attn: str, n_samples: int) -> float:
    """The planner's per-GPU figure for this run, without its fixed CUDA reserve (GB)."""
    from rgenima_lib.train.resource_plan import ModelShape, PlanSettings, make_plan

    settings = PlanSettings(batch_size_per_gpu=batch, grad_accum=1, gradient_checkpointing=checkpointing, bf16=True,
                            epochs=1, gpus=1, gpu_memory_gb=1e9, peak_tflops=PEAK_TFLOPS_BF16, utilisation=1.0,
                            overhead_gb=0.0, tokens_per_sample=tokens, train_samples=n_samples,
                            attn_implementation=attn)
    return make_plan(ModelShape.from_model_folder(base), settings).total_gb


def finetune_run(base: Path, samples: list, attn: str, checkpointing: bool, steps: int, device: str) -> dict:
    """A few ZeRO-3 steps: tokens/s after the first step, peak memory, the planner's prediction."""
    import torch

    from rgenima_lib.bench.bench_llm import RIT_DIM
    from rgenima_lib.models.mllm import MLLMConfig
    from rgenima_lib.train.finetune import FinetuneConfig, finetune

    repo = Path(__file__).resolve().parents[2]
    cfg = replace(FinetuneConfig(), epochs=1, batch_size_per_gpu=1, grad_accum=1, max_steps=steps, lr=2e-6,
                  gradient_checkpointing=checkpointing)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = finetune(base, samples, None, MLLMConfig(visual_dim=RIT_DIM, attn_implementation=attn), cfg,
                      deepspeed_config=repo / "config" / "deepspeed" / "zero3.json")
    timed = result.history[1:] or result.history
    tokens = max(int(result.history[0]["tokens"]), 1)
    row = {"attn": attn, "gradient_checkpointing": checkpointing, "steps": result.summary["steps"],
           "tokens_per_step": tokens, "precision": result.summary["precision"],
           "tokens_per_s": round(sum(h["tokens"] for h in timed) / max(sum(h["seconds"] for h in timed), 1e-9), 1),
           "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3) if device == "cuda" else None,
           "planned_gb": round(_planned_gb(base, 1, tokens, checkpointing, attn, len(samples)), 3)}
    del result
    return row


def rollout_pass(base: Path, sample, device: str) -> dict:
    """One forward of the rollout pass (``rollout_attention``, every layer folded in): seconds, peak memory."""
    import torch

    from rgenima_lib.attribution.rollout import StreamingRollout, rollout_attention
    from rgenima_lib.bench.bench_llm import RIT_DIM
    from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
    from rgenima_lib.models.prompting import PromptCollator

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=RIT_DIM), dtype=dtype)
    model.to(device).eval()
    batch = {k: v.to(device) for k, v in PromptCollator(model.tokenizer, with_labels=False)([sample]).items()}
    n_tokens = batch["attention_mask"].shape[1]
    # One column: the share of the first half of the prompt (what the rollout carries does not change its cost).
    columns = torch.zeros(1, n_tokens, 1, device=device)
    columns[:, : n_tokens // 2] = 1.0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    tracker = StreamingRollout(columns, valid=batch["attention_mask"].bool())
    with torch.no_grad(), rollout_attention(model, tracker):
        model(**batch, use_cache=False, logits_to_keep=1)
    if device == "cuda":
        torch.cuda.synchronize()
    return {"tokens": int(n_tokens), "layers_seen": tracker.n_layers, "seconds": round(time.perf_counter() - start, 3),
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3) if device == "cuda" else None,
            "finite": bool(torch.isfinite(tracker.state).all())}


def gpu_check(device: str, tiny: bool, layers: int, steps: int) -> dict:
    """Every run of the check (module docstring) as one JSON-ready dict."""
    import torch

    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.train.finetune import prepare_torch_extensions_dir

    _distributed_env()
    prepare_torch_extensions_dir()
    attns = ["sdpa"]
    try:
        from rgenima_lib.train.resource_plan import require_attn_implementation

        if device == "cuda":
            attns.append(require_attn_implementation("flash_attention_2"))
    except ValueError:
        pass  # not installed: the check runs SDPA only and says so
    out = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (tiny smoke run)",
           "model": f"qwen2 random init, {'tiny' if tiny else '7B width'}, {layers} layers", "tiny": tiny,
           "micro_batch": 1, "flash_attention_2": "flash_attention_2" in attns, "runs": []}
    samples = paper_scale_samples(steps + 1)
    # The panel's gene symbols (each SNP-text line starts with one) join the tokenizer's corpus.
    genes = sorted({line.split(":", 1)[0] for line in samples[0].genome_text.splitlines() if ":" in line})
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo_llm(Path(tmp) / "llm", n_layers=layers, **(TINY if tiny else WIDTH_7B),
                              gene_names=genes, dtype=torch.bfloat16)
        for attn in attns:
            for checkpointing in ((True,) if attn != "sdpa" else (False, True)):
                row = finetune_run(base, samples, attn, checkpointing, steps, device)
                out["runs"].append(row)
                print(row, flush=True)
        out["rollout"] = rollout_pass(base, samples[0], device)
        print(out["rollout"], flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgenima_lib.bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/bench/gpu.json"))
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (the CPU smoke run)")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the 7B-width model")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU and finds none (torch.cuda.is_available() is False); nothing written. "
              "Run it on a GPU node, or check the code path on CPU with --device cpu --tiny.", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print("--device cpu runs the tiny smoke model only: add --tiny.", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = gpu_check(args.device, args.tiny, args.layers, args.steps)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    write_json(result, args.out)
    print(f"wrote {args.out}", flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
