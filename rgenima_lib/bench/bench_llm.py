"""Benchmark of the LLM stage (issue 6): prompt length at paper scale, training speed and memory.

- **Prompt length** in tokens at the paper's scale (1,079 SNPs in 105 genes, 109
  ROI tokens; paper 4.4.1, 4.2.1), SNP text written by the genetics stage's
  ``serialize_genome`` (compact and verbose forms) on random genotypes, counted
  with the demo LLM's tokenizer. That tokenizer uses Qwen2's pre-tokenizer
  (one token per digit, spaces apart), so the SNP part counts as Qwen2.5's
  would; the template words and gene names may split differently.
- **CPU training** of the demo LLM (random init, fp32, plain loop, batch 2): one
  optimizer step at the paper's prompt length beside one at the demo's (the
  baseline), interleaved in one fresh process (a warm-up round, then 3 rounds;
  each timed step is the second of its own short run, so model loading and the
  optimizer's first step are left out), as seconds per step with median and
  spread, the per-round ratio, tokens/s (real tokens incl. visual ones), and
  that process's peak resident memory.
- **GPU training** (``python -m rgenima_lib.bench.bench_llm --gpu``, CUDA only):
  a ~0.5B-parameter random-init Qwen2 (Qwen2.5-0.5B shape: hidden 896, 24
  layers, 14 heads, 2 KV heads, MLP 4,864, 151,936 embedding rows, tied) at the
  paper's sequence length, bf16, DeepSpeed ZeRO-3 on one GPU, 16 samples per
  GPU (paper 4.5.2): tokens/s and peak GPU memory, with and without gradient
  checkpointing. Writes ``results/bench/llm_gpu.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rgenima_lib.vocabulary import N_ROIS, STAGES

REPO = Path(__file__).resolve().parents[2]
PAPER_N_SNPS, PAPER_N_GENES, RIT_DIM = 1079, 105, 768
DEMO_N_SNPS = 300  # roughly what the demo cohort keeps after QC (400 variants simulated)


def _genes() -> list[str]:
    import pandas as pd

    panel = pd.read_csv(REPO / "config" / "gene_panel.tsv", sep="\t", comment="#")
    return panel["gene"].astype(str).tolist()


def genome_texts(n_snps: int, n_subjects: int = 8, seed: int = 0, style: str = "compact") -> list[str]:
    """SNP texts of random subjects: ``n_snps`` SNPs spread over the panel's genes, via ``serialize_genome``."""
    import pandas as pd

    from rgenima_lib.genetics.serialize import GenomeLayout, serialize_genome

    rng = np.random.default_rng(seed)
    genes = _genes()[:PAPER_N_GENES]
    # Every gene at least one SNP, the rest spread at random (the paper's 1,079 SNPs in 105 genes).
    per_gene = np.ones(len(genes), int) + np.bincount(rng.integers(0, len(genes), n_snps - len(genes)),
                                                      minlength=len(genes))
    block = np.repeat(np.arange(len(genes)), per_gene)
    snps = pd.DataFrame({"snp": [f"rs{int(x)}" for x in rng.integers(1e5, 1e9, n_snps)], "gene": np.array(genes)[block],
                         "block": block, "a1": rng.choice(list("ACGT"), n_snps),
                         "a2": rng.choice(list("ACGT"), n_snps)})
    layout = GenomeLayout.from_snps(snps)
    maf = rng.uniform(0.05, 0.5, n_snps)
    return [serialize_genome(rng.binomial(2, maf).astype(float), layout, style=style).text for _ in range(n_subjects)]


def prompt_lengths(tokenizer) -> dict:
    """Tokens of the full R-GenIMA sequence at paper scale, per part."""
    from rgenima_lib.models.prompting import answer_text, encode_prompt, end_of_turn_ids

    out = {"n_snps": PAPER_N_SNPS, "n_genes": PAPER_N_GENES, "n_roi_tokens": N_ROIS,
           "tokenizer": "demo LLM tokenizer (byte-level BPE, Qwen2 pre-tokenizer; demo model, random init)"}
    for style in ("compact", "verbose"):
        texts = genome_texts(PAPER_N_SNPS, style=style)
        snp_tokens = np.array([len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts])
        prompt = np.array([len(encode_prompt(tokenizer, t, True).input_ids) for t in texts])
        no_image = np.array([len(encode_prompt(tokenizer, t, False).input_ids) for t in texts])
        answer = len(tokenizer(answer_text("MCI"), add_special_tokens=False)["input_ids"])
        answer += len(end_of_turn_ids(tokenizer))
        out[style] = {"snp_text_chars": float(np.mean([len(t) for t in texts])),
                      "snp_text_tokens": float(snp_tokens.mean()),
                      "tokens_per_snp": float(snp_tokens.mean() / PAPER_N_SNPS),
                      "template_tokens": float((prompt - snp_tokens).mean()),
                      "prompt_text_tokens_with_anchor": float(prompt.mean()),
                      "answer_tokens": answer,
                      # Sequence = prompt with the anchor expanded to the visual tokens, plus the answer.
                      "sequence_tokens_rit": float(prompt.mean() - 1 + N_ROIS + answer),
                      "sequence_tokens_med3d": float(prompt.mean() - 1 + 1 + answer),
                      "sequence_tokens_snp_only": float(no_image.mean() + answer)}
    return out


def _samples(n: int, n_snps: int, n_rois: int, dim: int, seed: int = 0):
    from rgenima_lib.models.prompting import PromptSample

    rng = np.random.default_rng(seed)
    texts = genome_texts(n_snps, n_subjects=n, seed=seed)
    return [PromptSample(f"b{i}", texts[i], STAGES[i % 4], rng.normal(size=(n_rois, dim)).astype(np.float32),
                         np.ones(n_rois, np.uint8)) for i in range(n)]


def cpu_worker(n_snps_per_length: dict[str, int], batch: int, rounds: int) -> dict:
    """CPU training steps at each prompt length, interleaved, in this (fresh) process: demo LLM, fp32.

    Parameters
    ----------
    n_snps_per_length : mapping of name -> SNPs per prompt
        The last is the measure, the others its baselines (ratios ``<last>_over_<other>``).
    batch : int
    rounds : int
        Timed rounds (after one warm-up round).

    Returns
    -------
    dict
        ``step_s``: ``paired_record`` of seconds per optimizer step; ``tokens_per_step`` and
        ``tokens_per_s`` (median) per length; ``peak_rss_mb``, ``threads``, ``parameters``, ``model``.
    """
    import torch

    from rgenima_lib.bench.paired import paired_record, summarise
    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.models.mllm import MLLMConfig
    from rgenima_lib.train.finetune import FinetuneConfig, finetune

    seconds = {name: [] for name in n_snps_per_length}
    tokens = {name: [] for name in n_snps_per_length}
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo_llm(Path(tmp) / "demo", gene_names=_genes(), seed=0)
        samples = {name: _samples(2 * batch, n, N_ROIS, RIT_DIM) for name, n in n_snps_per_length.items()}
        for round_ in range(rounds + 1):
            for name in n_snps_per_length:
                res = finetune(base, samples[name], None, MLLMConfig(visual_dim=RIT_DIM),
                               FinetuneConfig(lr=1e-4, epochs=1, batch_size_per_gpu=batch, grad_accum=1, max_steps=2,
                                                              bf16=False, gradient_checkpointing=False))
                if round_ > 0:  # round 0 warms up the allocator and kernels
                    seconds[name].append(res.history[1]["seconds"])
                    tokens[name].append(res.history[1]["tokens"])
    measure = list(n_snps_per_length)[-1]
    return {"batch": batch, "threads": torch.get_num_threads(), "n_snps": dict(n_snps_per_length),
            "step_s": paired_record(seconds, {f"{measure}_over_{name}": (measure, name)
                                              for name in list(n_snps_per_length)[:-1]}),
            "tokens_per_step": {name: float(np.median(t)) for name, t in tokens.items()},
            "tokens_per_s": {name: round(float(np.median(np.array(tokens[name]) / np.array(seconds[name]))), 1)
                             for name in n_snps_per_length},
            "parameters": sum(p.numel() for p in res.module.parameters()),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "model": "demo LLM (qwen2, hidden 128, 2 layers; demo model, random init)"}


def _run_worker(flag: str, *args) -> dict:
    """Run this module with ``flag`` in a fresh process (its own peak memory); its last stdout line is JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "rgenima_lib.bench.bench_llm", flag, *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(out_dir: Path, full: bool) -> dict:
    """CPU part (see module docstring); the GPU part is ``--gpu``."""
    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.models.mllm import load_llm_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok = load_llm_tokenizer(build_demo_llm(Path(tmp) / "demo", hidden_size=32, n_layers=1, n_heads=2, n_kv_heads=1,
                                            intermediate_size=64, gene_names=_genes()))
        lengths = prompt_lengths(tok)
    cpu = _run_worker("--cpu-worker", DEMO_N_SNPS, PAPER_N_SNPS, 2, 5 if full else 3)
    return {"prompt_length_paper_scale": lengths, "cpu_training": cpu,
            "gpu_training": gpu_refusal(False) or "not run by make bench: python -m rgenima_lib.bench.bench_llm "
                                                 "--gpu writes results/bench/llm_gpu.json"}


QWEN25_05B_SHAPE = dict(hidden_size=896, n_layers=24, n_heads=14, n_kv_heads=2, intermediate_size=4864,
                        embedding_rows=151936, max_positions=32768)
SMOKE_SHAPE = dict(hidden_size=32, n_layers=1, n_heads=2, n_kv_heads=1, intermediate_size=64, embedding_rows=4096)


def _saved_parameters(path: Path) -> int:
    """Parameters of a saved model, from its safetensors headers (tied weights stored once)."""
    from safetensors import safe_open

    total = 0
    for file in Path(path).glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            total += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    return total


def gpu_refusal(smoke: bool) -> str | None:
    """Why ``--gpu`` cannot run here (None when it can): no CUDA device, or no DeepSpeed."""
    import importlib.util

    import torch

    if not smoke and not torch.cuda.is_available():
        return ("bench_llm --gpu: refused, no CUDA device is visible here (torch.cuda.is_available() is False; "
                f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). Run it on a GPU node; "
                "--gpu --smoke checks the same code path on CPU with a tiny model. Nothing was written.")
    if importlib.util.find_spec("deepspeed") is None:
        return "bench_llm --gpu: refused, DeepSpeed is not installed (the GPU part trains with ZeRO-3). Nothing was written."
    return None


def gpu_bench(out: Path, steps: int = 8, batch: int = 16, smoke: bool = False) -> dict:
    """~0.5B random-init Qwen2, paper-length prompts, bf16, ZeRO-3 on one GPU (see module docstring).

    ``smoke=True`` runs the same code path on CPU with a tiny model (checks the
    script before spending GPU time); its numbers mean nothing.
    """
    import torch

    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.models.mllm import MLLMConfig
    from rgenima_lib.train.finetune import FinetuneConfig, finetune

    cuda = torch.cuda.is_available()
    refusal = gpu_refusal(smoke)
    if refusal:
        raise RuntimeError(refusal)
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29561", "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        os.environ.setdefault(key, value)
    results = {"gpu": torch.cuda.get_device_name(0) if cuda else "none (smoke run on CPU)", "batch_per_gpu": batch,
               "timed_steps": steps, "smoke": smoke,
               "model": "Qwen2.5-0.5B-shaped qwen2, random init (demo model, random init)", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo_llm(Path(tmp) / "q05b", **(SMOKE_SHAPE if smoke else QWEN25_05B_SHAPE),
                              gene_names=_genes(), dtype=torch.bfloat16)
        samples = _samples(batch * (steps + 2), PAPER_N_SNPS, N_ROIS, RIT_DIM)
        n_params = _saved_parameters(base) + RIT_DIM * (SMOKE_SHAPE if smoke else QWEN25_05B_SHAPE)["hidden_size"]
        for ckpt in (False, True):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            cfg = FinetuneConfig(lr=2e-6, epochs=1, batch_size_per_gpu=batch, grad_accum=1, max_steps=steps + 2,
                                 bf16=True, gradient_checkpointing=ckpt)
            t0 = time.perf_counter()
            try:
                res = finetune(base, samples, None, MLLMConfig(visual_dim=RIT_DIM), cfg,
                               deepspeed_config=REPO / "config" / "deepspeed" / "zero3.json")
            except torch.cuda.OutOfMemoryError as exc:
                results["runs"].append({"gradient_checkpointing": ckpt, "error": f"OOM: {exc}"[:300]})
                gc.collect()
                torch.cuda.empty_cache()
                continue
            timed = res.history[2:]
            tokens, secs = sum(h["tokens"] for h in timed), sum(h["seconds"] for h in timed)
            results["runs"].append({
                "gradient_checkpointing": ckpt, "parameters": n_params,
                "sequence_tokens": tokens / len(timed) / batch, "tokens_per_s": tokens / secs,
                "samples_per_s": batch * len(timed) / secs, "step_s": secs / len(timed),
                "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                "peak_gpu_reserved_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "final_loss": res.history[-1]["loss"], "wall_s": time.perf_counter() - t0})
            del res
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    from rgenima_lib.io import write_json

    write_json(results, out)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgenima_lib.bench.bench_llm", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the GPU part (CUDA only)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "llm_gpu.json")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="with --gpu: tiny model on CPU, checks the script only")
    parser.add_argument("--cpu-worker", nargs=4, type=int, metavar=("DEMO_SNPS", "PAPER_SNPS", "BATCH", "ROUNDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cpu_worker:
        demo, paper, batch, rounds = args.cpu_worker
        print(json.dumps(cpu_worker({"demo_length": demo, "paper_length": paper}, batch, rounds)))
    elif args.gpu:
        refusal = gpu_refusal(args.smoke)
        if refusal:
            print(refusal, file=sys.stderr)
            return 2
        print(json.dumps(gpu_bench(args.out, args.steps, args.batch, args.smoke), indent=2))
    else:
        parser.error("use --gpu, or run the CPU part through python -m rgenima_lib.bench --only llm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
