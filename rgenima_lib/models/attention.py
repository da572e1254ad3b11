"""Choosing the attention implementation per forward pass, not per loaded model.

A model is loaded once; its passes want different attention kernels: scoring and generation want
SDPA (no attention weights, O(T) memory), the rollout pass a function of its own that also hands
each layer's attention to a tracker (:mod:`rgenima_lib.attribution.rollout`). Both go through the
Hugging Face ``AttentionInterface``, which every Qwen2 / Llama attention module consults on each call,
so switching is a config change and no weights move.
"""

from __future__ import annotations

import contextlib
from typing import Callable

PREDICTION_ATTENTION = "sdpa"
"""The implementation of the scoring and generation passes."""


def hf_model(model):
    """The Hugging Face ``PreTrainedModel`` inside an :class:`~rgenima_lib.models.mllm.RGenIMA`, or ``model`` itself."""
    return getattr(model, "causal_lm", model)


def register_attention(name: str, function: Callable) -> None:
    """Register ``function`` as attention implementation ``name``, with SDPA's boolean masks.

    A name unknown to the mask interface would make the model build no mask at all (padding
    included), so the mask builder is registered beside the function.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, sdpa_mask)


@contextlib.contextmanager
def attention_implementation(model, name: str):
    """Run the forward passes inside the block with attention implementation ``name``; restore it after.

    Parameters
    ----------
    model : RGenIMA or PreTrainedModel
    name : str
        ``"sdpa"``, ``"eager"`` or a name given to :func:`register_attention`.
    """
    target = hf_model(model)
    before = target.config._attn_implementation
    if before != name:
        target.set_attn_implementation(name)
    try:
        yield model
    finally:
        if target.config._attn_implementation != before:
            target.set_attn_implementation(before)
