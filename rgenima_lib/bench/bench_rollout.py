"""Streaming vs full-matrix attention rollout on the demo LLM (issue 7): time and peak memory at 1k-8k tokens.

Both methods run the same eager forward pass of the demo LLM (``build_demo_llm`` defaults: Qwen2
architecture, hidden 128, 2 layers, 4 heads) over T random tokens and produce the same numbers,
R @ M for K = 215 indicator columns (sink + 105 genes + 109 ROIs):

- ``streaming``: forward hooks fold each layer into X = Â_l X (float32[T, K]) and drop the weights;
- ``full``: ``output_attentions=True`` keeps every layer's float32[H, T, T], then R = Â_L ⋯ Â_1 as dense
  T × T products (float32), then R @ M.

Each (method, T) runs in a fresh process so that its peak resident memory (``ru_maxrss``) is its own;
``peak_rss_gb_above_model`` subtracts the process's footprint after loading the model. ``full=True``
adds an 8-layer variant of the demo LLM (the full product's cost grows with every layer; a 7B backbone
has 28).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

LENGTHS = (1024, 2048, 4096, 8192)
K_COLUMNS = 1 + 105 + 109


def _worker(spec: dict, queue) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from rgenima_lib.attribution.rollout import StreamingRollout, full_rollout, rollout_hooks

    torch.set_num_threads(spec["threads"])
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    model = AutoModelForCausalLM.from_pretrained(spec["model"], attn_implementation="eager").eval()
    t, k = spec["length"], K_COLUMNS
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(10, model.config.vocab_size, (1, t)))
    cols = torch.zeros(1, t, k)
    cols[0, torch.from_numpy(rng.integers(0, t, t)), torch.from_numpy(rng.integers(0, k, t))] = 1.0
    with torch.no_grad():  # warm-up at a short length (allocator, kernels), then measure from here
        model(input_ids=ids[:, :64], use_cache=False, logits_to_keep=1)
    base = rss()
    start = time.perf_counter()
    with torch.no_grad():
        if spec["method"] == "streaming":
            tracker = StreamingRollout(cols)
            with rollout_hooks(model, tracker):
                model(input_ids=ids, use_cache=False, logits_to_keep=1)
            forward_s = None
            result = tracker.state
        else:
            out = model(input_ids=ids, use_cache=False, logits_to_keep=1, output_attentions=True)
            forward_s = time.perf_counter() - start
            result = full_rollout(out.attentions, dtype=torch.float32) @ cols
            del out
    seconds = time.perf_counter() - start
    queue.put({"method": spec["method"], "tokens": t, "layers": model.config.num_hidden_layers,
               "heads": model.config.num_attention_heads, "seconds": round(seconds, 3),
               "forward_seconds": None if forward_s is None else round(forward_s, 3),
               "peak_rss_gb": round(rss(), 3), "peak_rss_gb_above_model": round(rss() - base, 3),
               "checksum": float(result[0, -1].sum())})


def _measure(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(spec, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {**{k: spec[k] for k in ("method", "length")}, "error": f"exit code {proc.exitcode}"}
    return queue.get()


def run(out_dir: Path, full: bool) -> dict:
    from rgenima_lib.models.demo_llm import build_demo_llm

    variants = [2, 8] if full else [2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_layers in variants:
            path = build_demo_llm(Path(tmp) / f"demo{n_layers}", n_layers=n_layers)
            for length in LENGTHS:
                pair = {m: _measure({"model": str(path), "method": m, "length": length, "threads": 2})
                        for m in ("streaming", "full")}
                s, f = pair["streaming"], pair["full"]
                row = {"layers": n_layers, "tokens": length, "streaming": s, "full": f}
                if "error" not in s and "error" not in f:
                    row["time_ratio_full_over_streaming"] = round(f["seconds"] / s["seconds"], 2)
                    row["memory_ratio_full_over_streaming"] = round(
                        f["peak_rss_gb_above_model"] / max(s["peak_rss_gb_above_model"], 1e-3), 2)
                    row["same_result"] = abs(f["checksum"] - s["checksum"]) < 1e-3 * max(abs(f["checksum"]), 1.0)
                rows.append(row)
                print(row, flush=True)
    return {"model": "demo LLM (qwen2, hidden 128, 4 heads)", "k_columns": K_COLUMNS, "threads": 2, "rows": rows}
