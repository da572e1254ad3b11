"""Will the fine-tuning fit the GPUs it asks for? Per-GPU memory and time per epoch of stage-2 training.

The plan of one backbone under DeepSpeed ZeRO-3 (``config/deepspeed/zero3.json``,
bf16, AdamW) on ``G`` GPUs of ``M`` GB, from the model's ``config.json`` and the
config's ``train`` and ``llm.plan`` sections. ``N`` is the parameter count, ``b``
the micro-batch per GPU, ``T`` the tokens per sample, ``L`` the layers, ``h`` the
hidden size, ``i`` the MLP size, ``kv`` the key/value width (KV heads x head size).

Memory per GPU (bytes):

- ZeRO-3 shards (the ZeRO paper's 2 + 2 + 12 bytes per parameter): bf16 weights
  ``2N/G``, bf16 gradients ``2N/G``, fp32 master weights and Adam's two moments ``12N/G``.
- Gathered parameters: ZeRO-3 gathers each module's full bf16 weights for its
  forward and backward and prefetches the next: ``2 x 2 x`` the largest module
  (one decoder layer, or the embedding matrix), none on one GPU.
- Optimizer step: DeepSpeed upcasts one sub-group of gradients to fp32 at a time,
  ``4 x min(sub_group_size = 1e9, N/G)``.
- Activations kept for the backward pass, per layer and token, bf16 compute
  (:data:`ACTIVATION_BYTES`): ``20h + 8i + 4kv + 4 heads + 4 head_dim + 8`` with
  SDPA or flash attention. The terms, as counted in transformers' Qwen2 / Llama
  decoder layers: two RMSNorms (fp32 input 4h, bf16 normalised 2h, bf16 output 2h,
  fp32 rsqrt 4 each); q and the attention output, which is the o_proj input (2h each);
  k, v (2kv each); the log-sum-exp (fp32, 4 per head); rotary cos, sin (2 head_dim
  each); the MLP's gate, SiLU, up and product (2i each). Eager attention instead keeps
  k and v expanded to all heads and a transposed copy of its output (2h each, no
  log-sum-exp) plus the probabilities, fp32 softmax output and its bf16 copy:
  :data:`EAGER_SCORE_BYTES` = 6 bytes per head and token pair. Measured on CPU by
  ``python -m rgenima_lib.bench --only llm_memory`` (``results/bench/llm_memory.json``):
  one layer at Qwen2.5-7B's and Llama-3-8B's widths, 2,800 tokens, bf16, bytes of the
  tensors autograd saves; the formula matches to the byte (see docs/resources.md). A
  CUDA SDPA kernel whose output needs a transposed copy adds 2h (under 2 %).
  Without gradient checkpointing every layer keeps all of that: ``b T L x``.
  With it each layer keeps its bf16 input, ``2h`` per token, and the layer being
  recomputed during the backward holds its full set once: ``b T (2h L + x)``.
- Attention mask: a padded batch gets a (b, 1, T, T) mask, bool for SDPA, bf16 for
  eager; flash attention unpads instead and needs none.
- Logits: the loss reads the answer positions only (``loss_logits_only``):
  ``b x LABEL_TOKENS x vocab`` fp32 logits and their gradient.
- A fixed reserve for the CUDA context, NCCL buffers and allocator fragmentation
  (``llm.plan.overhead_gb``).

Time: ``6 N_layers`` FLOPs per token (forward + backward; ``8`` with checkpointing,
which repeats the forward) with ``N_layers`` the decoder layers' parameters (the
embedding lookup costs nothing and the LM head runs at the answer positions only),
plus attention ``4 L h T`` per token forward (x3, x4 with checkpointing; no
discount for causal masking), at ``utilisation`` of ``peak_tflops`` per GPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rgenima_lib.errors import InputDataError

GIB = 2 ** 30
ZERO3_BYTES_PER_PARAM = {"weights": 2, "gradients": 2, "optimizer": 12}
# DeepSpeed's stage-3 default ``sub_group_size``: gradients upcast to fp32 one group at a time.
ZERO3_SUB_GROUP = 1_000_000_000
EAGER_SCORE_BYTES = 6  # fp32 softmax output (4) and its bf16 copy (2), per head and token pair
LABEL_TOKENS = 16  # answer positions the loss reads (a stage name and the end of the turn, with room)
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class ModelShape:
    """The widths of a decoder-only LLM that decide its memory (a Hugging Face ``config.json``).

    Attributes
    ----------
    arch : str
        ``model_type`` (``qwen2``, ``llama``); Qwen2 has q/k/v biases.
    hidden, intermediate, layers, heads, kv_heads, vocab : int
    tied_embeddings : bool
        The LM head shares the input embedding matrix.
    head_dim : int or None
        Per-head width; None = hidden / heads.
    """

    arch: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    head_dim: int | None = None

    @property
    def head_width(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_width

    def layer_params(self) -> int:
        """Parameters of one decoder layer (attention, MLP, two RMSNorms)."""
        h, kv, q = self.hidden, self.kv_width, self.heads * self.head_width
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.arch == "qwen2" else 0)
        return attention + 3 * h * self.intermediate + 2 * h

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def n_params(self) -> int:
        """All parameters: layers, embeddings (twice unless tied), the final norm."""
        return (self.layers * self.layer_params() + self.embedding_params() * (1 if self.tied_embeddings else 2)
                + self.hidden)

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        """From a parsed Hugging Face ``config.json``."""
        return cls(arch=config.get("model_type", ""), hidden=config["hidden_size"],
                   intermediate=config["intermediate_size"], layers=config["num_hidden_layers"],
                   heads=config["num_attention_heads"],
                   kv_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
                   vocab=config["vocab_size"], tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                   head_dim=config.get("head_dim"))

    @classmethod
    def from_model_folder(cls, path: str | Path) -> "ModelShape":
        """From ``<path>/config.json`` (or ``path`` itself when it is the JSON file).

        Raises
        ------
        InputDataError
            No such file, not JSON, or a width missing.
        """
        path = Path(path)
        config_path = path if path.suffix == ".json" else path / "config.json"
        try:
            return cls.from_config(json.loads(config_path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise InputDataError(f"cannot read the model's widths from config.json ({exc!r}).", path=config_path,
                                 fix="point the backbone's model_path at a Hugging Face model folder.") from exc


@dataclass(frozen=True)
class PlanSettings:
    """What the plan is made for: the ``train`` section, the GPUs, the data (``llm.plan``).

    Attributes
    ----------
    batch_size_per_gpu, grad_accum : int
        Micro-batch per GPU and micro-batches per optimizer step.
    gradient_checkpointing, bf16 : bool
    epochs : int
    gpus : int
        GPUs of one fine-tuning job; 0 = CPU run (no GPU memory to check).
    gpu_memory_gb : float
        Memory of one GPU, GB (10^9 bytes, as vendors state it).
    peak_tflops : float
        Dense bf16 peak of one GPU (A100: 312).
    utilisation : float
        Fraction of the peak a training step reaches.
    overhead_gb : float
        Reserve for the CUDA context, NCCL and allocator fragmentation.
    tokens_per_sample : int
        Prompt plus answer, visual tokens included (a micro-batch pads to its longest).
    train_samples : int
        Training samples per epoch (one fold's train side).
    attn_implementation : str
        ``sdpa``, ``eager`` or ``flash_attention_2``.
    """

    batch_size_per_gpu: int
    grad_accum: int
    gradient_checkpointing: bool
    bf16: bool
    epochs: int
    gpus: int
    gpu_memory_gb: float
    peak_tflops: float
    utilisation: float
    overhead_gb: float
    tokens_per_sample: int
    train_samples: int
    attn_implementation: str = "sdpa"

    @classmethod
    def from_sections(cls, train: dict, plan: dict, *, gpus: int, attn_implementation: str = "sdpa",
                      train_samples: int | None = None) -> "PlanSettings":
        """From the config's ``train`` and ``llm.plan`` sections (other keys ignored)."""
        return cls(batch_size_per_gpu=train["batch_size_per_gpu"], grad_accum=train["grad_accum"],
                   gradient_checkpointing=train["gradient_checkpointing"], bf16=train["bf16"],
                   epochs=train["epochs"], gpus=gpus, gpu_memory_gb=plan["gpu_memory_gb"],
                   peak_tflops=plan["peak_tflops"], utilisation=plan["utilisation"],
                   overhead_gb=plan["overhead_gb"], tokens_per_sample=plan["tokens_per_sample"],
                   train_samples=train_samples if train_samples is not None else plan["train_samples"],
                   attn_implementation=attn_implementation)

    @property
    def effective_batch(self) -> int:
        return self.batch_size_per_gpu * self.grad_accum * max(self.gpus, 1)


# ----------------------------------------------------------------------------- activations
def activation_bytes_per_token(shape: ModelShape, attn: str) -> int:
    """Bytes one decoder layer keeps per token for the backward pass, bf16 compute (the T-linear part).

    Parameters
    ----------
    shape : ModelShape
    attn : str
        ``sdpa`` / ``flash_attention_2`` (k, v at KV width, a log-sum-exp) or ``eager``
        (k, v expanded to every head).

    Returns
    -------
    int
        Bytes per token and layer; the T^2 part is :func:`attention_score_bytes`.
    """
    h, i, d = shape.hidden, shape.intermediate, shape.head_width
    shared = 20 * h + 8 * i + 4 * d + 8  # norms, q, attention output, MLP, rotary, rsqrt
    if attn == "eager":
        return shared + 4 * h
    return shared + 4 * shape.kv_width + 4 * shape.heads


def attention_score_bytes(shape: ModelShape, tokens: int, attn: str) -> int:
    """Bytes of attention probabilities one layer keeps for one sequence: 0 unless eager."""
    return EAGER_SCORE_BYTES * shape.heads * tokens * tokens if attn == "eager" else 0


def layer_activation_bytes(shape: ModelShape, tokens: int, *, micro_batch: int, attn: str,
                           checkpoint: bool) -> int:
    """Bytes one decoder layer keeps until its backward, for ``micro_batch`` sequences of ``tokens``.

    With checkpointing that is the layer's bf16 input only (its activations come back when it is recomputed).
    """
    if checkpoint:
        return micro_batch * tokens * 2 * shape.hidden
    return micro_batch * (tokens * activation_bytes_per_token(shape, attn) + attention_score_bytes(shape, tokens, attn))


def attention_mask_bytes(shape: ModelShape, tokens: int, *, micro_batch: int, attn: str) -> int:
    """The padded batch's (b, 1, T, T) mask: bool for SDPA, bf16 for eager, none for flash attention."""
    per_element = {"sdpa": 1, "eager": 2}.get(attn, 0)
    return micro_batch * tokens * tokens * per_element if micro_batch > 1 else 0


# ----------------------------------------------------------------------------- the plan
def memory_terms(shape: ModelShape, s: PlanSettings) -> dict[str, float]:
    """Bytes per GPU of each part of a ZeRO-3 training step (module docstring), in order.

    Returns
    -------
    dict
        Term name -> bytes; their sum is the planned peak.
    """
    n, g = shape.n_params(), max(s.gpus, 1)
    scale = 1 if s.bf16 else 2  # fp32 compute doubles every activation (a close upper bound)
    b, t = s.batch_size_per_gpu, s.tokens_per_sample
    full_layer = layer_activation_bytes(shape, t, micro_batch=b, attn=s.attn_implementation, checkpoint=False)
    kept = layer_activation_bytes(shape, t, micro_batch=b, attn=s.attn_implementation,
                                  checkpoint=s.gradient_checkpointing)
    activations = shape.layers * kept + (full_layer if s.gradient_checkpointing else 0)
    largest_module = max(shape.layer_params(), shape.embedding_params())
    return {
        "weights (bf16 shard)": ZERO3_BYTES_PER_PARAM["weights"] * n / g,
        "gradients (bf16 shard)": ZERO3_BYTES_PER_PARAM["gradients"] * n / g,
        "optimizer (fp32 master + Adam moments, shard)": ZERO3_BYTES_PER_PARAM["optimizer"] * n / g,
        "gathered parameters (ZeRO-3 working set)": 2 * 2 * largest_module if g > 1 else 0,
        "optimizer step fp32 gradients (one sub-group)": 4 * min(ZERO3_SUB_GROUP, n / g),
        "activations": scale * activations,
        "attention mask": scale * attention_mask_bytes(shape, t, micro_batch=b, attn=s.attn_implementation),
        "answer logits (fp32, with gradient)": 2 * 4 * b * LABEL_TOKENS * shape.vocab,
        "CUDA context, NCCL, fragmentation reserve": s.overhead_gb * 1e9,
    }


def training_flops_per_token(shape: ModelShape, s: PlanSettings) -> float:
    """FLOPs of one trained token: 6 (8 with checkpointing) x layer parameters, plus attention."""
    passes = 4 if s.gradient_checkpointing else 3  # forward, backward = 2 forwards, the recomputed forward
    dense = 2 * passes * shape.layers * shape.layer_params()
    attention = passes * 4 * shape.layers * shape.hidden * s.tokens_per_sample
    return dense + attention


@dataclass
class ResourcePlan:
    """A plan's figures: memory terms, totals, tokens and time per epoch, the verdict.

    Attributes
    ----------
    model : str
    settings : PlanSettings
    shape : ModelShape
    n_params : int
    memory_bytes : dict
        Term -> bytes per GPU (:func:`memory_terms`).
    activations_without_checkpointing_gb, activations_with_checkpointing_gb : float
        The activation term both ways, for comparison.
    total_gb, gpu_memory_gb : float
    fits : bool
        ``total_gb <= gpu_memory_gb``; True for a CPU run (gpus 0).
    tokens_per_epoch, steps_per_epoch : int
    hours_per_epoch, hours_total : float
        At ``utilisation`` of the stated peak on ``gpus`` GPUs (None for a CPU run).
    """

    model: str
    settings: PlanSettings
    shape: ModelShape
    n_params: int
    memory_bytes: dict
    activations_without_checkpointing_gb: float
    activations_with_checkpointing_gb: float
    total_gb: float
    gpu_memory_gb: float
    fits: bool
    tokens_per_epoch: int
    steps_per_epoch: int
    hours_per_epoch: float | None
    hours_total: float | None

    def to_json(self) -> dict:
        return {**asdict(self), "memory_gb": {k: round(v / 1e9, 3) for k, v in self.memory_bytes.items()},
                "effective_batch": self.settings.effective_batch}

    def rows(self) -> list[dict]:
        """The memory table: one row per term, then the total and the GPU's memory (GB)."""
        rows = [{"term": k, "gb": round(v / 1e9, 3)} for k, v in self.memory_bytes.items()]
        return rows + [{"term": "total per GPU", "gb": round(self.total_gb, 3)},
                       {"term": "GPU memory", "gb": self.gpu_memory_gb if self.settings.gpus else None}]


def make_plan(shape: ModelShape, s: PlanSettings, model: str = "") -> ResourcePlan:
    """The plan of ``shape`` trained with ``s`` (figures only; :func:`check_plan` refuses)."""
    terms = memory_terms(shape, s)
    both = {ck: memory_terms(shape, replace(s, gradient_checkpointing=ck))["activations"] for ck in (False, True)}
    total_gb = sum(terms.values()) / 1e9
    tokens = s.train_samples * s.tokens_per_sample
    steps = math.ceil(s.train_samples / s.effective_batch)
    hours = None
    if s.gpus:
        hours = tokens * training_flops_per_token(shape, s) / (s.gpus * s.peak_tflops * 1e12 * s.utilisation) / 3600
    return ResourcePlan(model=model, settings=s, shape=shape, n_params=shape.n_params(), memory_bytes=terms,
                        activations_without_checkpointing_gb=both[False] / 1e9,
                        activations_with_checkpointing_gb=both[True] / 1e9, total_gb=total_gb,
                        gpu_memory_gb=s.gpu_memory_gb, fits=(not s.gpus) or total_gb <= s.gpu_memory_gb,
                        tokens_per_epoch=tokens, steps_per_epoch=steps, hours_per_epoch=hours,
                        hours_total=None if hours is None else hours * s.epochs)


def _fits(shape: ModelShape, s: PlanSettings) -> bool:
    return make_plan(shape, s).fits


def fixes(shape: ModelShape, s: PlanSettings) -> list[str]:
    """Config changes that would make ``s`` fit, most direct first; each keeps the effective batch."""
    out = []
    if not s.gradient_checkpointing and _fits(shape, replace(s, gradient_checkpointing=True)):
        out.append("turn on gradient checkpointing (train.gradient_checkpointing: true)")
    per_gpu = s.batch_size_per_gpu * s.grad_accum
    # Micro-batches that divide the per-GPU batch keep the effective batch exactly.
    micros = [m for m in range(s.batch_size_per_gpu - 1, 0, -1) if per_gpu % m == 0]
    for checkpointing in dict.fromkeys((s.gradient_checkpointing, True)):
        fitting = [m for m in micros if _fits(shape, replace(s, gradient_checkpointing=checkpointing,
                                                               batch_size_per_gpu=m, grad_accum=per_gpu // m))]
        if fitting:
            change = "" if checkpointing == s.gradient_checkpointing else "with gradient checkpointing on, "
            out.append(f"{change}lower the micro-batch and raise accumulation (train.batch_size_per_gpu: "
                       f"{fitting[0]}, train.grad_accum: {per_gpu // fitting[0]})")
            break
    if s.gpus:
        more = [g for g in range(s.gpus + 1, 8 * s.gpus + 1) if _fits(shape, replace(s, gpus=g))]
        if more:
            out.append(f"more GPUs (llm.gpus_per_finetune: {more[0]})")
    if not out:
        out.append("a GPU with more memory (llm.plan.gpu_memory_gb), shorter prompts, or LoRA (llm.lora: true)")
    return out


def check_plan(plan: ResourcePlan, path: str | Path | None = None) -> ResourcePlan:
    """Return ``plan`` if it fits its GPUs.

    Raises
    ------
    InputDataError
        It does not: the need, the largest term and the fixes that would fit.
    """
    if plan.fits:
        return plan
    s = plan.settings
    largest = max(plan.memory_bytes, key=plan.memory_bytes.get)
    raise InputDataError(
        f"fine-tuning {plan.model or 'the model'} ({plan.n_params / 1e9:.2f}B parameters) needs "
        f"{plan.total_gb:.0f} GB per GPU on {s.gpus} GPUs of {s.gpu_memory_gb:g} GB (micro-batch "
        f"{s.batch_size_per_gpu} x {s.tokens_per_sample} tokens, gradient checkpointing "
        f"{'on' if s.gradient_checkpointing else 'off'}, {s.attn_implementation}); the largest part is "
        f"{largest}: {plan.memory_bytes[largest] / 1e9:.0f} GB.", path=path,
        fix="; or ".join(fixes(plan.shape, s)) + ".")


def require_attn_implementation(name: str) -> str:
    """``name`` if this environment can run it.

    Raises
    ------
    InputDataError
        Unknown, or ``flash_attention_2`` without the ``flash_attn`` package.
    """
    if name not in ATTN_IMPLEMENTATIONS:
        raise InputDataError(f"unknown attention implementation {name!r}.",
                             fix=f"set llm.attn_implementation to one of {', '.join(ATTN_IMPLEMENTATIONS)}.")
    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise InputDataError("llm.attn_implementation is flash_attention_2 but the flash_attn package is not "
                             "importable in this environment.",
                             fix="install it where the GPUs are (pip install flash-attn --no-build-isolation, "
                                 "CUDA build), or set llm.attn_implementation: sdpa (same memory formula).")
    return name
