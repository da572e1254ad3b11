"""The rollout pass against an SDPA forward and the eager pass it replaced: time and peak memory, demo LLM.

Three passes over the same T random tokens of a demo LLM (Qwen2 architecture, hidden 256, 4 heads on
2 kv heads, MLP 512), the rollout ones carrying R @ M for K = 215 indicator columns (sink + 105 genes
+ 109 ROIs):

- ``sdpa``: the plain forward (``use_cache=False, logits_to_keep=1``), what scoring costs;
- ``blockwise``: :func:`~rgenima_lib.attribution.rollout.rollout_attention`, each layer's attention
  computed once, in blocks of 64 query rows: the block's per-head probabilities give both the layer's
  output (P V, SDPA's up to float rounding) and the rows of the head-mean attention folded into the
  state (one product with [X ⊙ w, w] per block);
- ``eager``: :func:`~rgenima_lib.attribution.rollout.eager_rollout_hooks`, eager attention and its
  whole float[H, T, T] weights per layer (the pass before this change).

Time: one process, the passes interleaved round-robin by
:func:`~rgenima_lib.bench.paired.paired_timings` (after one untimed call each, which also checks
that ``blockwise`` and ``eager`` agree), medians, spreads and per-round ratios.

Memory: each pass once in a fresh process, its peak resident memory (``VmHWM``, the high-water
mark restarted through ``/proc/self/clear_refs`` once the model is loaded and a 64-token warm-up of
that pass has run) minus the resident memory at that moment. A fresh process so that no other pass's
heap is in it; resident memory rather than a tensor count because it includes what kernels allocate
inside (SDPA's float copy of a mask, BLAS buffers). ``MALLOC_MMAP_THRESHOLD_`` is pinned at 64 kB in those processes so that every block
buffer is its own mapping, returned on free, and the peak is what was live at once, not
allocator slack.

One thread per process: the machine's 2 cores are shared with other jobs, and two threads that
wait on each other at every kernel stall whenever either is descheduled (spreads of 2x and more
were seen). Default sizes: T = 2048, 6 layers (about 1.5 minutes). ``full=True``: T = 8192 with 28
layers (the depth of Qwen2.5-7B) for ``sdpa`` and ``blockwise``, and T = 8192 with 2 layers for all
three (one eager pass of 28 layers at 8k takes about 2 minutes here, and the timing calls each
pass four times); memory at 8k is measured on
the 2-layer model, since a streaming pass holds one layer at a time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

K_COLUMNS = 1 + 105 + 109
THREADS = 1
MODEL = {"arch": "qwen2", "hidden_size": 256, "n_heads": 4, "n_kv_heads": 2, "intermediate_size": 512}
PASSES = ("sdpa", "blockwise", "eager")


def _inputs(model, length: int, seed: int = 0):
    """Random token ids int64[1, T] and indicator columns float32[1, T, K] (one column per token)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    ids = torch.from_numpy(rng.integers(10, min(model.config.vocab_size, 400), (1, length)))
    columns = torch.zeros(1, length, K_COLUMNS)
    columns[0, torch.arange(length), torch.from_numpy(rng.integers(0, K_COLUMNS, length))] = 1.0
    return ids, columns


def _pass(model, name: str, ids, columns):
    """One forward pass of kind ``name``; the rollout state float[1, T, K] (None for ``sdpa``)."""
    import torch

    from rgenima_lib.attribution.rollout import StreamingRollout, eager_rollout_hooks, rollout_attention

    with torch.no_grad():
        if name == "sdpa":
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
            return None
        tracker = StreamingRollout(columns)
        with (rollout_attention if name == "blockwise" else eager_rollout_hooks)(model, tracker):
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
        return tracker.state


def _load(path: str):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(THREADS)
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()


def _status_gb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its high-water mark) of this process, GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e6  # kB -> GB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _memory_worker(spec: dict, queue) -> None:
    model = _load(spec["model"])
    ids, columns = _inputs(model, spec["length"])
    _pass(model, spec["pass"], ids[:, :64], columns[:, :64])
    # Loading the weights peaks above any pass: restart the high-water mark here (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_gb("VmRSS")
    _pass(model, spec["pass"], ids, columns)
    queue.put(round(_status_gb("VmHWM") - base, 4))


def peak_memory_gb(model_path: Path, name: str, length: int) -> float | None:
    """Peak resident memory of one pass above its process's post-load footprint, GB (None if it failed)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_worker, args=({"model": str(model_path), "pass": name, "length": length},
                                                    queue))
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # read by the child's C library at start
    try:
        proc.start()
    finally:
        if saved is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    proc.join()
    return queue.get() if proc.exitcode == 0 else None


def measure(model_path: Path, length: int, passes=PASSES, repeats: int = 3, memory: bool = True) -> dict:
    """Interleaved timings of ``passes`` at ``length`` tokens, their ratios, agreement and peak memory."""
    from rgenima_lib.bench.paired import paired_timings

    model = _load(str(model_path))
    ids, columns = _inputs(model, length)
    states = {name: _pass(model, name, ids, columns) for name in passes}  # the untimed first call of each
    ratios = {f"{name}_over_sdpa": (name, "sdpa") for name in passes if name != "sdpa"}
    if "eager" in passes and "blockwise" in passes:
        ratios["eager_over_blockwise"] = ("eager", "blockwise")
    timings = paired_timings({name: (lambda n=name: _pass(model, n, ids, columns)) for name in passes},
                             repeats=repeats, warmup=False, ratios=ratios)
    row = {"tokens": length, "layers": model.config.num_hidden_layers, "timings": timings}
    if "eager" in passes and "blockwise" in passes:
        row["max_abs_difference_blockwise_eager"] = float((states["blockwise"] - states["eager"]).abs().max())
    if memory:
        peaks = {name: peak_memory_gb(model_path, name, length) for name in passes}
        row["peak_rss_gb_above_model"] = peaks
        if peaks.get("sdpa"):
            row["memory_ratios"] = {f"{name}_over_sdpa": round(peaks[name] / peaks["sdpa"], 2)
                                    for name in passes if name != "sdpa" and peaks.get(name) is not None}
    print(row, flush=True)
    return row


def run(out_dir: Path, full: bool) -> dict:
    from rgenima_lib.models.demo_llm import build_demo_llm

    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        def model(n_layers: int) -> Path:
            return build_demo_llm(Path(tmp) / f"demo{n_layers}", n_layers=n_layers, **MODEL)

        if full:
            rows.append(measure(model(28), 8192, passes=("sdpa", "blockwise"), memory=False))
            rows.append(measure(model(2), 8192))
        else:
            rows.append(measure(model(6), 2048))
    return {"model": f"demo LLM ({MODEL})", "k_columns": K_COLUMNS, "threads": THREADS,
            "memory": "peak resident memory of a fresh process per pass above its post-load footprint",
            "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
