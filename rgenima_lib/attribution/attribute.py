"""Attributing a fold's test subjects: answer scoring, then one streaming rollout pass per sample.

For each test subject with an image:

- the model's answer scoring (the same as :mod:`rgenima_lib.train.predict`):
  class probabilities and the predicted stage;
- one rollout pass (:mod:`rgenima_lib.attribution.rollout`) over the prompt
  followed by the *predicted* answer "This subject is <pred>.", SDPA for the
  layer outputs and the attention rebuilt in row blocks, no KV cache;
- gene importance g: the answer row's rollout share summed over gene g's
  prompt tokens (:mod:`rgenima_lib.attribution.token_map`);
- ROI importance r: the answer row's share of ROI token r;
- ROI–gene association a[r, g]: the share of gene g's tokens in ROI token
  r's row (paper 4.3, a_{s,r,g}).

Gene order (``gene_orders``): a token's rollout share falls with its
position under causal attention, so with the test side's one canonical order
a gene's importance is partly its place in the panel (which lists the GWAS
genes first). ``gene_orders = K`` averages the attributions over the
K seeded permutations of the subject's gene blocks
(:func:`rgenima_lib.data.prompt_samples.load_attribution_prompts`; the
canonical text is still the one scored for the prediction).

The result is an :class:`~rgenima_lib.attribution.dump_format.AttentionDump`.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rgenima_lib.attribution.batch_result import BatchAttribution
from rgenima_lib.attribution.dump_format import AttentionDump
from rgenima_lib.attribution.end_to_end import ImageInputs
from rgenima_lib.attribution.end_to_end_rollout import compose_encoder_rollout
from rgenima_lib.attribution.gradient_attention import gradient_attention_batch
from rgenima_lib.attribution.gradient_input import gradient_input_batch
from rgenima_lib.attribution.integrated_gradients import integrated_gradients_batch
from rgenima_lib.attribution.methods import check_method
from rgenima_lib.attribution.rollout import SINK_MODES, StreamingRollout, read_rows, rollout_attention
from rgenima_lib.attribution.token_map import TokenMap, token_map
from rgenima_lib.vocabulary import STAGES
from rgenima_lib.models.prompting import PromptCollator, end_of_turn_ids
from rgenima_lib.train.predict import score_answers


def _column_matrix(maps: Sequence[TokenMap], width: int, n_genes: int, n_rois: int):
    """M float32[B, width, 1 + G + R]: first token, gene blocks, ROI tokens (left padding)."""
    cols = torch.zeros(len(maps), width, 1 + n_genes + n_rois)
    for b, m in enumerate(maps):
        pad = width - m.length
        cols[b, pad, 0] = 1.0
        pos = np.flatnonzero(m.gene_of_token >= 0)
        cols[b, torch.as_tensor(pad + pos), torch.as_tensor(1 + m.gene_of_token[pos])] = 1.0
        cols[b, torch.as_tensor(pad + m.roi_positions), torch.as_tensor(1 + n_genes + np.arange(n_rois))] = 1.0
    return cols


def rollout_batch(model, samples, spans_list, genes: Sequence[str], predicted: Sequence[str],
                  sink: str = "exclude", answer_rows: str = "label") -> BatchAttribution:
    """Streaming rollout of a batch of samples with images, each followed by its predicted answer.

    Parameters
    ----------
    model : RGenIMA
        In eval mode, with any attention implementation (the pass picks its own).
    samples : sequence of PromptSample
        With ``visual`` float[R, d] (R = number of ROIs), or all without (a gene-only LLM: R = 0).
    spans_list : sequence of spans
        ``GenomeText.spans`` per sample.
    genes : sequence of str, length G
        Output gene order (the panel).
    predicted : sequence of str
        Stage appended as the answer of each sample.
    sink : {"exclude", "keep", "per_layer"}
    answer_rows : {"label", "prompt_end"}

    Returns
    -------
    BatchAttribution
        gene_importance [B, G], roi_importance [B, R], roi_gene [B, R, G],
        sink_share [B], gene_tokens [B, G].
    """
    tok = model.tokenizer
    gene_index = {g: i for i, g in enumerate(genes)}
    n_genes = len(genes)
    n_rois = 0 if samples[0].visual is None else int(np.asarray(samples[0].visual).shape[0])  # 0: gene-only LLM
    eot = end_of_turn_ids(tok)
    maps = [token_map(tok, s.genome_text, sp, gene_index, n_rois, p, answer_rows,
                      model.image_token_id, eot) for s, sp, p in zip(samples, spans_list, predicted)]
    with_answer = [replace(s, stage=p) for s, p in zip(samples, predicted)]
    batch = PromptCollator(tok, with_labels=True)(with_answer)
    batch.pop("labels")
    width = batch["input_ids"].shape[1]
    for b, m in enumerate(maps):  # the collator and the token map must agree on every sample's length
        if int(batch["position_ids"][b, -1]) + 1 != m.length:
            raise RuntimeError(f"{samples[b].subject}: token map length {m.length} != collated "
                               f"{int(batch['position_ids'][b, -1]) + 1}")
    device = next(model.parameters()).device
    valid = batch["attention_mask"].bool()
    sink_index = torch.tensor([width - m.length for m in maps])
    tracker = StreamingRollout(_column_matrix(maps, width, n_genes, n_rois).to(device), valid.to(device),
                               sink_index.to(device), sink=sink)
    with torch.no_grad(), rollout_attention(model, tracker):
        model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False, logits_to_keep=1)
    if tracker.n_layers == 0:
        raise RuntimeError("no attention layer reported its weights")
    shares = read_rows(tracker.state, [torch.as_tensor(width - m.length + m.answer_rows) for m in maps],
                       torch.stack([torch.as_tensor(width - m.length + m.roi_positions) for m in maps]), sink=sink)
    answer = shares.answer.float().cpu().numpy()
    roi_rows = shares.roi_rows.float().cpu().numpy()
    gene_tokens = np.stack([np.bincount(m.gene_of_token[m.gene_of_token >= 0], minlength=n_genes) for m in maps])
    return BatchAttribution(answer[:, 1:1 + n_genes], answer[:, 1 + n_genes:], roi_rows[:, :, 1:1 + n_genes],
                            shares.sink_share.float().cpu().numpy(), gene_tokens)


def attribute_batch(method: str, model, image: ImageInputs | None, samples, spans_list, genes: Sequence[str],
                    predicted: Sequence[str], sink: str = "exclude", answer_rows: str = "label",
                    ig_steps: int = 32) -> BatchAttribution:
    """One batch by the named method (:mod:`rgenima_lib.attribution.methods`); the arguments as :func:`rollout_batch`.

    ``image`` (the RiT and the ROI patches, or the cached RiT rollout for ``rollout``) is needed by
    every method but ``rollout_tokens`` on a model that reads ROI tokens (None for a gene-only LLM); ``sink`` and ``answer_rows`` apply to the rollouts, the
    gradient methods explain the label rows; ``ig_steps``: integrated gradients' path points.
    """
    if method in ("rollout", "rollout_tokens"):
        view = rollout_batch(model, samples, spans_list, genes, predicted, sink, answer_rows)
        # a gene-only model (no image) has no ROI tokens: its genes are read from the text, as rollout_tokens
        if method == "rollout" and image is not None:
            view = compose_encoder_rollout(view, image.rollout([s.subject for s in samples]).numpy())
    elif method == "integrated_gradients":
        view = integrated_gradients_batch(model, image, samples, spans_list, genes, predicted, steps=ig_steps)
    elif method == "gradient_attention":
        view = gradient_attention_batch(model, image, samples, spans_list, genes, predicted)
    else:
        view = gradient_input_batch(model, image, samples, spans_list, genes, predicted)
    if view.completeness is None:
        view.completeness = np.full((len(samples), 2), np.nan, np.float32)
    return view


def completeness_summary(completeness: np.ndarray) -> dict:
    """Integrated gradients' check over subjects: float[n, 2] (sum of attributions, f(x) - f(x')) -> dict."""
    total, gap = completeness[:, 0].astype(float), completeness[:, 1].astype(float)
    return {"sum_attributions": total.tolist(), "logprob_change": gap.tolist(),
            "max_abs_error": float(np.abs(total - gap).max()),
            "mean_abs_relative_error": float(np.mean(np.abs(total - gap) / np.maximum(np.abs(gap), 1e-6)))}


def attribute_samples(model, samples, spans_list, genes: Sequence[str], rois: Sequence[str], *, fold: int = 0,
                      sink: str = "exclude", answer_rows: str = "label", batch_size: int = 1,
                      extra_orders=None, meta: dict | None = None, method: str = "rollout_tokens",
                      image: ImageInputs | None = None, ig_steps: int = 32,
                      explain: str = "predicted") -> AttentionDump:
    """Score, then roll out, every sample; return the dump of one fold.

    Parameters
    ----------
    model : RGenIMA
        Any attention implementation: scoring runs SDPA, the rollout pass its own (SDPA-based).
    samples : sequence of PromptSample
        Test samples with true stages; with images unless ``rois`` is empty (a gene-only LLM).
    spans_list : sequence
        ``GenomeText.spans`` per sample.
    genes : sequence of str, length G
        The panel's genes, in panel order.
    rois : sequence of str, length R
        ROI names in token order (R must equal the visual tokens per sample); empty for a gene-only LLM.
    fold : int
    sink, answer_rows : str
        See :mod:`rgenima_lib.attribution.rollout` and :mod:`rgenima_lib.attribution.token_map`.
    batch_size : int
        Samples per forward pass (the rollout pass holds 2 × T × K floats
        of state per sample beside the SDPA forward).
    extra_orders : list of list of GenomeText, optional
        Per sample, the same genome in other gene orders. When given (and not
        empty) the attributions are the mean over these orders only, and the
        sample's own text is used for the prediction alone: under causal
        attention a token's rollout share falls steeply with its position, so
        any fixed order, kept even at weight 1/K, leaves a gene's importance
        partly its place in the panel (see
        :func:`~rgenima_lib.data.prompt_samples.load_attribution_prompts`).
    meta : dict, optional
        Recorded in the dump (model, checkpoint, note, ...).
    method : str
        :data:`~rgenima_lib.attribution.methods.METHODS`; see :func:`attribute_batch`.
    image : ImageInputs, optional
        Needed by every method but ``rollout_tokens``.
    ig_steps : int
        Integrated gradients' path points.
    explain : {"predicted", "label"}
        The stage whose answer the gradient methods and the label rows explain: the model's prediction
        (default), or the subject's own stage (what carries the evidence of the stage it has, which is
        what a per-stage ROI selection asks; a misclassified subject then still speaks for its stage).

    Returns
    -------
    AttentionDump
    """
    if sink not in SINK_MODES:
        raise ValueError(f"sink must be one of {SINK_MODES}, not {sink!r}")
    if explain not in ("predicted", "label"):
        raise ValueError(f"explain must be 'predicted' or 'label', not {explain!r}")
    if explain == "label" and any(s.stage not in STAGES for s in samples):
        raise ValueError("explain='label' needs every sample's stage")
    check_method(method)
    if not samples:
        raise ValueError("no samples to attribute")
    for s in samples:  # no ROIs (a gene-only LLM): no sample may carry ROI tokens
        if (s.visual is None) != (len(rois) == 0):
            raise ValueError(f"{s.subject}: {'no' if s.visual is None else 'an'} image, {len(rois)} ROIs")
        if s.visual is not None and np.asarray(s.visual).shape[0] != len(rois):
            raise ValueError(f"{s.subject}: {np.asarray(s.visual).shape[0]} visual tokens but {len(rois)} ROIs")
    model.eval()
    collate = PromptCollator(model.tokenizer, with_labels=False)
    parts, probs = [], []
    for start in tqdm(range(0, len(samples), batch_size), desc="attribute", unit="batch", disable=None,
                      leave=False):
        chunk = samples[start:start + batch_size]
        p = score_answers(model, collate(chunk))
        pred = [STAGES[int(i)] for i in p.argmax(1)]
        target = pred if explain == "predicted" else [s.stage for s in chunk]
        n_extra = len(extra_orders[start]) if extra_orders else 0
        views = [] if n_extra else [attribute_batch(method, model, image, chunk, spans_list[start:start + batch_size],
                                                    genes, target, sink, answer_rows, ig_steps)]
        for o in range(n_extra):  # the same subjects with their gene blocks in another order
            texts = [extra_orders[start + i][o] for i in range(len(chunk))]
            permuted = [replace(s, genome_text=t.text, genes=getattr(t, "genes", None)) for s, t in zip(chunk, texts)]
            views.append(attribute_batch(method, model, image, permuted, [t.spans for t in texts], genes, target, sink,
                                         answer_rows, ig_steps))
        parts.append(BatchAttribution(*(np.mean([getattr(v, f.name) for v in views], axis=0)
                                        for f in fields(BatchAttribution))))
        probs.append(p)
    probabilities = np.concatenate(probs)
    cat = {f.name: np.concatenate([getattr(b, f.name) for b in parts]) for f in fields(BatchAttribution)}
    presence = np.stack([np.ones(len(rois), np.uint8) if s.presence is None else np.asarray(s.presence, np.uint8)
                         for s in samples])
    # Absent ROIs are excluded from attention; state it in the numbers too.
    cat["roi_importance"] = cat["roi_importance"] * presence
    cat["roi_gene"] = cat["roi_gene"] * presence[:, :, None]
    n_layers = len([m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")])
    return AttentionDump(
        subjects=np.array([s.subject for s in samples], dtype=str), genes=np.array(list(genes), dtype=str),
        rois=np.array(list(rois), dtype=str), gene_importance=cat["gene_importance"],
        roi_importance=cat["roi_importance"], roi_gene=cat["roi_gene"],
        label=np.array([s.stage or "" for s in samples], dtype=str),
        predicted=np.array([STAGES[int(i)] for i in probabilities.argmax(1)], dtype=str),
        probabilities=probabilities, sink_share=cat["sink_share"], roi_presence=presence,
        gene_tokens=cat["gene_tokens"], fold=np.full(len(samples), fold, dtype=np.int16),
        meta={"method": method, "explain": explain, "sink": sink, "answer_rows": answer_rows, "n_layers": n_layers,
              "fold": fold,
              **({"ig_steps": ig_steps, "completeness": completeness_summary(cat["completeness"])}
                 if method == "integrated_gradients" else {}),
              "gene_orders": (len(extra_orders[0]) if extra_orders and extra_orders[0] else 1),
              "gene_order_source": "permuted" if extra_orders and extra_orders[0] else "own", **(meta or {})})
