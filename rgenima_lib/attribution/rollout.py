"""Attention rollout (Abnar & Zuidema 2020), streamed layer by layer beside the forward pass (paper 2.2–2.4, 4.3).

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
layers: each layer updates X ← Â_l X (float[T, K]) and lets its attention go.
Cost O(K · T²) per layer instead of the O(T³) of the full matrix product, and
the result is exact (not an approximation).

How a layer is seen (:func:`rollout_attention`). The pass runs under an
attention implementation of its own, registered in the Hugging Face
``AttentionInterface`` (:meth:`StreamingRollout.fold_attention`). A layer is
taken a block of query rows at a time: from the post-rotary queries and keys
the per-head probabilities P = softmax(q kᵀ · scaling + mask) of the block are
formed once and used twice, P V for the layer's output rows and their sum over
the heads for the rows of Ā. So each layer has one QK product and one softmax,
as attention itself has, plus the product of the block of Ā with the state;
the output equals SDPA's up to float rounding (measured at most 2e-6 on
outputs of order 1, and 2e-7 on the logits; the tests check it), and the
scoring and prediction passes keep SDPA. Under grouped-query attention each
kv head's keys and values serve its group of query heads in one product, not
repeated. Row i of Â_l X needs only row i of Â_l, so each block is mixed,
multiplied into the old X and dropped; the block reads a snapshot of the old
X, which is therefore overwritten block by block. Under causal attention a
block of rows i < b needs keys j < b only. The per-head probabilities exist
for one block (``StreamingRollout.block_rows`` query rows), never as
H × T × T, and no float32 copy of a whole layer's attention is made.
:func:`eager_rollout_hooks` is the eager reference it replaces (forward hooks
on eager attention, one whole layer at a time) and gives the same numbers.
At 8k tokens and 28 layers of the benchmark's demo model (one thread) the pass
takes 1.65× an SDPA forward at 1.11× its peak memory (``rgenima_lib.bench.bench_rollout``,
``--full``); what it adds to attention's own work is mainly the product with X.

Why column sums and not rows (docs/design.md, "Attention rollout"): bottom-up
(the order the forward pass visits the layers) rows cannot be restricted, because under
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
import contextvars
import math
from dataclasses import dataclass

import torch

from rgenima_lib.models.attention import attention_implementation, register_attention

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
    """Carries X = Â_l ⋯ Â_1 M through the layers, one layer (or one block of a layer's rows) at a time.

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
    block_rows : int
        Query rows of one block in :meth:`fold_attention`, whose per-head probabilities are
        B · H · rows · W numbers (W <= T keys). The block grows with T as the forward pass's own
        activations do. 64 is the fastest here at 2k and at 8k tokens (4 heads, one thread): fewer
        rows make the products with the state thin, more make a block outgrow the cache.

    Attributes
    ----------
    state : float[B, T, K]
        R_l @ M after the layers seen so far.
    n_layers : int
        Layers seen.
    largest_block : tuple of int
        Largest block of per-head probabilities (B, H, rows, keys) :meth:`fold_attention` has formed.
    """

    def __init__(self, columns: torch.Tensor, valid: torch.Tensor | None = None,
                 sink_index: torch.Tensor | None = None, sink: str = "exclude", dtype: torch.dtype = torch.float32,
                 block_rows: int = 64):
        if sink not in SINK_MODES:
            raise ValueError(f"sink must be one of {SINK_MODES}, not {sink!r}")
        if sink == "per_layer" and sink_index is None:
            raise ValueError("sink='per_layer' needs sink_index")
        self.state = columns.to(dtype=dtype, copy=True)  # overwritten block by block, never aliased
        self.valid = valid
        self.sink_index = sink_index
        self.sink = sink
        self.dtype = dtype
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, not {block_rows}")
        self.block_rows = int(block_rows)
        self.n_layers = 0
        self.largest_block: tuple[int, ...] = (0, 0, 0, 0)

    def _check_length(self, length: int, shape) -> None:
        if length != self.state.shape[1]:
            raise RuntimeError(f"attention of shape {tuple(shape)} for a sequence of {self.state.shape[1]} "
                               "tokens: run the rollout pass without a KV cache")

    def update(self, attn: torch.Tensor) -> None:
        """Fold one layer's whole attention float[B, H, T, T] into the state (the eager reference).

        Forms Â explicitly with :func:`mixed_attention`; :meth:`fold_rows` gets the same numbers
        without forming it.
        """
        if attn is None:
            raise RuntimeError("the attention module returned no weights: eager_rollout_hooks needs eager attention")
        self._check_length(attn.shape[-1], attn.shape)
        self._check_length(attn.shape[-2], attn.shape)
        with torch.no_grad():
            layer = mixed_attention(attn.detach(), self.valid, self.sink_index, self.sink, self.dtype)
            self.state = torch.bmm(layer, self.state.to(layer.device))
        self.n_layers += 1

    def _key_weights(self, state: torch.Tensor) -> torch.Tensor:
        """float[B, T]: 1 on the keys a layer's mixed attention may read, 0 on the masked columns.

        Zero on invalid tokens; with ``sink="per_layer"`` also on the sink (its own row adds it back).
        """
        weights = (torch.ones(state.shape[:2], dtype=state.dtype, device=state.device) if self.valid is None
                   else self.valid.to(device=state.device, dtype=state.dtype))
        if self.sink == "per_layer":
            weights = weights.clone()
            weights[torch.arange(state.shape[0], device=state.device), self.sink_index.to(state.device)] = 0.0
        return weights

    def fold_rows(self, blocks) -> None:
        """Fold one layer, given as blocks of rows of its head-mean attention, into the state.

        Â is never formed. With a = Ā ⊙ (column weights w) and the row mass m = a · 1,
        row i of Â X is (0.5 · (a X)_i + 0.5 · X_i) / (0.5 · m_i + 0.5) (after the rows of invalid
        tokens are zeroed, and for ``per_layer`` after a and m are divided by m), which is
        :func:`mixed_attention` followed by the product. One product of a block of Ā with
        [X ⊙ w, w] (float[B, W, K + 1]) gives both a X and m. Every block reads that snapshot of the
        old X, so the state can be overwritten block by block.

        Parameters
        ----------
        blocks : iterable of (int, float[B, r, W])
            (first row, rows of Ā over keys ``0 .. W - 1``, W >= first row + r), covering rows
            0 .. T - 1 in order.
        """
        with torch.no_grad():
            state = self.state
            weights = self._key_weights(state)
            snapshot = torch.cat([state * weights[..., None], weights[..., None]], dim=-1)  # [B, T, K + 1]
            covered = 0
            for first_row, bar in blocks:
                if first_row != covered:
                    raise RuntimeError(f"rollout blocks out of order: block at row {first_row}, expected {covered}")
                covered = first_row + bar.shape[1]
                state[:, first_row:covered] = self._mixed_rows(bar.to(state.device, self.dtype), first_row,
                                                               snapshot, state[:, first_row:covered])
            if covered != state.shape[1]:
                raise RuntimeError(f"rollout blocks cover {covered} of {state.shape[1]} rows")
        self.n_layers += 1

    def _mixed_rows(self, bar: torch.Tensor, first_row: int, snapshot: torch.Tensor,
                    own: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Rows first_row .. first_row + r - 1 of Â X (see :meth:`fold_rows`).

        Parameters
        ----------
        bar : float[B, r, W]
            The rows of Ā, or of Ā / ``scale`` (the head sum rather than the mean).
        snapshot : float[B, T, K + 1]
            [X ⊙ w, w] of the layer's old X.
        own : float[B, r, K]
            The same rows of the old X (the identity part).
        scale : float
            Ā = scale · bar; applied to the product (r · (K + 1) numbers), not to the block.

        Returns
        -------
        float[B, r, K]
        """
        n_rows, width = bar.shape[1:]
        product = torch.bmm(bar, snapshot[:, :width])  # [B, r, K + 1]: (a X, m) per row
        if scale != 1.0:
            product.mul_(scale)
        if self.sink == "per_layer":  # the sink still attends to itself
            for b in torch.nonzero((self.sink_index >= first_row) & (self.sink_index < first_row + n_rows)).flatten():
                sink = int(self.sink_index[b])
                kept = 1.0 if self.valid is None else float(self.valid[b, sink])
                own_weight = bar[b, sink - first_row, sink] * scale * kept
                product[b, sink - first_row, :-1] += own_weight * own[b, sink - first_row]
                product[b, sink - first_row, -1] += own_weight
        product.nan_to_num_(nan=0.0)  # a query with every key masked (padding)
        if self.valid is not None:
            product.mul_(self.valid[:, first_row:first_row + n_rows, None].to(product.dtype))
        spread, mass = product[..., :-1], product[..., -1:]
        if self.sink == "per_layer":
            norm = mass.clamp_min(torch.finfo(mass.dtype).tiny)
            spread, mass = spread / norm, mass / norm
        return (0.5 * spread + 0.5 * own) / (0.5 * mass + 0.5)

    def fold_attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       mask: torch.Tensor | None, scaling: float, causal: bool = True) -> torch.Tensor:
        """Fold one layer into the state and return its attention output, one softmax per block of rows.

        Per block of query rows the per-head probabilities P = softmax(q kᵀ · scaling + mask) are formed
        once and used twice: P V is the layer's output for those rows, and their sum over the heads
        is the block of H · Ā that :meth:`_mixed_rows` folds in. So the pass costs one QK product and
        one softmax per layer, as attention itself does, plus the product Ā [X ⊙ w, w].

        Parameters
        ----------
        query : float[B, H, T, d]
            Post-rotary queries, not yet scaled.
        key : float[B, H_kv, T, d]
            Post-rotary keys; H_kv divides H (grouped-query attention: query head h reads kv head
            h // (H / H_kv), as ``repeat_kv`` orders them).
        value : float[B, H_kv, T, dv]
        mask : bool or float[B, 1 or H, T, T], optional
            SDPA's mask (True = attend) or an additive one; None means plain causal (no padding).
        scaling : float
        causal : bool
            Keys after a block's last row get no weight: leave them out (exact, and half the work).

        Returns
        -------
        float[B, T, H, dv]
            The attention output in the query's dtype, laid out as ``sdpa_attention_forward`` returns
            it; a query with every key masked gets 0, as SDPA gives it. It differs from SDPA's by
            float rounding only (``test_blockwise_layer_output_is_sdpas``).
        """
        self._check_length(key.shape[2], key.shape)
        self._check_length(query.shape[2], query.shape)
        b, heads, length, dim = query.shape
        kv_heads, dv = key.shape[1], value.shape[-1]
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads on {kv_heads} kv heads")
        group = heads // kv_heads
        step = min(length, self.block_rows)
        device, dtype = query.device, self.dtype
        # One batch entry per kv head whose rows are its group's query rows: one GEMM covers the
        # group without repeating keys and values, and P's memory is [B, H, rows, W] in head order.
        keys = key.to(dtype).contiguous().view(b * kv_heads, length, dim)
        values = value.to(dtype).contiguous().view(b * kv_heads, length, dv)
        output = torch.empty(b, length, heads, dv, dtype=query.dtype, device=device)
        # Flat buffers reused by every block (a block of W keys views their first B·H·rows·W numbers).
        probs_buffer = torch.empty(b * heads * step * length, dtype=dtype, device=device)
        head_sum_buffer = torch.empty(b * step * length, dtype=dtype, device=device)
        query_buffer = torch.empty(b * heads * step * dim, dtype=dtype, device=device)
        future = (torch.ones(step, step, dtype=torch.bool, device=device).triu_(1)
                  if causal and mask is None else None)

        with torch.no_grad():
            state = self.state
            weights = self._key_weights(state)
            snapshot = torch.cat([state * weights[..., None], weights[..., None]], dim=-1)  # [B, T, K + 1]
            for first_row in range(0, length, step):
                n_rows = min(step, length - first_row)
                stop = first_row + n_rows
                width = stop if causal else length
                self.largest_block = max(self.largest_block, (b, heads, n_rows, width), key=math.prod)
                scaled = query_buffer[:b * heads * n_rows * dim].view(b, heads, n_rows, dim)
                scaled.copy_(query[:, :, first_row:stop]).mul_(scaling)
                probs = probs_buffer[:b * heads * n_rows * width].view(b * kv_heads, group * n_rows, width)
                torch.bmm(scaled.view(b * kv_heads, group * n_rows, dim), keys[:, :width].transpose(1, 2),
                          out=probs)
                per_head = probs.view(b, heads, n_rows, width)
                if mask is None:
                    if causal:  # keys before the block are all visible: only its own triangle is masked
                        per_head[..., first_row:stop].masked_fill_(future[:n_rows, :n_rows], float("-inf"))
                elif mask.dtype == torch.bool:
                    per_head.masked_fill_(mask[:, :, first_row:stop, :width].logical_not(), float("-inf"))
                else:
                    per_head.add_(mask[:, :, first_row:stop, :width])
                torch.softmax(probs, dim=-1, out=probs)  # in place: one block buffer, not two
                rows_out = torch.bmm(probs, values[:, :width])  # [B·H_kv, group·rows, dv]
                if mask is not None:
                    # A query with every key masked has a NaN row of P, which reaches only its own row of
                    # P V (zeroed here, as SDPA gives it) and of the head sum (zeroed in _mixed_rows).
                    rows_out.nan_to_num_(nan=0.0)
                output[:, first_row:stop] = rows_out.view(b, heads, n_rows, dv).transpose(1, 2)
                head_sum = torch.sum(per_head, dim=1, out=head_sum_buffer[:b * n_rows * width].view(b, n_rows, width))
                state[:, first_row:stop] = self._mixed_rows(head_sum, first_row, snapshot, state[:, first_row:stop],
                                                            scale=1.0 / heads)
        self.n_layers += 1
        return output


ROLLOUT_ATTENTION = "rgenima_rollout"
"""Name of :func:`rollout_attention_forward` in the Hugging Face ``AttentionInterface``."""

_ACTIVE_TRACKER: contextvars.ContextVar = contextvars.ContextVar("rollout_tracker", default=None)


def rollout_attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attention_mask: torch.Tensor | None, scaling: float | None = None,
                              dropout: float = 0.0, **kwargs):
    """Attention implementation of the rollout pass: the layer's output and its fold into the tracker, together.

    Called by each Qwen2 / Llama attention module with post-rotary ``query`` float[B, H, T, d] and
    ``key`` / ``value`` float[B, H_kv, T, d]. :meth:`StreamingRollout.fold_attention` computes the
    output from the same block probabilities it folds in, so the layer's attention is computed once;
    the output equals SDPA's up to float rounding, and the scoring and prediction passes keep SDPA.

    Returns
    -------
    (float[B, T, H, d], None)
        As ``sdpa_attention_forward``; no weights are returned (nothing downstream keeps them). The
        pass computes no gradients.
    """
    tracker = _ACTIVE_TRACKER.get()
    if tracker is None:
        raise RuntimeError(f"attention implementation {ROLLOUT_ATTENTION!r} outside rollout_attention(model, tracker)")
    if dropout:
        raise RuntimeError(f"attention dropout {dropout} in the rollout pass: run it on model.eval()")
    for name in ("position_bias", "softcap", "s_aux"):
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"the rollout pass does not support attention {name!r}")
    is_causal = kwargs.get("is_causal")
    causal = bool(getattr(module, "is_causal", True) if is_causal is None else is_causal)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    output = tracker.fold_attention(query.detach(), key.detach(), value.detach(), attention_mask, scale, causal=causal)
    return output, None


@contextlib.contextmanager
def rollout_attention(model, tracker: StreamingRollout):
    """Fold every layer into ``tracker`` during the forward passes inside the block.

    Works whatever attention the model was loaded with; the implementation is restored on exit.
    Memory beyond an SDPA forward: the state X and its snapshot [X ⊙ w, w] (float[B, T, K] and
    float[B, T, K + 1]) and one block of per-head probabilities, float[B, H, rows, T] at most
    (``tracker.block_rows``), with its head sum; for a bfloat16 model also float32 copies of the
    layer's keys and values.
    """
    register_attention(ROLLOUT_ATTENTION, rollout_attention_forward)
    token = _ACTIVE_TRACKER.set(tracker)
    try:
        with attention_implementation(model, ROLLOUT_ATTENTION):
            yield tracker
    finally:
        _ACTIVE_TRACKER.reset(token)


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
def eager_rollout_hooks(model, tracker: StreamingRollout):
    """The eager reference of :func:`rollout_attention`: forward hooks read each layer's full weights.

    Runs eager attention inside the block (restored on exit); a hook takes ``output[1]``, the
    float[B, H, T, T] weights eager attention returns, and keeps nothing. Kept for the tests and the
    benchmark: it costs 4-16x the memory of the SDPA-based pass.
    """
    def hook(_module, _args, output):
        tracker.update(output[1] if isinstance(output, tuple) else None)

    with attention_implementation(model, "eager"):
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
