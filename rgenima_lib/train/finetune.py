"""Stage-2 fine-tuning of connector + LLM (paper 4.2.3 eq. 11, 4.5.2), plain PyTorch or DeepSpeed ZeRO-3.

The paper: full-parameter fine-tuning, AdamW, bf16, lr 2e-6, 3 epochs, 16
samples per GPU, DeepSpeed ZeRO-3 on 8 A100s, visual encoders frozen (their
tokens are read from the embedding cache). Here:

- Launch: ``torchrun --nproc_per_node N -m rgenima_lib.cli finetune ...`` (N = GPUs of
  the job) with ``--deepspeed config/deepspeed/zero3.json``; one process and no
  ``--deepspeed`` runs a plain PyTorch loop with the same data order, loss and
  optimizer (the CPU demo). On CPU the process group uses gloo.
- A standard loop over ``deepspeed.initialize`` (engine.backward / engine.step)
  rather than the HF Trainer: the batches are our collator's (spliced visual
  tokens, explicit position ids), and the loop stays visible.
- ``"auto"`` entries of the DeepSpeed JSON are filled from our config, as the
  HF integration does: lr, weight decay, clipping, micro batch, accumulation,
  bf16, bucket sizes from the hidden size. AdamW is ``torch.optim.AdamW``
  (``torch_adam: true``): no JIT-compiled CUDA op is needed.
- Under ZeRO-3 the LLM is created partitioned (``HfDeepSpeedConfig`` before
  ``from_pretrained``), so no rank ever holds all 7B weights; at the end the
  16-bit weights are gathered to rank 0 (``stage3_gather_16bit_weights_on_model_save``)
  and written as an ordinary checkpoint (:meth:`RGenIMA.save_checkpoint`),
  loadable without DeepSpeed.
- Precision: bf16 on CUDA when ``bf16`` is set; fp32 on CPU (CPU bf16 matmuls
  are slow and the demo is about correctness).
- Constant learning rate, no warm-up (the paper names none); gradient clipping
  at ``max_grad_norm`` (1.0, DeepSpeed's and HF's usual value; the paper names none).
- Sampling: each epoch a seeded shuffle of the samples, dealt to ranks like
  ``DistributedSampler`` (wrap-around so every rank does the same number of
  steps, which ZeRO-3's collectives require).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rgenima_lib.errors import InputDataError
from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
from rgenima_lib.models.prompting import PromptCollator, PromptSample
from rgenima_lib.settings import check_section

log = logging.getLogger("rgenima")


@dataclass
class FinetuneConfig:
    """Optimisation settings (``train`` section of the config; paper 4.5.2 defaults).

    Attributes
    ----------
    lr : float
        AdamW learning rate (paper 2e-6).
    epochs : int
        Passes over the training samples (paper 3).
    batch_size_per_gpu : int
        Micro batch per process. The paper's 16 does not fit an 80 GB GPU at 2.8k tokens
        (docs/resources.md): 8 x ``grad_accum`` 2 keeps its effective batch.
    grad_accum : int
        Micro batches per optimizer step.
    bf16 : bool
        bf16 weights and compute on CUDA (paper); ignored on CPU (fp32).
    weight_decay : float
    max_grad_norm : float
        Gradient clipping (0 = off).
    max_steps : int or None
        Stop after this many optimizer steps (tests, benchmarks).
    gradient_checkpointing : bool
        Recompute each decoder layer in the backward pass (one more forward's FLOPs): needed
        for paper-length prompts on 7B (``rgenima plan``).
    seed : int
        Connector init, sample order.
    log_every : int
        Log the loss every this many steps.
    """

    lr: float = 2e-6
    epochs: int = 3
    batch_size_per_gpu: int = 8
    grad_accum: int = 2
    bf16: bool = True
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    gradient_checkpointing: bool = True
    seed: int = 0
    log_every: int = 10

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        """From the config's ``train`` section plus the seed: every field, no other key (:func:`check_section`).

        The field defaults serve direct construction (tests, benchmarks); the workflow's
        values come from the config schema alone.
        """
        return cls(**check_section(d, cls.__dataclass_fields__, "train"))


# ----------------------------------------------------------------------------- distributed helpers
def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


# A torch-extensions build takes about a minute here; a lock older than this belongs to a build that was killed.
STALE_EXTENSION_LOCK_S = 600


def prepare_torch_extensions_dir() -> Path:
    """Point DeepSpeed's JIT op builds at this environment's own folder and refuse a stale build lock.

    DeepSpeed builds its CPU communication op (``deepspeed_shm_comm``) with torch's
    ``cpp_extension.load`` into ``TORCH_EXTENSIONS_DIR``, by default one folder in the
    user's home shared by every environment. A build killed half-way leaves its
    ``lock`` file there, and every later build waits on it forever. So, unless the
    user set ``TORCH_EXTENSIONS_DIR``, builds go to ``<python prefix>/torch_extensions``
    (inside the virtual environment), and a lock older than
    ``STALE_EXTENSION_LOCK_S`` stops the run with its path and the fix.

    Returns
    -------
    Path
        The extensions folder in use.

    Raises
    ------
    InputDataError
        A stale build lock.
    """
    if not os.environ.get("TORCH_EXTENSIONS_DIR"):
        prefix = Path(sys.prefix)
        root = prefix / "torch_extensions" if os.access(prefix, os.W_OK) else Path.cwd() / ".torch_extensions"
        os.environ["TORCH_EXTENSIONS_DIR"] = str(root)
    root = Path(os.environ["TORCH_EXTENSIONS_DIR"])
    now = time.time()
    for lock in sorted(root.glob("*/lock")) + sorted(root.glob("*/*/lock")):
        age = now - lock.stat().st_mtime
        if age > STALE_EXTENSION_LOCK_S:
            raise InputDataError(
                f"a DeepSpeed op build lock is {age / 60:.0f} min old: an earlier build was interrupted, and every "
                "later build would wait on it forever.", path=lock,
                fix=f"make sure no other run is building DeepSpeed ops, then delete {lock} (and its folder's "
                    "half-built files) and rerun.")
    return root


def init_distributed() -> torch.device:
    """Join torchrun's process group (nccl on GPU, gloo on CPU) and return this rank's device."""
    prepare_torch_extensions_dir()
    import deepspeed

    _, _, local_rank = dist_info()
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
    return device


def load_deepspeed_config(path_or_dict) -> dict:
    """The DeepSpeed JSON as a dict (a copy)."""
    if isinstance(path_or_dict, dict):
        return copy.deepcopy(path_or_dict)
    return json.loads(Path(path_or_dict).read_text())


def fill_deepspeed_auto(ds: dict, cfg: FinetuneConfig, *, world_size: int, hidden_size: int, bf16: bool) -> dict:
    """Replace ``"auto"`` values by our settings (as the HF DeepSpeed integration does).

    Parameters
    ----------
    ds : dict
        DeepSpeed config (modified in place and returned).
    cfg : FinetuneConfig
    world_size : int
    hidden_size : int
        LLM hidden size; sets ZeRO-3 bucket sizes like HF does.
    bf16 : bool
        Effective bf16 (False on CPU).
    """
    def put(d: dict, key: str, value):
        if d.get(key, "auto") == "auto":
            d[key] = value

    put(ds, "train_micro_batch_size_per_gpu", cfg.batch_size_per_gpu)
    put(ds, "gradient_accumulation_steps", cfg.grad_accum)
    put(ds, "train_batch_size", cfg.batch_size_per_gpu * cfg.grad_accum * world_size)
    put(ds, "gradient_clipping", cfg.max_grad_norm)
    ds.setdefault("bf16", {})
    put(ds["bf16"], "enabled", bf16)
    if not bf16:
        ds["bf16"]["enabled"] = False
    opt = ds.get("optimizer", {}).get("params", {})
    put(opt, "lr", cfg.lr)
    put(opt, "weight_decay", cfg.weight_decay)
    zero = ds.get("zero_optimization", {})
    put(zero, "reduce_bucket_size", hidden_size * hidden_size)
    put(zero, "stage3_prefetch_bucket_size", int(0.9 * hidden_size * hidden_size))
    put(zero, "stage3_param_persistence_threshold", 10 * hidden_size)
    return ds


def shard_order(n: int, epoch: int, seed: int, rank: int, world: int) -> np.ndarray:
    """Indices of this rank's samples for ``epoch``: seeded shuffle, wrap-around padding, strided deal."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    total = int(math.ceil(n / world)) * world
    order = np.concatenate([order, order[: total - n]]) if total > n else order
    return order[rank::world]


# ----------------------------------------------------------------------------- the loop
@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes
    ----------
    history : list of dict
        One row per optimizer step: step, epoch, loss (mean over ranks), tokens, seconds.
    summary : dict
        Steps, samples, tokens/s, final loss, precision, world size, DeepSpeed stage.
    module : RGenIMA
        The trained module (parameters partitioned under ZeRO-3).
    engine : object or None
        The DeepSpeed engine (None for the plain loop).
    """

    history: list
    summary: dict
    module: RGenIMA
    engine: object = None


def finetune(base_path: str | Path, samples: Sequence[PromptSample], out_dir: str | Path | None,
             mllm_config: MLLMConfig, cfg: FinetuneConfig, deepspeed_config=None) -> FinetuneResult:
    """Fine-tune connector + LLM on ``samples`` and write a checkpoint (paper 4.2.3, 4.5.2).

    Parameters
    ----------
    base_path : path
        Local LLM folder (real weights or the demo LLM).
    samples : sequence of PromptSample
        Training samples with ``stage`` set (the fold's train side only).
    out_dir : path or None
        Checkpoint folder (written by rank 0, atomically); None = do not save.
    mllm_config : MLLMConfig
    cfg : FinetuneConfig
    deepspeed_config : path, dict or None
        DeepSpeed JSON (``config/deepspeed/zero3.json``); None = plain PyTorch loop.

    Returns
    -------
    FinetuneResult
    """
    if not samples:
        raise ValueError("no training samples")
    if any(s.stage is None for s in samples):
        raise ValueError("every training sample needs a stage")
    rank, world, _ = dist_info()
    use_ds = deepspeed_config is not None
    if world > 1 and not use_ds:
        raise ValueError("several processes need --deepspeed (the plain loop is single-process)")
    device = init_distributed() if use_ds else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = cfg.bf16 and device.type == "cuda"
    dtype = torch.bfloat16 if bf16 else torch.float32
    torch.manual_seed(cfg.seed)

    engine, ds, ds_keepalive = None, None, None
    if use_ds:
        import deepspeed
        from transformers import AutoConfig
        from transformers.integrations import HfDeepSpeedConfig

        hidden = AutoConfig.from_pretrained(str(base_path)).hidden_size
        ds = fill_deepspeed_auto(load_deepspeed_config(deepspeed_config), cfg, world_size=world,
                                 hidden_size=hidden, bf16=bf16)
        if ds.get("zero_optimization", {}).get("stage") == 3:
            # Must stay referenced while from_pretrained runs: it makes the load ZeRO-3 partitioned.
            ds_keepalive = HfDeepSpeedConfig(ds)
    model = RGenIMA.from_base(base_path, mllm_config, dtype=dtype, seed=cfg.seed)
    if cfg.gradient_checkpointing:
        model.causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.causal_lm.config.use_cache = False
    params = [p for p in model.parameters() if p.requires_grad]
    if use_ds:
        engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params, config=ds)
        module = engine.module
    else:
        model.to(device)
        module = model
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    module.train()

    collate = PromptCollator(module.tokenizer, with_labels=True)
    micro = cfg.batch_size_per_gpu
    history, step, micro_step, t_start, n_tokens_total = [], 0, 0, time.perf_counter(), 0
    window = {"loss": 0.0, "n": 0, "tokens": 0, "t0": time.perf_counter()}
    done = False
    per_epoch = math.ceil(math.ceil(len(samples) / world) / micro) // cfg.grad_accum
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    bar = tqdm(total=total, desc="finetune", unit="step", disable=None if rank == 0 else True, leave=False)
    for epoch in range(cfg.epochs):
        order = shard_order(len(samples), epoch, cfg.seed, rank, world)
        for start in range(0, len(order), micro):
            batch = collate([samples[i] for i in order[start:start + micro]])
            batch = {k: v.to(device) for k, v in batch.items()}
            n_tok = int(batch["attention_mask"].sum())
            if use_ds:
                loss = engine(**batch, loss_logits_only=True).loss
                engine.backward(loss)
                engine.step()
                stepped = (micro_step + 1) % cfg.grad_accum == 0
            else:
                loss = module(**batch, loss_logits_only=True).loss
                (loss / cfg.grad_accum).backward()
                stepped = (micro_step + 1) % cfg.grad_accum == 0
                if stepped:
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            micro_step += 1
            window["loss"] += float(loss.detach())
            window["n"] += 1
            window["tokens"] += n_tok
            n_tokens_total += n_tok
            if stepped:
                step += 1
                mean_loss = window["loss"] / window["n"]
                if world > 1:
                    t = torch.tensor([mean_loss], device=device)
                    torch.distributed.all_reduce(t)
                    mean_loss = float(t) / world
                now = time.perf_counter()
                history.append({"step": step, "epoch": epoch, "loss": mean_loss, "tokens": window["tokens"] * world,
                                "seconds": now - window["t0"]})
                if step % cfg.log_every == 0 or step == 1:
                    log.info("step %d (epoch %d): loss %.4f", step, epoch, mean_loss)
                window = {"loss": 0.0, "n": 0, "tokens": 0, "t0": now}
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    done = True
                    break
        if done:
            break
    bar.close()
    elapsed = time.perf_counter() - t_start
    zero_stage = ds.get("zero_optimization", {}).get("stage", 0) if ds else None
    summary = {"steps": step, "samples": len(samples), "epochs_run": (epoch + 1), "world_size": world,
               "precision": "bf16" if bf16 else "fp32", "device": device.type, "deepspeed_zero_stage": zero_stage,
               "train_seconds": elapsed, "tokens_per_s": n_tokens_total * world / elapsed if elapsed else None,
               "final_loss": history[-1]["loss"] if history else None, "finetune_config": asdict(cfg),
               "lora": mllm_config.lora}
    if out_dir is not None:
        save_trained(module, engine, out_dir, extra={"train": summary})
    del ds_keepalive
    return FinetuneResult(history, summary, module, engine)


def save_trained(module: RGenIMA, engine, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write the checkpoint; under ZeRO-3 gather the 16-bit weights to rank 0 first (all ranks must call)."""
    rank = dist_info()[0]
    state_dict = None
    if engine is not None:
        if engine.zero_optimization_partition_weights():
            if not engine.zero_gather_16bit_weights_on_model_save():
                raise ValueError("ZeRO-3 needs stage3_gather_16bit_weights_on_model_save: true to write a "
                                 "loadable checkpoint (set it in the DeepSpeed JSON)")
            # Gathered one layer at a time onto rank 0's CPU (what accelerate / HF Trainer call too).
            state_dict = engine._zero3_consolidated_16bit_state_dict()
        else:
            state_dict = engine.module.state_dict()
    if rank == 0:
        module.save_checkpoint(out_dir, state_dict=state_dict, extra=extra)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
