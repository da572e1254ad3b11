"""RiT speed and memory (issue 5): training steps of the full-kernel Conv3D beside the Tucker kernel; cache size.

Paper widths throughout (N = 109 ROIs, d = 768, 4 ViT layers, 8 heads), 2 CPU threads.

- ``steps_S32``: one AdamW training step (forward, backward, update) at the demo's S = 32,
  batch 1, of the paper's full-kernel Conv3D (the baseline) and of the rank-16 Tucker kernel,
  interleaved in one process (``paired_timings``: warm-up, round-robin repetitions, median and
  spread, per-round ratio), with that process's resident memory (both models, gradients and AdamW moments resident);
- ``memory`` (``full`` only, a minute or more per configuration): each configuration's peak
  resident memory (``ru_maxrss``) in a fresh process of its own, so that it is that one training
  step's alone: model, input batch, activations, gradients and, with ``optimizer``, AdamW's two
  moments: S = 32 (batch 2) and the paper's S = 96 (batch 1: fp32 forward + backward, fp32 and
  bf16 with AdamW, Tucker 16); ``full`` also times S = 96 full kernel beside Tucker 16 as above.
  S = 96 full-kernel runs need ~12 GB (fp32) and are skipped, with the reason and the computed
  figure, when the machine has less memory available;
- ``embedding_cache``: size of the cached encoder tokens per 1,000 subjects.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

from rgenima_lib.bench.paired import paired_timings

PAPER_WIDTHS = {"n_rois": 109, "dim": 768, "depth": 4, "heads": 8, "dropout": 0.1}


def _mem_available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("nan")


def _resident_gb() -> float:
    """This process's resident memory now (Linux ``/proc/self/statm``), GB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e9


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


def interleaved_steps(configs: dict[str, dict], batch: int, repeats: int) -> dict:
    """One AdamW training step of each RiT configuration, timed interleaved in this process.

    Parameters
    ----------
    configs : mapping of name -> RiTConfig keyword arguments
    batch : int
        Subjects per step (random patches, all ROIs present).
    repeats : int

    Returns
    -------
    dict
        ``paired_timings`` record, each repetition one step, ratios ``<name>_over_<last name>`` for
        every configuration but the last (the last is the measure, the others its baselines), and
        ``process_rss_gb_models_resident`` (this process's resident memory with every configuration
        built, its gradients and AdamW moments).
    """
    import torch
    from torch.nn import functional as F

    from rgenima_lib.models.rit import RiT, RiTConfig
    from rgenima_lib.train.classifier import FitConfig, make_optimizer

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    steps = {}
    for name, config in configs.items():
        cfg = RiTConfig(**config)
        model = RiT(cfg).train()
        opt = make_optimizer(model, FitConfig(lr=1e-4))
        rois = torch.randn(batch, cfg.n_rois, cfg.roi_size, cfg.roi_size, cfg.roi_size)
        presence = torch.ones(batch, cfg.n_rois, dtype=torch.bool)
        y = torch.randint(0, cfg.n_classes, (batch,))

        def step(model=model, opt=opt, rois=rois, presence=presence, y=y):
            F.cross_entropy(model(rois, presence), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps[name] = step
    measure = list(configs)[-1]
    try:
        timings = paired_timings(steps, repeats=repeats,
                                 ratios={f"{name}_over_{measure}": (name, measure) for name in list(configs)[:-1]})
    finally:
        torch.set_num_threads(threads)
    # Resident now, not the high-water mark: this process may have run other benchmarks before.
    timings["process_rss_gb_models_resident"] = round(_resident_gb(), 3)
    return timings


def run(out_dir: Path, full: bool) -> dict:
    """Benchmark RiT training steps (demo S = 32; with ``full`` the paper's S = 96) and the embedding cache.

    Parameters
    ----------
    out_dir : Path
        results/bench (only a temporary probe file is written there).
    full : bool
        Also the S = 96 configurations (memory, and timings where the full kernel fits).

    Returns
    -------
    dict
        ``conv3d``: kernel sizes; ``steps_S32`` (and ``steps_S96``): paired timings; ``memory``: one
        record per configuration; ``embedding_cache``.
    """
    from rgenima_lib.models.rit import patch_kernel_size

    out_dir.mkdir(parents=True, exist_ok=True)
    s32 = {"full_kernel_fp32": {**PAPER_WIDTHS, "roi_size": 32}, "tucker16": {**PAPER_WIDTHS, "roi_size": 32,
                                                                              "patch_rank": 16}}
    result = {"conv3d": {"S32": patch_kernel_size(32), "S96": patch_kernel_size(96),
                         "S96_tucker16": patch_kernel_size(96, rank=16)},
              "steps_S32": {"batch": 1, **interleaved_steps(s32, batch=1, repeats=3)}}
    if full:
        s96_full_need = _step_memory_estimate(96, 1, 4, True)
        if _mem_available_gb() > s96_full_need + 4.0:  # both models live in one process
            result["steps_S96"] = {"batch": 1, **interleaved_steps(
                {"full_kernel_fp32": {**PAPER_WIDTHS, "roi_size": 96},
                 "tucker16": {**PAPER_WIDTHS, "roi_size": 96, "patch_rank": 16}}, batch=1, repeats=3)}
        else:
            result["steps_S96"] = {"skipped": f"needs ~{s96_full_need + 4.0:.1f} GB, "
                                              f"{_mem_available_gb():.1f} GB available"}
        runs = [
            ("demo_S32_fp32_adamw", s32["full_kernel_fp32"], 2, 3, True, _step_memory_estimate(32, 2, 4, True)),
            ("demo_S32_tucker16_adamw", s32["tucker16"], 2, 3, True, _step_memory_estimate(32, 2, 4, True, 16)),
            ("paper_S96_tucker16_adamw", {**PAPER_WIDTHS, "roi_size": 96, "patch_rank": 16}, 1, 3, True,
             _step_memory_estimate(96, 1, 4, True, 16)),
            ("paper_S96_fp32_fwd_bwd", {**PAPER_WIDTHS, "roi_size": 96}, 1, 3, False,
             _step_memory_estimate(96, 1, 4, False)),
            ("paper_S96_fp32_adamw", {**PAPER_WIDTHS, "roi_size": 96}, 1, 3, True, s96_full_need),
            ("paper_S96_bf16_adamw", {**PAPER_WIDTHS, "roi_size": 96, "patch_dtype": "bfloat16"}, 1, 3, True,
             _step_memory_estimate(96, 1, 2, True)),
        ]
        result["memory"] = [_measure(*r) for r in runs]
    result["embedding_cache"] = _cache_sizes(out_dir)
    return result
