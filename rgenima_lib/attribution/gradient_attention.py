"""Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, ICCV), method ``gradient_attention``.

"Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers", self-attention rule: relevance starts as R = I and every layer adds

    R <- R + Ā R,   Ā = mean_heads((∇A ⊙ A)^+),

A the layer's attention probabilities, ∇A the gradient of f
(:mod:`~rgenima_lib.attribution.end_to_end`, the predicted stage) with respect to them.

Both transformers, one backward pass:

- LLM: R_llm = (I + Ā_L) ⋯ (I + Ā_1); only the label rows and the ROI token rows are needed,
  computed top-down as row vectors (v <- v + v Ā_l), O(rows · T²) per layer. Gene g: the
  label rows' relevance summed over gene g's tokens (mean over the label rows); ROI token r:
  their relevance at r's position; ROI–gene: ROI token r's row summed over gene g's tokens.
- RiT: R_rit = (I + Ā_L) ⋯ (I + Ā_1) over its N ROI tokens (row r: relevance of input ROI s
  for token r). The LLM's ROI-token relevances are carried onto the inputs as in the
  end-to-end rollout (:mod:`~rgenima_lib.attribution.end_to_end_rollout`).

``sink_share``: the first token's part of the label rows' relevance (R includes I, so the
rows do not sum to one; it is reported for reference only).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch

from rgenima_lib.attribution.batch_result import BatchAttribution
from rgenima_lib.attribution.end_to_end import (ImageInputs, answer_batch, encode_tokens, gene_sums,
                                                gene_token_counts, label_logprob, roi_values)
from rgenima_lib.attribution.rollout import attention_modules
from rgenima_lib.models.attention import attention_implementation
from rgenima_lib.models.rit import keep_attention


def relevance_weights(attn: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Ā = mean_heads((∇A ⊙ A)^+): float[B, H, T, T] twice -> float32[B, T, T]."""
    return (grad.float() * attn.float()).clamp_min(0).mean(1)


def relevance_rows(weights: Sequence[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """Rows of R = (I + Ā_L) ⋯ (I + Ā_1), top-down.

    Parameters
    ----------
    weights : sequence of float[B, T, T]
        Ā_l, bottom first.
    rows : float[B, K, T]
        Row selectors (one-hot rows of I).

    Returns
    -------
    float32[B, K, T]
        rows @ R.
    """
    v = rows.float()
    for w in reversed(list(weights)):
        v = v + torch.bmm(v, w)
    return v


def relevance_matrix(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """R = (I + Ā_L) ⋯ (I + Ā_1) built bottom-up (R <- R + Ā R): float[B, N, N] each -> float32[B, N, N]."""
    r = None
    for w in weights:
        eye = torch.eye(w.shape[-1], dtype=torch.float32, device=w.device).expand_as(w)
        r = eye.clone() if r is None else r
        r = r + torch.bmm(w.float(), r)
    return r


@contextlib.contextmanager
def _llm_attention(model):
    """Collect every LLM layer's attention probabilities (with their graph) during the forward passes in the block."""
    found: list[torch.Tensor] = []

    def hook(_module, _args, output):
        if not isinstance(output, tuple) or output[1] is None:
            raise RuntimeError("the attention module returned no weights: load the model with "
                               "attn_implementation='eager' for attribution")
        found.append(output[1])

    handles = [m.register_forward_hook(hook) for m in attention_modules(model)]
    try:
        # Chefer's rule needs each layer's probabilities with their graph: only eager attention returns them
        with attention_implementation(model, "eager"):
            yield found
    finally:
        for handle in handles:
            handle.remove()


def gradient_attention_batch(model, image: ImageInputs, samples, spans_list, genes: Sequence[str],
                             predicted: Sequence[str]) -> BatchAttribution:
    """Chefer relevance of a batch through the LLM and the RiT.

    Parameters
    ----------
    model : RGenIMA
        Any attention implementation (the pass switches to eager).
    image : ImageInputs
    samples : sequence of PromptSample, length B
    spans_list : sequence of spans
    genes : sequence of str, length G
    predicted : sequence of str, length B

    Returns
    -------
    BatchAttribution
        gene_importance [B, G], roi_importance [B, R] (input ROIs), roi_gene [B, R, G],
        sink_share [B], gene_tokens [B, G].
    """
    batch = answer_batch(model, samples, spans_list, genes, predicted)
    x = image.patches([s.subject for s in samples])
    with keep_attention(image.encoder) as blocks, _llm_attention(model) as llm_attn:
        tokens = encode_tokens(image.encoder, x["rois"], x["presence"], x["volume"])
        rit_attn = [b.attention for b in blocks]
        f = label_logprob(model, batch, tokens)
    grads = torch.autograd.grad(f.sum(), llm_attn + rit_attn)
    llm_w = [relevance_weights(a.detach(), g) for a, g in zip(llm_attn, grads[:len(llm_attn)])]
    rit_w = [relevance_weights(a.detach(), g) for a, g in zip(rit_attn, grads[len(llm_attn):])]
    b_size, width, n_genes = len(samples), batch.width, len(genes)
    n_rois = len(batch.maps[0].roi_positions)
    select = torch.zeros(b_size, 1 + n_rois, width)
    for b, m in enumerate(batch.maps):
        select[b, 0, batch.offset(b) + m.answer_rows] = 1.0 / len(m.answer_rows)
        select[b, 1 + np.arange(n_rois), batch.offset(b) + m.roi_positions] = 1.0
    rel = relevance_rows(llm_w, select.to(llm_w[0].device)).cpu().numpy()
    answer, roi_rows = rel[:, 0], rel[:, 1:]
    roi_token = roi_values(answer, batch)
    roi_gene_token = gene_sums(roi_rows, batch, n_genes)
    encoder = relevance_matrix(rit_w).cpu().numpy()
    sink = np.array([answer[b, batch.offset(b)] / max(answer[b].sum(), 1e-12) for b in range(b_size)], np.float32)
    return BatchAttribution(gene_sums(answer, batch, n_genes), np.einsum("br,brs->bs", roi_token, encoder),
                            np.einsum("brs,brg->bsg", encoder, roi_gene_token), sink, gene_token_counts(batch, n_genes))
