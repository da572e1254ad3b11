"""ROI-wise vision transformer (RiT), paper section 4.2.1, eqs. 4–6; docs/design.md, "RiT".

Each subject's T1 is cut into N = 109 atlas ROIs, each resampled to S³ (S = 96 in the
paper). A Conv3D whose kernel spans the whole ROI (kernel S³, stride S) turns every ROI
into one d = 768 token (eq. 5); a learned ROI-position embedding tells the tokens apart; a
small ViT models the dependencies between ROIs (eq. 6); a 4-way head on the pooled tokens
trains the encoder in stage 1 (paper 4.5.2). After stage 1 the encoder is frozen and
:meth:`RiT.encode` gives the N × d tokens that are cached and fed to the LLM connector.

Storage and training of the full-kernel Conv3D
----------------------------------------------
With one input channel, a Conv3d of kernel S³ and stride S on an S³ patch has exactly one
output position, so it *is* a linear map of the S³ voxels: ``token = W · vec(patch) + b``
with ``W: [d, S³]``. :class:`PatchEmbed3d` keeps the weight in the Conv3d layout
``[d, 1, S, S, S]`` (so a checkpoint reads as the paper's Conv3D) but computes it as one
GEMM over all ROIs of the batch, which is the same arithmetic as ``F.conv3d`` (tested) and
much faster than a convolution call with a 96³ kernel. At S = 96 and d = 768 the weight has
96³ × 768 = 679,477,248 entries:

- ``patch_dtype="float32"`` (default): 2.72 GB of weights + 2.72 GB of gradient + 5.44 GB of
  AdamW moments = 10.9 GB for this one layer, plus the saved input (385 MB per subject).
- ``patch_dtype="bfloat16"``: weights and gradient in bf16 (1.36 GB each), as the paper
  trains everything in bf16 (4.5.2); with fp32 AdamW moments 8.2 GB, with bf16 moments 5.4 GB.
- ``patch_rank=k`` (departure, optional): a Tucker-factorised kernel
  ``W[d, x, y, z] = Σ_abc G[d, abc] U₀[a, x] U₁[b, y] U₂[c, z]`` — still one kernel spanning
  the whole ROI, but of multilinear rank (k, k, k): 3·k·S + d·k³ weights (3.15 M at k = 16,
  S = 96, d = 768), computed as three small contractions. Use it where the full kernel does
  not fit; :meth:`PatchEmbed3d.full_kernel` materialises the equivalent Conv3D weight.

``make bench`` (``rgenima_lib/bench/bench_rit.py``) measures one training step (N = 109,
d = 768, 4 layers, batch 1, 2 CPU threads, results/bench/rit.json): peak memory above the
imports 6.8 GB for forward + backward in fp32, 17.3 GB with the AdamW step (the 10.9 GB of
state above, two parameter-sized temporaries of AdamW's update, the input and the 385 MB
input-normalisation buffer), 9.3 GB with bf16 patch weights (torch keeps bf16 moments for
bf16 weights), 2.3 GB with the rank-16 Tucker kernel; 0.28 subject/s forward + backward in
fp32 (0.12 with the AdamW step), 0.81 in bf16, on 2 CPU cores. A GPU is the place for S = 96.

Departures from the paper
-------------------------
- Missing ROIs: the paper fills them with zero patches (4.2.1). We keep the zero patch *and*
  a presence flag: a missing ROI's token is replaced by a learned "missing" embedding and is
  masked as an attention key, so its (zero) content never reaches another token, and its row
  of :meth:`RiT.encode` is zero. The token order never shifts (docs/design.md, "Fixed token order").
- The paper does not say how the ViT output is pooled for the stage-1 head; we use a learned
  query attending over the present ROI tokens (or their mean, ``pool="mean"``); there is no
  CLS token, so the N cached tokens are exactly the ROIs.
- Patches are standardised per ROI with the training subjects' mean patch and sd
  (:meth:`RiT.set_input_normalization`), which the paper does not describe.
- Optional (``roi_volume=True``, off by default): each token also receives its ROI's
  standardised log volume, which the crop-and-stretch to S³ otherwise discards.
- "Stride of 1 along the ROI sequence dimension" (4.2.1) is read as: the same kernel is
  applied to every ROI, one token each (stride S in space).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def relative_log_volume(volume: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
    """Log ROI volumes relative to the subject's mean log volume (a head-size correction).

    Atrophy is a loss relative to the subject's own brain; without this a large head
    looks like the absence of atrophy everywhere.

    Parameters
    ----------
    volume : float[B, N]
        Voxels per ROI before resampling.
    presence : bool[B, N]
        Missing ROIs are left out of the subject's mean and get 0.

    Returns
    -------
    float32[B, N]
    """
    presence = presence.bool()
    logv = torch.log1p(volume.float())
    n = presence.sum(-1, keepdim=True).clamp(min=1)
    centre = torch.where(presence, logv, 0.0).sum(-1, keepdim=True) / n
    return torch.where(presence, logv - centre, 0.0)


@dataclass(frozen=True)
class RiTConfig:
    """Sizes of a :class:`RiT`.

    Parameters
    ----------
    n_rois : int
        Tokens per subject (109 in the paper; ``config/rois.tsv`` order).
    roi_size : int
        S: every ROI patch is S × S × S voxels (96 in the paper, 32 in the demo).
    dim : int
        Token dimension d (768 in the paper).
    depth, heads : int
        ViT layers and attention heads ("lightweight", not given in the paper).
    mlp_ratio : float
        Hidden width of each ViT feed-forward block, relative to ``dim``.
    dropout : float
    n_classes : int
        Stage-1 head outputs (4: NC / SMC / MCI / AD).
    patch_rank : int or None
        None: the paper's full S³ kernel. k: Tucker-factorised kernel of multilinear rank k,
        whose first component starts as the patch mean. On synthetic cohorts of 60-240
        subjects the full kernel fits voxel noise; rank 1 generalises far better.
    patch_dtype : {"float32", "bfloat16", "float16"}
        Storage and compute dtype of the full-kernel patch weight.
    pool : {"attention", "mean"}
        How the stage-1 head summarises the ROI tokens: a learned query attending over the
        present tokens (default), or their plain mean.
    roi_volume : bool
        Departure, off by default (the paper's RiT): add each ROI's log volume (voxel count
        before resampling, standardised on the training subjects) to its token through a
        learned per-ROI vector (relative to the subject's mean log volume, a head-size
        correction: :func:`relative_log_volume`). Cropping every ROI to its bounding box and
        stretching it to S³ (paper 4.2.1) discards its size, the first marker of atrophy.
    """

    n_rois: int = 109
    roi_size: int = 96
    dim: int = 768
    depth: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    n_classes: int = 4
    patch_rank: int | None = None
    patch_dtype: str = "float32"
    pool: str = "attention"
    roi_volume: bool = False

    def __post_init__(self):
        if self.pool not in ("attention", "mean"):
            raise ValueError(f"pool must be 'attention' or 'mean', not {self.pool!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.patch_dtype not in _DTYPES:
            raise ValueError(f"patch_dtype must be one of {sorted(_DTYPES)}, not {self.patch_dtype!r}")
        if self.patch_rank is not None and not 1 <= self.patch_rank <= self.roi_size:
            raise ValueError(f"patch_rank must be in 1..roi_size, not {self.patch_rank}")

    def to_dict(self) -> dict:
        return asdict(self)


class PatchEmbed3d(nn.Module):
    """Conv3D with kernel S³ and stride S on one S³ ROI: one d-dimensional token (paper eq. 5).

    Parameters
    ----------
    roi_size : int
        S.
    dim : int
        d.
    rank : int or None
        None: full kernel ``weight: [d, 1, S, S, S]``. k: Tucker factors
        ``factors: [3, k, S]`` and core ``core: [d, k³]``.
    dtype : torch.dtype
        Storage dtype of the full kernel (the Tucker form is always float32: it is small).
    """

    def __init__(self, roi_size: int, dim: int, rank: int | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.roi_size, self.dim, self.rank = roi_size, dim, rank
        fan_in = roi_size ** 3
        if rank is None:
            # Conv3d's own default init: uniform(±1/sqrt(fan_in)). Drawn in float32 then cast,
            # so bf16 and fp32 models start from the same (rounded) weights.
            w = torch.empty(dim, 1, roi_size, roi_size, roi_size)
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            self.weight = nn.Parameter(w.to(dtype))
        else:
            # Factors ~ N(0, 1/S) keep the projected patch on the scale of the input; the first
            # component of each axis starts as the plain average, so the factorised kernel starts
            # out able to see the ROI's mean intensity (where atrophy shows most). The core then
            # gets the Conv3d-style bound for its own fan-in k³.
            factors = torch.randn(3, rank, roi_size) / math.sqrt(roi_size)
            factors[:, 0] = 1.0 / roi_size  # u0 ⊗ u1 ⊗ u2 = 1/S³: exactly the patch mean
            self.factors = nn.Parameter(factors)
            self.core = nn.Parameter(torch.empty(dim, rank ** 3).uniform_(-1, 1) / math.sqrt(rank ** 3))
        self.bias = nn.Parameter(torch.zeros(dim))

    def n_kernel_weights(self) -> int:
        """Weights of the kernel (bias excluded): d·S³ (full) or 3·k·S + d·k³ (Tucker)."""
        if self.rank is None:
            return self.weight.numel()
        return self.factors.numel() + self.core.numel()

    def full_kernel(self) -> torch.Tensor:
        """The equivalent Conv3d weight ``float32[d, 1, S, S, S]`` (materialised for the Tucker form)."""
        if self.rank is None:
            return self.weight.float()
        k, S = self.rank, self.roi_size
        u0, u1, u2 = self.factors
        core = self.core.view(self.dim, k, k, k)
        return torch.einsum("dabc,ax,by,cz->dxyz", core, u0, u1, u2).reshape(self.dim, 1, S, S, S)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Embed ROI patches.

        Parameters
        ----------
        patches : float[M, S, S, S]
            M ROI patches (all ROIs of a batch, flattened).

        Returns
        -------
        float32[M, d]
        """
        return self.project(patches) + self.bias.float()

    def project(self, patches: torch.Tensor) -> torch.Tensor:
        """The linear part of :meth:`forward` (no bias): float[M, S, S, S] -> float32[M, d].

        Linear, so ``project((x - m) / s) = (project(x) - project(m)) / s``: the RiT normalises
        after projecting and never materialises a normalised copy of the batch.
        """
        m = patches.shape[0]
        if self.rank is None:
            w = self.weight
            # A GEMM is the conv with one output position: [M, S³] @ [S³, d].
            return F.linear(patches.reshape(m, -1).to(w.dtype), w.view(self.dim, -1)).float()
        k, S = self.rank, self.roi_size
        u0, u1, u2 = self.factors
        # Contract one axis at a time, the contiguous last axis first (a plain GEMM over the batch, no
        # transposed copy): M·(k·S³ + k²·S² + k³·S) multiply-adds instead of M·d·S³.
        x = (patches.float().reshape(m * S * S, S) @ u2.T).view(m, S, S, k)
        x = torch.einsum("mxyc,by->mxbc", x, u1)
        x = torch.einsum("mxbc,ax->mabc", x, u0)
        return F.linear(x.reshape(m, -1), self.core)


class Block(nn.Module):
    """Pre-norm transformer layer with a key-padding mask (missing ROIs are not attended to)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))
        # Attribution reads the attention probabilities (and their gradient); asking for them costs the
        # fused kernel, so they are kept only on request (:func:`keep_attention`).
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """x: float[B, N, d]; key_padding_mask: bool[B, N], True = ignore as a key.

        With ``keep_attention`` the per-head probabilities float[B, H, N, N] that multiply the
        values are left in ``self.attention`` (part of the autograd graph).
        """
        h = self.norm1(x)
        if self.keep_attention:
            a, self.attention = self._attend(h, key_padding_mask)
        else:
            a, _ = self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
        x = x + self.drop(a)
        return x + self.mlp(self.norm2(x))

    def _attend(self, h: torch.Tensor, key_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``self.attn`` written out (eval: no dropout), so that its probabilities are the tensor the values meet.

        ``nn.MultiheadAttention`` returns a reshaped copy of them, which the output does not depend
        on: a gradient with respect to that copy is not defined. h: float[B, N, d] -> the output
        float[B, N, d] and the probabilities float[B, H, N, N].
        """
        b, n, d = h.shape
        heads = self.attn.num_heads
        q, k, v = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(b, n, d)
        return self.attn.out_proj(out), probs


def attention_key_mask(presence: torch.Tensor) -> torch.Tensor:
    """Key-padding mask from presence flags, safe for subjects with no ROI at all.

    Parameters
    ----------
    presence : bool[B, N]

    Returns
    -------
    bool[B, N]
        True where a key is ignored. A row with no present token would make the softmax
        0/0 = NaN, so such rows attend to everything (all tokens are then the same learned
        "missing" embedding plus position, so nothing leaks).
    """
    mask = ~presence
    return mask & ~mask.all(dim=1, keepdim=True)


class RiT(nn.Module):
    """ROI-wise vision transformer with a 4-way stage-1 head (paper 4.2.1).

    Parameters
    ----------
    config : RiTConfig

    Notes
    -----
    Inputs everywhere: ``rois: float[B, N, S, S, S]`` in [0, 1] or stored uint8 (ROIs in ``config/rois.tsv`` order),
    ``presence: bool[B, N]`` (False = ROI missing; its patch is zeros).
    """

    def __init__(self, config: RiTConfig = RiTConfig()):
        super().__init__()
        self.config = config
        c = config
        self.patch = PatchEmbed3d(c.roi_size, c.dim, c.patch_rank, _DTYPES[c.patch_dtype])
        self.pos = nn.Parameter(torch.randn(1, c.n_rois, c.dim) * 0.02)
        self.missing = nn.Parameter(torch.zeros(c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        if c.pool == "attention":
            self.pool_query = nn.Parameter(torch.randn(1, 1, c.dim) * 0.02)
            self.pool_attn = nn.MultiheadAttention(c.dim, c.heads, dropout=c.dropout, batch_first=True)
        self.head_drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.dim, c.n_classes)
        # Input standardisation (identity until set_input_normalization): saved with the weights,
        # so a checkpoint encodes new subjects exactly as in training.
        self.register_buffer("input_mean", torch.zeros(c.n_rois, c.roi_size, c.roi_size, c.roi_size))
        self.register_buffer("input_scale", torch.ones(c.n_rois))
        if c.roi_volume:
            # Unit-length directions, on the scale of a patch token: a much smaller vector would be
            # drowned by the patch term before the first LayerNorm.
            self.volume_embed = nn.Parameter(torch.randn(c.n_rois, c.dim) / math.sqrt(c.dim))
            self.register_buffer("volume_mean", torch.zeros(c.n_rois))
            self.register_buffer("volume_scale", torch.ones(c.n_rois))

    def set_volume_normalization(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise the relative log volume per ROI: ``(relative_log_volume - mean[r]) / scale[r]`` (float[N] each)."""
        self.volume_mean.copy_(torch.as_tensor(mean, dtype=self.volume_mean.dtype))
        self.volume_scale.copy_(torch.as_tensor(scale, dtype=self.volume_scale.dtype).clamp(min=1e-6))

    def set_input_normalization(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise ROI patches as ``(rois - mean[r]) / scale[r]`` before the patch embedding.

        Parameters
        ----------
        mean : float[N, S, S, S]
            Mean patch of each ROI over the *training* subjects that have it.
        scale : float[N]
            One standard deviation per ROI (over those subjects and its voxels).

        Notes
        -----
        Departure (not in the paper): atrophy changes a patch by a few percent of its
        intensity, while the mean patch of each ROI is the same for everyone; without
        centring, every token is dominated by its ROI's mean patch and the differences
        between subjects are too small for the ViT to pick up from a few hundred subjects.
        """
        self.input_mean.copy_(torch.as_tensor(mean, dtype=self.input_mean.dtype))
        self.input_scale.copy_(torch.as_tensor(scale, dtype=self.input_scale.dtype).clamp(min=1e-6))

    def _check(self, rois: torch.Tensor, presence: torch.Tensor) -> None:
        c = self.config
        want = (c.n_rois, c.roi_size, c.roi_size, c.roi_size)
        if rois.dim() != 5 or tuple(rois.shape[1:]) != want:
            raise ValueError(f"rois must be [B, {', '.join(map(str, want))}], got {list(rois.shape)}")
        if tuple(presence.shape) != tuple(rois.shape[:2]):
            raise ValueError(f"presence must be [B, {c.n_rois}], got {list(presence.shape)}")

    def encode(self, rois: torch.Tensor, presence: torch.Tensor, volume: torch.Tensor | None = None) -> torch.Tensor:
        """ROI tokens after the ViT (paper eq. 6): what stage 2 receives.

        Parameters
        ----------
        rois : float[B, N, S, S, S]
        presence : bool[B, N]
        volume : float[B, N], optional
            Voxels per ROI before resampling; required when ``config.roi_volume``.

        Returns
        -------
        float32[B, N, d]
            One token per ROI, in ROI order; rows of missing ROIs are zero.
        """
        return self.encode_embedded(self.embed_patches(rois, presence), presence, volume)

    def embed_patches(self, rois: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """The patch embedding of each ROI (paper eq. 5), before position, volume and the ViT.

        Parameters
        ----------
        rois : float[B, N, S, S, S] in [0, 1], or uint8[B, N, S, S, S] as stored (value / 255)
        presence : bool[B, N]

        Returns
        -------
        float32[B, N, d]
            The ViT's input per ROI (gradient x input attributes here).
        """
        self._check(rois, presence)
        b, n = presence.shape
        s = self.config.roi_size
        # patch((x - mean) / scale), with the normalisation moved after the (linear) projection: the
        # batch is read once, instead of writing two normalised copies of it first (25x less time at S = 32).
        z = self.patch.project(rois.reshape(b * n, s, s, s)).view(b, n, -1)
        if rois.dtype == torch.uint8:  # patches as stored (value / 255): scale after projecting, like the mean
            z = z / 255.0
        z = (z - self.patch.project(self.input_mean)) / self.input_scale.view(1, n, 1)
        return z + self.patch.bias.float()

    def standardized_volume(self, volume: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """The volume input the tokens read (``roi_volume``): float[B, N] voxels -> float32[B, N].

        The relative log volume standardised per ROI with the training subjects' mean and scale, so 0 is a
        training-average ROI at the subject's own head size (the gradient methods' volume baseline).
        """
        if volume is None:
            raise ValueError("this RiT was built with roi_volume=True: pass volume (voxels per ROI)")
        return (relative_log_volume(volume, presence.bool()) - self.volume_mean) / self.volume_scale

    def encode_embedded(self, z: torch.Tensor, presence: torch.Tensor,
                        volume: torch.Tensor | None = None, *,
                        standardized_volume: torch.Tensor | None = None) -> torch.Tensor:
        """ROI tokens from patch embeddings float[B, N, d] (:meth:`embed_patches`): float32[B, N, d].

        ``standardized_volume`` float[B, N], when given, replaces :meth:`standardized_volume` of ``volume``
        (the gradient methods move it along their path).
        """
        presence = presence.bool()
        # A missing ROI gets a learned embedding instead of conv(zero patch) = bias, so the model
        # can tell "absent" from "present but dark".
        if self.config.roi_volume:
            v = standardized_volume if standardized_volume is not None else self.standardized_volume(volume, presence)
            z = z + v[..., None] * self.volume_embed
        z = torch.where(presence[..., None], z, self.missing.to(z.dtype)) + self.pos
        kpm = attention_key_mask(presence)
        for block in self.blocks:
            z = block(z, kpm)
        z = self.norm(z)
        return z * presence[..., None].to(z.dtype)

    def pool(self, tokens: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """Summary of the present ROI tokens for the stage-1 head: float[B, N, d], bool[B, N] -> float[B, d].

        Attention pooling lets the head weight each ROI by where it is (its position
        embedding) and what it shows: with a kernel shared by all ROIs, a plain mean can only
        express "ROI r matters more than ROI s" through the ViT's non-linearities, which a few
        hundred subjects do not teach.
        """
        if self.config.pool == "mean":
            w = presence.to(tokens.dtype)[..., None]
            return (tokens * w).sum(1) / w.sum(1).clamp(min=1.0)
        query = self.pool_query.expand(tokens.shape[0], -1, -1)
        out, _ = self.pool_attn(query, tokens, tokens, key_padding_mask=attention_key_mask(presence),
                                need_weights=False)
        return out[:, 0]

    def forward(self, rois: torch.Tensor, presence: torch.Tensor, volume: torch.Tensor | None = None) -> torch.Tensor:
        """Stage-1 logits.

        Parameters
        ----------
        rois : float[B, N, S, S, S]
        presence : bool[B, N]
        volume : float[B, N], optional
            See :meth:`encode`.

        Returns
        -------
        float32[B, n_classes]
        """
        presence = presence.bool()
        tokens = self.encode(rois, presence, volume)
        return self.head(self.head_drop(self.pool(tokens, presence)))


@contextlib.contextmanager
def keep_attention(model: RiT):
    """Inside the block every ViT layer of ``model`` leaves its attention in ``block.attention``.

    Yields
    ------
    list of Block
        The layers, bottom first: ``block.attention`` float[B, H, N, N] after a forward pass.
    """
    blocks = list(model.blocks)
    for block in blocks:
        block.keep_attention = True
    try:
        yield blocks
    finally:
        for block in blocks:
            block.keep_attention = False
            block.attention = None


def rollout_matrix(attentions) -> torch.Tensor:
    """The RiT's own attention rollout over its ROI inputs (Abnar & Zuidema 2020).

    Parameters
    ----------
    attentions : sequence of float[B, H, N, N]
        Every ViT layer's attention, bottom first (:func:`keep_attention`).

    Returns
    -------
    float32[B, N, N]
        R = Â_L ⋯ Â_1 with Â = rownorm(0.5 · mean_heads(A) + 0.5 · I): R[r, s] is the share of
        input ROI s in output token r. Masked (missing) ROIs get no column share, since their
        keys carry zero attention.
    """
    rollout = None
    for attn in attentions:
        mixed = 0.5 * attn.float().mean(1)
        mixed = mixed + 0.5 * torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout
    return rollout


def encoder_rollout(model: RiT, rois: torch.Tensor, presence: torch.Tensor,
                    volume: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`rollout_matrix` of one no-grad forward pass: float[B, N, S, S, S], bool[B, N] -> float32[B, N, N]."""
    with torch.no_grad(), keep_attention(model) as blocks:
        model.encode(rois, presence, volume)
        return rollout_matrix([b.attention for b in blocks])


def patch_kernel_size(roi_size: int, dim: int = 768, rank: int | None = None) -> dict:
    """Size of the patch Conv3D without building it.

    Parameters
    ----------
    roi_size : int
        S.
    dim : int
        d.
    rank : int or None
        Tucker rank (None = full kernel).

    Returns
    -------
    dict
        ``weights`` (count), GB per dtype (``gb_float32``, ``gb_bfloat16``), and the GB of
        one AdamW training state (weights + gradient + two moments) in fp32 and in bf16
        weights/gradient with fp32 moments.
    """
    n = dim * roi_size ** 3 if rank is None else 3 * rank * roi_size + dim * rank ** 3
    gb = 1e9
    return {
        "roi_size": roi_size, "dim": dim, "rank": rank, "weights": n,
        "gb_float32": n * 4 / gb, "gb_bfloat16": n * 2 / gb,
        "train_state_gb_float32_adamw": n * 4 * 4 / gb,
        "train_state_gb_bf16_weights_fp32_adamw": n * (2 + 2 + 4 + 4) / gb,
    }
