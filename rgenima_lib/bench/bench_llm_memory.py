"""Activation memory of real-width decoder layers, measured on CPU, against the resource planner's formula.

One decoder layer of transformers' ``Qwen2DecoderLayer`` at Qwen2.5-7B's widths
(hidden 3,584, MLP 18,944, 28 heads, 4 KV heads) and one ``LlamaDecoderLayer`` at
Llama-3-8B's (4,096, 14,336, 32, 8), random init, bf16 weights and compute, one
sequence of 2,800 tokens (the paper-scale prompt, ``bench_llm``), 2 CPU threads.

Measure: the bytes of every tensor autograd saves for the backward pass during
one forward with gradients on (``torch.autograd.graph.saved_tensors_hooks``),
counted once per storage and without the parameters themselves. That is what a
training step keeps alive per layer until its backward runs, in bf16 exactly as
on a GPU (CPU SDPA uses the flash-style kernel and saves the log-sum-exp only,
like the CUDA kernels). Forward only: a backward at this width takes ~45 s per
layer on 2 shared cores; ``full`` adds one forward + backward of two layers per
model in a fresh process and its peak resident memory (fixed malloc mmap
threshold, so freed tensors leave the resident set), less the parameter gradients.

Variants per model: SDPA without and with gradient checkpointing (the layer run
under ``torch.utils.checkpoint``, non-reentrant, as ``gradient_checkpointing_enable``
does), and eager attention at 768 tokens for the coefficient of the T^2 term.
Each is set next to :func:`rgenima_lib.train.resource_plan.layer_activation_bytes`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rgenima_lib.train.resource_plan import ModelShape, layer_activation_bytes

TOKENS = 2800
EAGER_TOKENS = 768  # (at 1,024 both models happen to save exactly the same bytes)
THREADS = 2
WIDTHS = {
    "qwen2.5-7b": ModelShape(arch="qwen2", hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4,
                             vocab=152064, tied_embeddings=False),
    "llama-3-8b": ModelShape(arch="llama", hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8,
                             vocab=128256, tied_embeddings=False),
}


def _decoder(shape: ModelShape, attn: str, n_layers: int = 1):
    """``n_layers`` random-init decoder layers of ``shape`` in bf16 and the model's rotary embedding."""
    import torch
    from transformers import LlamaConfig, Qwen2Config
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

    config_cls, layer_cls, rotary_cls = {"qwen2": (Qwen2Config, Qwen2DecoderLayer, Qwen2RotaryEmbedding),
                                         "llama": (LlamaConfig, LlamaDecoderLayer, LlamaRotaryEmbedding)}[shape.arch]
    cfg = config_cls(hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_attention_heads=shape.heads,
                     num_key_value_heads=shape.kv_heads, num_hidden_layers=n_layers, vocab_size=1024,
                     attention_dropout=0.0)
    cfg._attn_implementation = attn
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16: no fp32 copy of the weights
    try:
        layers = torch.nn.ModuleList([layer_cls(cfg, i) for i in range(n_layers)]).train()
        rotary = rotary_cls(cfg)
    finally:
        torch.set_default_dtype(previous)
    return layers, rotary


def _forward(layers, rotary, hidden_states, checkpoint: bool):
    """Run the layers as the model does in training (position ids 0..T-1, causal, no padding)."""
    import torch

    positions = torch.arange(hidden_states.shape[1])[None]
    position_embeddings = rotary(hidden_states, positions)
    for layer in layers:
        kwargs = {"attention_mask": None, "position_ids": positions, "position_embeddings": position_embeddings}
        if checkpoint:
            out = torch.utils.checkpoint.checkpoint(layer, hidden_states, use_reentrant=False, **kwargs)
        else:
            out = layer(hidden_states, **kwargs)
        hidden_states = out[0] if isinstance(out, tuple) else out
    return hidden_states


def saved_bytes(shape: ModelShape, attn: str, tokens: int, checkpoint: bool) -> dict:
    """Bytes autograd saves in one forward of one layer (unique storages, parameters excluded).

    Returns
    -------
    dict
        ``saved_bytes`` (total), ``per_token`` (saved_bytes / tokens), ``n_tensors``, ``seconds``.
    """
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    layers, rotary = _decoder(shape, attn)
    parameter_storages = {p.untyped_storage().data_ptr() for p in layers.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    hidden_states = torch.randn(1, tokens, shape.hidden, dtype=torch.bfloat16, requires_grad=True)
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = _forward(layers, rotary, hidden_states, checkpoint)
    seconds = time.perf_counter() - start
    del out
    total = sum(storages.values())
    return {"saved_bytes": total, "per_token": round(total / tokens, 1), "n_tensors": len(storages),
            "seconds": round(seconds, 2)}


def _train_step_peak(spec: dict) -> dict:
    """In a fresh process: forward + backward of two layers, peak resident memory above the loaded weights."""
    import resource

    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    shape = WIDTHS[spec["model"]]
    layers, rotary = _decoder(shape, "sdpa", n_layers=2)
    hidden_states = torch.randn(1, spec["tokens"], shape.hidden, dtype=torch.bfloat16, requires_grad=True)
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    start = time.perf_counter()
    _forward(layers, rotary, hidden_states, spec["checkpoint"]).float().sum().backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    grads = sum(p.grad.numel() * p.grad.element_size() for p in layers.parameters())
    return {"peak_above_weights_bytes": peak - resident - grads, "parameter_grad_bytes": grads,
            "seconds": round(seconds, 1)}


def train_step_peak(model: str, checkpoint: bool, tokens: int = TOKENS) -> dict:
    """:func:`_train_step_peak` in a subprocess (a clean resident-set peak)."""
    spec = json.dumps({"model": model, "checkpoint": checkpoint, "tokens": tokens})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(THREADS)}
    proc = subprocess.run([sys.executable, "-m", "rgenima_lib.bench.bench_llm_memory", "--step", spec],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(out_dir: Path, full: bool) -> dict:
    """Measured saved-tensor bytes per layer next to the planner's formula, per model and variant."""
    rows = []
    for name, shape in WIDTHS.items():
        for attn, tokens, checkpoint in (("sdpa", TOKENS, False), ("sdpa", TOKENS, True),
                                         ("eager", EAGER_TOKENS, False)):
            measured = saved_bytes(shape, attn, tokens, checkpoint)
            predicted = layer_activation_bytes(shape, tokens, micro_batch=1, attn=attn, checkpoint=checkpoint)
            row = {"model": name, "attn": attn, "tokens": tokens, "checkpointing": checkpoint, **measured,
                   "formula_bytes": predicted, "formula_over_measured": round(predicted / measured["saved_bytes"], 4)}
            rows.append(row)
            print(row, flush=True)
    result = {"dtype": "bf16 weights and compute (CPU)", "threads": THREADS, "micro_batch": 1,
              "measure": "bytes of tensors saved for backward in one forward of one layer "
                         "(unique storages, parameters excluded); forward only", "rows": rows}
    if full:
        steps = []
        for name in WIDTHS:
            for checkpoint in (False, True):
                step = {"model": name, "layers": 2, "tokens": TOKENS, "checkpointing": checkpoint,
                        **train_step_peak(name, checkpoint)}
                steps.append(step)
                print(step, flush=True)
        result["train_step_peak_rss"] = steps
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--step":
        print(json.dumps(_train_step_peak(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m rgenima_lib.bench --only llm_memory [--full]")
