"""Attention rollout (Abnar & Zuidema 2020), streamed layer by layer through forward hooks (paper 2.2–2.4, 4.3).

Per layer l the head-mean attention Ā_l (float[T, T]) is mixed with the
residual path and renormalised,

    Â_l = rownorm(0.5 · Ā_l + 0.5 · I),

and the rollout is R = Â_L ⋯ Â_1: R[i, j] is the share of token j in the
representation of position i at the top of the network. Rows of R sum to 1.

What we need from R is small: the answer row(s) against the gene tokens and
the ROI tokens, and the ROI token rows against the gene tokens
(docs/design.md, "Attention rollout"). Each of these is a *sum of columns*
of R over a token set (gene g's tokens, ROI r's token, the first token),
i.e. ``R @ M`` for an indicator matrix
M (float[T, K], K = 1 + n_genes + n_rois = 215). Because

    R @ M = Â_L (⋯ (Â_1 M)),

the product can be carried bottom-up in the order the forward pass visits the
layers: a hook on each attention module receives that layer's weights, updates
X ← Â_l X (float[T, K]) and lets the weights go. Memory is one layer's
attention plus X; cost O(K · T²) per layer instead of the O(T³) of the full
matrix product, and the result is exact (not an approximation).

Why column sums and not rows (docs/design.md, "Attention rollout"): bottom-up
(the order hooks see the layers) rows cannot be restricted, because under
causal attention the answer row of Â_l R_{l-1} reads every row of R_{l-1};
restricting rows would need the layers top-down, i.e. keeping all of them.
Propagating the needed *column aggregates* gives the same numbers, the same
O(rows · T²) cost bound with rows → K, and needs one layer at a time.

Attention sink. Decoder LLMs park much of their attention on the first token
(Xiao et al. 2023), which says nothing about the input. ``sink`` chooses:

- ``"exclude"`` (default): the first token's share of each needed row,
  ``R[i, first]``, is reported, and the row is renormalised over the other
  tokens (divided by ``1 - R[i, first]``; rows of R sum to 1);
- ``"keep"``: plain rollout;
- ``"per_layer"``: column ``first`` is removed from every Ā_l (rows other
  than the first renormalised) before mixing with I, so no layer routes
  through the sink; the reported share is then that of the plain rollout's
  first column under the modified matrices (≈ 0).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

SINK_MODES = ("exclude", "keep", "per_layer")


def mixed_attention(attn: torch.Tensor, valid: torch.Tensor | None = None, sink_index: torch.Tensor | None = None,
                    sink: str = "exclude", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One layer's rollout factor Â = rownorm(0.5 · mean_heads(A) + 0.5 · I).

    Parameters
    ----------
    attn : float[B, H, T, T]
        Attention probabilities of one layer (rows sum to 1 over the keys).
    valid : bool[B, T], optional
        False on padding and on tokens excluded from attention (absent ROIs):
        their rows become identity rows and their columns are zeroed, so a
        NaN or uniform row of a fully masked query cannot leak into real rows.
    sink_index : int64[B], optional
        Position of each sample's first real token (needed by ``sink="per_layer"``).
    sink : {"exclude", "keep", "per_layer"}
        See the module docstring; only ``per_layer`` changes Â.
    dtype : torch.dtype
        Compute dtype of the result.

    Returns
    -------
    float[B, T, T]
        Row-stochastic, lower triangular for causal attention.
    """
    if sink not in SINK_MODES:
        raise ValueError(f"sink must be one of {SINK_MODES}, not {sink!r}")
    # In place from here on: at 8k tokens every extra T x T copy is 256 MB.
    bar = attn.to(dtype).mean(dim=1)
    bar.nan_to_num_(nan=0.0)
    b, t, _ = bar.shape
    if valid is not None:
        v = valid.to(dtype)
        bar.mul_(v[:, :, None]).mul_(v[:, None, :])
    if sink == "per_layer":
        if sink_index is None:
            raise ValueError("sink='per_layer' needs sink_index")
        rows = torch.arange(b, device=bar.device)
        own = bar[rows, sink_index, sink_index].clone()  # the first token still attends to itself
        bar[rows, :, sink_index] = 0.0
        bar[rows, sink_index, sink_index] = own
        bar = bar / bar.sum(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    mixed = bar.mul_(0.5)
    mixed.diagonal(dim1=-2, dim2=-1).add_(0.5)  # + 0.5 I without a T x T identity
    return mixed.div_(mixed.sum(-1, keepdim=True))


def full_rollout(attentions, valid: torch.Tensor | None = None, sink_index: torch.Tensor | None = None,
                 sink: str = "exclude", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The plain full-matrix rollout R = Â_L ⋯ Â_1 (reference for tests and the benchmark).

    Parameters
    ----------
    attentions : sequence of float[B, H, T, T]
        Every layer's attention, bottom first (``output_attentions=True``).
    valid, sink_index, sink, dtype
        As :func:`mixed_attention`.

    Returns
    -------
    float[B, T, T]
        R; O(T³) per layer and all layers in memory: what streaming avoids.
    """
    rollout = None
    for attn in attentions:
        layer = mixed_attention(attn, valid, sink_index, sink, dtype)
        rollout = layer if rollout is None else layer @ rollout
    return rollout


class StreamingRollout:
    """Carries X = Â_l ⋯ Â_1 M through the layers, one layer's attention at a time.

    Parameters
    ----------
    columns : float[B, T, K]
        M: indicator columns of the token sets whose rollout share is wanted.
    valid : bool[B, T], optional
        As :func:`mixed_attention`.
    sink_index : int64[B], optional
        First real token of each sample (``sink="per_layer"``).
    sink : {"exclude", "keep", "per_layer"}
    dtype : torch.dtype
        Accumulation dtype (float32 matches float64 to ~1e-7 here).

    Attributes
    ----------
    state : float[B, T, K]
        R_l @ M after the layers seen so far.
    n_layers : int
        Layers seen.
    """

    def __init__(self, columns: torch.Tensor, valid: torch.Tensor | None = None,
                 sink_index: torch.Tensor | None = None, sink: str = "exclude", dtype: torch.dtype = torch.float32):
        if sink not in SINK_MODES:
            raise ValueError(f"sink must be one of {SINK_MODES}, not {sink!r}")
        self.state = columns.to(dtype)
        self.valid = valid
        self.sink_index = sink_index
        self.sink = sink
        self.dtype = dtype
        self.n_layers = 0

    def update(self, attn: torch.Tensor) -> None:
        """Fold one layer's attention float[B, H, T, T] into the state."""
        if attn is None:
            raise RuntimeError("the attention module returned no weights: load the model with "
                               "attn_implementation='eager' for attribution")
        if attn.shape[-1] != self.state.shape[1] or attn.shape[-2] != self.state.shape[1]:
            raise RuntimeError(f"attention of shape {tuple(attn.shape)} for a sequence of {self.state.shape[1]} "
                               "tokens: run the rollout pass without a KV cache")
        with torch.no_grad():
            layer = mixed_attention(attn.detach(), self.valid, self.sink_index, self.sink, self.dtype)
            self.state = torch.bmm(layer, self.state.to(layer.device))
        self.n_layers += 1


def attention_modules(model) -> list:
    """The self-attention module of every decoder layer, bottom first.

    Works for the Qwen2 and Llama families (``<...>.layers.<i>.self_attn``),
    through an :class:`~rgenima_lib.models.mllm.RGenIMA` or a bare causal LM.
    """
    found = [(name, module) for name, module in model.named_modules() if name.endswith("self_attn")]
    if not found:
        raise ValueError("no '*.self_attn' modules found: not a Qwen2/Llama-style decoder")

    def layer_number(name: str) -> int:
        parts = name.split(".")
        return int(parts[parts.index("layers") + 1]) if "layers" in parts else 0

    return [m for _, m in sorted(found, key=lambda nm: layer_number(nm[0]))]


@contextlib.contextmanager
def rollout_hooks(model, tracker: StreamingRollout):
    """Feed every layer's attention weights to ``tracker`` during the forward passes inside the block.

    The hook reads the weights the eager attention returns (``output[1]``)
    and keeps nothing: the decoder layer drops them right after, so at most
    one layer's attention is alive at any time.
    """
    def hook(_module, _args, output):
        tracker.update(output[1] if isinstance(output, tuple) else None)

    handles = [m.register_forward_hook(hook) for m in attention_modules(model)]
    try:
        yield tracker
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class RolloutShares:
    """Rollout shares of the needed rows, per sample.

    Attributes
    ----------
    answer : float[B, K]
        Mean over the answer rows of R @ M (sink handled).
    roi_rows : float[B, n_roi, K]
        R @ M at the ROI token rows (sink handled).
    sink_share : float[B]
        R[answer, first token], mean over the answer rows, before renormalisation.
    """

    answer: torch.Tensor
    roi_rows: torch.Tensor
    sink_share: torch.Tensor


def read_rows(state: torch.Tensor, answer_rows: list, roi_rows: torch.Tensor, sink: str = "exclude",
              sink_column: int = 0) -> RolloutShares:
    """Pick the needed rows of R @ M and apply the sink policy.

    Parameters
    ----------
    state : float[B, T, K]
        ``StreamingRollout.state`` after the last layer (or ``R @ M``).
    answer_rows : list of int64 tensors / lists, length B
        Each sample's answer row positions (averaged).
    roi_rows : int64[B, n_roi]
        Position of each ROI token.
    sink : {"exclude", "keep", "per_layer"}
        ``exclude`` divides each row by (1 - its share of the sink column).
    sink_column : int
        Column of M that indicates the first token.

    Returns
    -------
    RolloutShares
    """
    def renorm(rows: torch.Tensor) -> torch.Tensor:
        if sink != "exclude":
            return rows
        rest = (1.0 - rows[..., sink_column:sink_column + 1]).clamp_min(torch.finfo(rows.dtype).eps)
        return rows / rest

    answers, shares = [], []
    for b, rows in enumerate(answer_rows):
        picked = state[b, torch.as_tensor(rows, dtype=torch.long, device=state.device)]  # [n_rows, K]
        shares.append(picked[:, sink_column].mean())
        answers.append(renorm(picked).mean(0))
    roi = torch.gather(state, 1, roi_rows.to(state.device)[:, :, None].expand(-1, -1, state.shape[-1]))
    return RolloutShares(torch.stack(answers), renorm(roi), torch.stack(shares))
