"""The model end to end, differentiable: ROI patches -> RiT -> connector -> LLM -> log-probability of the answer.

The gradient attributions (:mod:`~rgenima_lib.attribution.integrated_gradients`,
:mod:`~rgenima_lib.attribution.gradient_input`,
:mod:`~rgenima_lib.attribution.gradient_attention`) and the deletion test
(:mod:`~rgenima_lib.attribution.faithfulness`) differentiate or re-run this one
function of the inputs:

    f(patches, gene text) = log p(label tokens of the target stage | prompt, "This subject is"),

the sum of the log-probabilities of the label token(s) at the rows that write them
(:func:`~rgenima_lib.attribution.token_map.token_map`, ``answer_rows="label"``), with the
visual tokens recomputed by the frozen RiT from the patches instead of read from the
float16 token cache.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from rgenima_lib.attribution.token_map import TokenMap, token_map
from rgenima_lib.models.prompting import PromptCollator, PromptSample, end_of_turn_ids
from rgenima_lib.models.rit import RiT


@dataclass
class ImageInputs:
    """What the end-to-end methods need beyond the LLM.

    Attributes
    ----------
    encoder : RiT
        The fold's frozen stage-1 encoder (the one rule ``embed`` cached the tokens of), eval mode.
    load : callable
        ``load(subject) -> {"rois": float[N, S, S, S], "presence": bool[N], "volume": float[N]}``
        (:func:`~rgenima_lib.train.encoder.roi_loader`).
    encoder_rollout : dict, optional
        Subject -> float[N, N], the RiT rollout cached by rule ``embed``
        (:func:`~rgenima_lib.models.embedding_cache.load_encoder_rollout`).
    """

    encoder: RiT | None
    load: Callable[[str], dict] | None
    encoder_rollout: dict | None = None

    def patches(self, subjects: Sequence[str]) -> dict[str, torch.Tensor]:
        """``rois`` float32[B, N, S, S, S], ``presence`` bool[B, N], ``volume`` float32[B, N] on the encoder's device."""
        if self.load is None or self.encoder is None:
            raise ValueError("this attribution method needs the RiT checkpoint and the ROI patches")
        device = next(self.encoder.parameters()).device
        items = [self.load(s) for s in subjects]
        return {k: torch.as_tensor(np.stack([np.asarray(i[k]) for i in items])).to(device)
                for k in ("rois", "presence", "volume")}

    def rollout(self, subjects: Sequence[str]) -> torch.Tensor:
        """float32[B, N, N]: the cached RiT rollout of each subject."""
        if self.encoder_rollout is None:
            raise ValueError("the end-to-end rollout needs the RiT rollout cached by rule embed")
        return torch.as_tensor(np.stack([np.asarray(self.encoder_rollout[s], np.float32) for s in subjects]))


def encode_tokens(encoder: RiT, patches: torch.Tensor, presence: torch.Tensor, volume: torch.Tensor, *,
                  standardized_volume: torch.Tensor | None = None) -> torch.Tensor:
    """float[B, N, S, S, S], bool[B, N], float[B, N] -> the visual tokens float32[B * N, d] the LLM splices in.

    ``standardized_volume`` float[B, N]: the RiT's volume input itself, instead of the one computed from
    ``volume`` (:meth:`~rgenima_lib.models.rit.RiT.standardized_volume`), for the gradient methods' paths.
    """
    presence = presence.bool()
    tokens = encoder.encode_embedded(encoder.embed_patches(patches, presence), presence, volume,
                                     standardized_volume=standardized_volume)
    return tokens.reshape(-1, tokens.shape[-1])


def reads_volume(encoder: RiT | None) -> bool:
    """Whether the RiT's tokens read each ROI's volume (``roi_volume``): then it is an input to attribute too."""
    return encoder is not None and bool(encoder.config.roi_volume)


@dataclass
class AnswerBatch:
    """Prompts each followed by its answer, collated, with where each sample's parts sit.

    Attributes
    ----------
    inputs : dict
        ``input_ids``, ``attention_mask``, ``position_ids`` int64[B, T] (left padded), on the model's device.
    maps : list of TokenMap
        Per sample, with ``answer_rows="label"``: the rows that write the label token(s).
    """

    inputs: dict[str, torch.Tensor]
    maps: list[TokenMap]

    @property
    def width(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    def offset(self, b: int) -> int:
        """Left padding of sample b: its positions in the batch are ``offset + position``."""
        return self.width - self.maps[b].length


def answer_batch(model, samples: Sequence[PromptSample], spans_list, genes: Sequence[str],
                 answers: Sequence[str]) -> AnswerBatch:
    """Collate ``samples`` with the answer "This subject is <answer>." and locate genes, ROIs and label rows."""
    tok = model.tokenizer
    gene_index = {g: i for i, g in enumerate(genes)}
    eot = end_of_turn_ids(tok)
    maps = [token_map(tok, s.genome_text, sp, gene_index, np.asarray(s.visual).shape[0], a, "label",
                      model.image_token_id, eot) for s, sp, a in zip(samples, spans_list, answers)]
    batch = PromptCollator(tok, with_labels=True)(
        [replace(s, stage=a) for s, a in zip(samples, answers)])
    device = next(model.parameters()).device
    # gene tokens (llm.gene_input: tokens) travel as the collator's dosages and gene ids
    keys = ("input_ids", "attention_mask", "position_ids", "gene_dosages", "gene_ids")
    return AnswerBatch({k: batch[k].to(device) for k in keys if k in batch}, maps)


def text_embeddings(model, batch: AnswerBatch) -> torch.Tensor:
    """float[B, T, hidden]: the embedding table's rows of the batch's tokens (image slots overwritten later)."""
    return model.llm.get_input_embeddings()(batch.inputs["input_ids"])


def label_logprob(model, batch: AnswerBatch, visual_tokens: torch.Tensor,
                  text_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """f: the summed log-probability of each sample's label token(s).

    Parameters
    ----------
    model : RGenIMA
    batch : AnswerBatch
    visual_tokens : float[B * N, d_vis]
        :func:`encode_tokens`.
    text_embeds : float[B, T, hidden], optional
        Token embeddings to use instead of the table's (:func:`text_embeddings`).

    Returns
    -------
    float32[B]
    """
    ids = batch.inputs["input_ids"]
    rows = [torch.as_tensor(batch.offset(b) + m.answer_rows, device=ids.device) for b, m in enumerate(batch.maps)]
    keep = batch.width - int(min(int(r.min()) for r in rows))  # left padding: every label row is in the tail
    # gene tokens (llm.gene_input: tokens) are spliced from the batch's dosages, as in fine-tuning
    embeds = model.embed_inputs(ids, visual_tokens, batch.inputs.get("gene_dosages"), batch.inputs.get("gene_ids"),
                                text_embeds=text_embeds)
    logits = model.causal_lm(inputs_embeds=embeds, attention_mask=batch.inputs["attention_mask"],
                             position_ids=batch.inputs["position_ids"], use_cache=False,
                             logits_to_keep=keep).logits
    logp = torch.log_softmax(logits.float(), -1)
    start = batch.width - keep
    return torch.stack([logp[b, r - start, ids[b, r + 1]].sum() for b, r in enumerate(rows)])


def gene_sums(values: np.ndarray, batch: AnswerBatch, n_genes: int) -> np.ndarray:
    """Per gene, the sum of a per-position value over the gene's prompt tokens.

    Parameters
    ----------
    values : float[B, ..., T]
        Per batch position (last axis).
    batch : AnswerBatch
    n_genes : int

    Returns
    -------
    float32[B, ..., G]
    """
    out = np.zeros(values.shape[:-1] + (n_genes,), np.float32)
    for b, m in enumerate(batch.maps):
        pos = np.flatnonzero(m.gene_of_token >= 0)
        picked = values[b][..., batch.offset(b) + pos]
        np.add.at(out[b].reshape(-1, n_genes).T, m.gene_of_token[pos], picked.reshape(-1, len(pos)).T)
    return out


def roi_values(values: np.ndarray, batch: AnswerBatch) -> np.ndarray:
    """float[B, ..., T] -> float[B, ..., R]: the value at each ROI token's position."""
    return np.stack([values[b][..., batch.offset(b) + m.roi_positions] for b, m in enumerate(batch.maps)])


def gene_token_counts(batch: AnswerBatch, n_genes: int) -> np.ndarray:
    """float32[B, G]: prompt tokens of each gene block."""
    return np.stack([np.bincount(m.gene_of_token[m.gene_of_token >= 0], minlength=n_genes)
                     for m in batch.maps]).astype(np.float32)
