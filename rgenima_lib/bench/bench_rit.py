"""RiT speed and memory (issue 5): training-step throughput on CPU, the full-kernel Conv3D, cache size.

Each configuration runs in a fresh process, so its peak resident memory (``ru_maxrss``) is
that one training step's alone: model, input batch, activations, gradients and, when
``optimizer`` is on, AdamW's two moments. Paper widths throughout (N = 109 ROIs, d = 768,
4 ViT layers, 8 heads); batch 2 at the demo's S = 32, batch 1 at the paper's S = 96. The
S = 96 full-kernel runs need ~12 GB (fp32) and are skipped, with the reason and the
computed figure, when the machine has less memory available.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

PAPER_WIDTHS = {"n_rois": 109, "dim": 768, "depth": 4, "heads": 8, "dropout": 0.1}


def _mem_available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("nan")


def _step_worker(spec: dict, queue) -> None:
    """Child process: build the model, run ``steps`` training steps, report times and peak RSS."""
    import torch
    from torch.nn import functional as F

    from rgenima_lib.models.rit import RiT, RiTConfig
    from rgenima_lib.train.classifier import FitConfig, make_optimizer

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    base = rss()
    cfg = RiTConfig(**spec["config"])
    t0 = time.perf_counter()
    model = RiT(cfg).train()
    build_s = time.perf_counter() - t0
    # The training loop's own optimizer, so the memory measured is the memory training needs.
    opt = make_optimizer(model, FitConfig(lr=1e-4)) if spec["optimizer"] else None
    b, s = spec["batch"], cfg.roi_size
    rois = torch.randn(b, cfg.n_rois, s, s, s)
    presence = torch.ones(b, cfg.n_rois, dtype=torch.bool)
    y = torch.randint(0, cfg.n_classes, (b,))
    fwd_bwd, full = [], []
    for _ in range(spec["steps"]):
        t = time.perf_counter()
        loss = F.cross_entropy(model(rois, presence), y)
        loss.backward()
        fwd_bwd.append(time.perf_counter() - t)
        if opt is not None:
            opt.step()
        full.append(time.perf_counter() - t)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
    timed = slice(1, None) if spec["steps"] > 1 else slice(None)  # the first step warms up allocators/kernels
    queue.put({
        "batch": b, "threads": torch.get_num_threads(), "steps_timed": len(fwd_bwd[timed]),
        "model_build_s": round(build_s, 2),
        "forward_backward_s_per_step": round(float(np.mean(fwd_bwd[timed])), 3),
        "samples_per_s_forward_backward": round(b / float(np.mean(fwd_bwd[timed])), 3),
        "samples_per_s_with_adamw_step": round(b / float(np.mean(full[timed])), 3) if opt is not None else None,
        "peak_rss_gb": round(rss(), 3),
        "peak_rss_gb_above_imports": round(rss() - base, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "patch_kernel_weights": model.patch.n_kernel_weights(),
    })


def _measure(name: str, config: dict, batch: int, steps: int, optimizer: bool, need_gb: float) -> dict:
    available = _mem_available_gb()
    record = {"name": name, "config": config, "optimizer": "AdamW" if optimizer else None,
              "memory_needed_gb_estimate": round(need_gb, 2), "memory_available_gb": round(available, 2)}
    if np.isfinite(available) and available < need_gb + 2.0:
        record["skipped"] = f"needs ~{need_gb:.1f} GB, {available:.1f} GB available"
        return record
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    spec = {"config": config, "batch": batch, "steps": steps, "optimizer": optimizer,
            "threads": min(2, os.cpu_count() or 1)}
    proc = ctx.Process(target=_step_worker, args=(spec, queue))
    proc.start()
    import queue as queue_mod

    deadline = time.monotonic() + 1800
    while True:
        try:
            record.update(queue.get(timeout=5))
            break
        except queue_mod.Empty:
            # A child killed for memory never reports: stop waiting as soon as it is gone.
            if not proc.is_alive() or time.monotonic() > deadline:
                proc.kill()
                record["failed"] = f"worker ended without a result (exit code {proc.exitcode}; out of memory?)"
                break
    proc.join(timeout=60)
    print(f"  {name}: {record.get('samples_per_s_forward_backward', record.get('skipped', record.get('failed')))}",
          flush=True)
    return record


def _step_memory_estimate(s: int, batch: int, dtype_bytes: int, optimizer: bool, rank: int | None = None) -> float:
    """GB: patch weights + gradient (+ 2 AdamW moments) + input batch + saved copy, ViT ignored (< 0.5 GB)."""
    from rgenima_lib.models.rit import patch_kernel_size

    n = patch_kernel_size(s, 768, rank)["weights"]
    weights = n * dtype_bytes * (4 if optimizer else 2)
    inputs = batch * 109 * s ** 3 * 4 * (1 + (dtype_bytes == 2) * 0.5)
    return (weights + inputs) / 1e9 + 0.8


def _cache_sizes(out_dir: Path) -> dict:
    from rgenima_lib.models.embedding_cache import save_embeddings

    rng = np.random.default_rng(0)
    out = {}
    tmp = out_dir / "_cache_probe.safetensors"
    for encoder, (n_tok, dim, n_sub) in {"rit": (109, 768, 200), "med3d": (1, 512, 1000)}.items():
        subjects = [f"{941:03d}_S_{i:04d}" for i in range(n_sub)]
        save_embeddings(tmp, subjects, rng.normal(size=(n_sub, n_tok, dim)).astype(np.float16),
                        np.ones((n_sub, n_tok), np.uint8), {"encoder": encoder})
        size = tmp.stat().st_size
        out[encoder] = {"tokens": n_tok, "dim": dim, "subjects_written": n_sub,
                        "mb_per_1000_subjects": round(size * 1000 / n_sub / 1e6, 2)}
        tmp.unlink()
    return out


def run(out_dir: Path, full: bool) -> dict:
    """Benchmark RiT training steps (demo S = 32, paper S = 96) and the embedding cache.

    Parameters
    ----------
    out_dir : Path
        results/bench (only a temporary probe file is written there).
    full : bool
        Also time three steps instead of two at S = 96.

    Returns
    -------
    dict
        ``conv3d``: kernel sizes; ``steps``: one record per configuration; ``embedding_cache``.
    """
    from rgenima_lib.models.rit import patch_kernel_size

    out_dir.mkdir(parents=True, exist_ok=True)
    s96_steps = 3 if full else 2
    runs = [
        ("demo_S32_fp32_adamw", {**PAPER_WIDTHS, "roi_size": 32}, 2, 3, True, _step_memory_estimate(32, 2, 4, True)),
        ("paper_S96_tucker16_adamw", {**PAPER_WIDTHS, "roi_size": 96, "patch_rank": 16}, 1, s96_steps, True,
         _step_memory_estimate(96, 1, 4, True, 16)),
        ("paper_S96_fp32_fwd_bwd", {**PAPER_WIDTHS, "roi_size": 96}, 1, s96_steps, False,
         _step_memory_estimate(96, 1, 4, False)),
        ("paper_S96_fp32_adamw", {**PAPER_WIDTHS, "roi_size": 96}, 1, s96_steps, True,
         _step_memory_estimate(96, 1, 4, True)),
        ("paper_S96_bf16_adamw", {**PAPER_WIDTHS, "roi_size": 96, "patch_dtype": "bfloat16"}, 1, s96_steps, True,
         _step_memory_estimate(96, 1, 2, True)),
    ]
    steps = [_measure(*r) for r in runs]
    return {
        "conv3d": {"S32": patch_kernel_size(32), "S96": patch_kernel_size(96),
                   "S96_tucker16": patch_kernel_size(96, rank=16)},
        "steps": steps,
        "embedding_cache": _cache_sizes(out_dir),
    }
