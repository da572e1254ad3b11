"""Attention dumps: per test subject gene, ROI and ROI–gene rollout shares, labels and predictions.

Design: docs/design.md, "Attention dump".

One file per model, data configuration and fold (rule ``attribute``); the
bootstrap, the enrichment test and Figures 1–2 are rebuilt from these files
alone. For each test subject with an image:

- the model's answer scoring (the same as :mod:`rgenima_lib.train.predict`):
  class probabilities and the predicted stage;
- one rollout pass (:mod:`rgenima_lib.attribution.rollout`) over the prompt
  followed by the *predicted* answer "This subject is <pred>.", eager
  attention, no KV cache;
- gene importance g (105): the answer row's rollout share summed over gene
  g's prompt tokens (tokens whose character span overlaps g's block of the
  SNP text, :class:`~rgenima_lib.genetics.serialize.GenomeText` spans);
- ROI importance r (109): the answer row's share of ROI token r;
- ROI–gene association a[r, g] (109 × 105): the share of gene g's tokens in
  ROI token r's row (paper 4.3, a_{s,r,g}).

Gene order (``gene_orders``): a token's rollout share falls with its
position under causal attention, so with the test side's one canonical order
a gene's importance is partly its place in the panel (which lists the GWAS
genes first). ``gene_orders = K`` averages the attributions over the
K seeded permutations of the subject's gene blocks (the canonical text is
still the one scored for the prediction).

"Answer row" (``answer_rows``): ``label`` (default) averages the rows of the
positions that predict the label token(s) (the " is" before " NC"), i.e.
where the model decides the stage; ``prompt_end`` takes the last prompt
position (which predicts "This"). The paper does not say which row it used.

File layout (``.npz``, compressed, no pickles): ``subjects`` str[n],
``genes`` str[G] (panel order), ``rois`` str[R] (token order),
``gene_importance`` float16[n, G], ``roi_importance`` float16[n, R],
``roi_gene`` float16[n, R, G], ``label`` / ``predicted`` str[n],
``probabilities`` float16[n, 4] (NC, SMC, MCI, AD), ``sink_share``
float16[n], ``roi_presence`` uint8[n, R], ``gene_tokens`` uint16[n, G]
(tokens per gene block), ``fold`` int16[n], ``meta`` (a JSON string: model,
note, sink policy, answer rows, layers, ...). A gene missing from the SNP text
(no SNPs left after QC) and an absent ROI get importance 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output
from rgenima_lib.vocabulary import STAGES

log = logging.getLogger("rgenima")
# torch is imported inside the functions that run the model: reading and pooling dumps (bootstrap, figures)
# must not pay for it.

DUMP_FORMAT = "rgenima-attention-dump/1"
ANSWER_ROWS = ("label", "prompt_end")
_ARRAYS = ("subjects", "genes", "rois", "gene_importance", "roi_importance", "roi_gene", "label", "predicted",
           "probabilities", "sink_share", "roi_presence", "gene_tokens", "fold")


@dataclass
class AttentionDump:
    """Per-subject attribution arrays of one or more folds (module docstring for the fields).

    Attributes
    ----------
    subjects : str[n]
    genes : str[G]
    rois : str[R]
    gene_importance : float16[n, G]
    roi_importance : float16[n, R]
    roi_gene : float16[n, R, G]
    label, predicted : str[n]
    probabilities : float16[n, 4]
    sink_share : float16[n]
    roi_presence : uint8[n, R]
    gene_tokens : uint16[n, G]
    fold : int16[n]
    meta : dict
    """

    subjects: np.ndarray
    genes: np.ndarray
    rois: np.ndarray
    gene_importance: np.ndarray
    roi_importance: np.ndarray
    roi_gene: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    sink_share: np.ndarray
    roi_presence: np.ndarray
    gene_tokens: np.ndarray
    fold: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n, g, r = len(self.subjects), len(self.genes), len(self.rois)
        expected = {"gene_importance": (n, g), "roi_importance": (n, r), "roi_gene": (n, r, g),
                    "label": (n,), "predicted": (n,), "probabilities": (n, len(STAGES)), "sink_share": (n,),
                    "roi_presence": (n, r), "gene_tokens": (n, g), "fold": (n,)}
        bad = {k: getattr(self, k).shape for k, shape in expected.items() if getattr(self, k).shape != shape}
        if bad:
            raise ValueError(f"dump arrays disagree with {n} subjects, {g} genes, {r} ROIs: {bad}")

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def note(self) -> str:
        """'demo model, random init' for dumps of the demo LLM, else ''."""
        return str(self.meta.get("note", ""))

    def stage_mask(self, stage: str) -> np.ndarray:
        """bool[n]: subjects whose true label is ``stage``."""
        return self.label == stage

    def nbytes(self) -> int:
        """Bytes of the arrays in memory (uncompressed)."""
        return sum(getattr(self, k).nbytes for k in _ARRAYS)


def write_dump(path: str | Path, dump: AttentionDump) -> None:
    """Write ``dump`` as a compressed ``.npz`` atomically (float16 attributions, no pickles)."""
    arrays = {
        "subjects": np.asarray(dump.subjects, dtype=str), "genes": np.asarray(dump.genes, dtype=str),
        "rois": np.asarray(dump.rois, dtype=str),
        "gene_importance": np.asarray(dump.gene_importance, dtype=np.float16),
        "roi_importance": np.asarray(dump.roi_importance, dtype=np.float16),
        "roi_gene": np.asarray(dump.roi_gene, dtype=np.float16),
        "label": np.asarray(dump.label, dtype=str), "predicted": np.asarray(dump.predicted, dtype=str),
        "probabilities": np.asarray(dump.probabilities, dtype=np.float16),
        "sink_share": np.asarray(dump.sink_share, dtype=np.float16),
        "roi_presence": np.asarray(dump.roi_presence, dtype=np.uint8),
        "gene_tokens": np.asarray(dump.gene_tokens, dtype=np.uint16),
        "fold": np.asarray(dump.fold, dtype=np.int16),
        "meta": np.asarray(json.dumps({"format": DUMP_FORMAT, **dump.meta}, sort_keys=True, default=str)),
    }
    for key in ("gene_importance", "roi_importance", "roi_gene"):
        if not np.isfinite(arrays[key]).all():
            raise ValueError(f"{key} holds NaN or values beyond float16")
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def read_dump(path: str | Path) -> AttentionDump:
    """Read one dump written by :func:`write_dump`.

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file (not a zip, a member that does not decompress,
        arrays that disagree); the fix: delete it so that rule ``attribute`` rebuilds it.
    """
    import zipfile
    import zlib

    path = Path(path)
    # Snakemake reruns a job only when its output is missing: a damaged dump must be deleted to be rebuilt.
    fix = f"delete it (rm '{path}') and rerun the workflow: rule attribute rebuilds it."
    if not path.is_file():
        raise InputDataError("attention dump not found.", path=path, fix="rerun the workflow: rule attribute writes it.")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise InputDataError("not an attention dump (no meta).", path=path, fix=fix)
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != DUMP_FORMAT:
                raise InputDataError(f"not a {DUMP_FORMAT} file ({meta.get('format')!r}).", path=path, fix=fix)
            missing = [k for k in _ARRAYS if k not in data.files]
            if missing:
                raise InputDataError(f"attention dump lacks {', '.join(missing)}.", path=path, fix=fix)
            return AttentionDump(**{k: data[k] for k in _ARRAYS}, meta=meta)
    except InputDataError:
        raise
    # A truncated .npz is a zip without its central directory (BadZipFile); a damaged member fails to
    # inflate (zlib.error, EOFError) or to parse (ValueError, also AttentionDump's shape check).
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise InputDataError(f"damaged attention dump ({type(exc).__name__}: {exc}).", path=path, fix=fix) from exc


def concat_dumps(dumps: Sequence[AttentionDump]) -> AttentionDump:
    """Pool the folds of one model: every test subject once (subject-level folds).

    Raises
    ------
    ValueError
        Different gene or ROI lists, or a subject in two dumps.
    """
    if not dumps:
        raise ValueError("no dumps to pool")
    first = dumps[0]
    for d in dumps[1:]:
        if not (np.array_equal(d.genes, first.genes) and np.array_equal(d.rois, first.rois)):
            raise ValueError("dumps list different genes or ROIs; they come from different panels or ROI tables")
    subjects = np.concatenate([d.subjects for d in dumps])
    if len(set(subjects.tolist())) != len(subjects):
        raise ValueError("a subject appears in two dumps: pooled folds must not overlap (subject-level folds)")
    merged = {k: np.concatenate([getattr(d, k) for d in dumps]) for k in _ARRAYS if k not in ("genes", "rois")}
    notes = sorted({d.note for d in dumps if d.note})
    meta = {**first.meta, "folds": sorted({int(f) for d in dumps for f in np.unique(d.fold)}),
            "note": "; ".join(notes)}
    return AttentionDump(genes=first.genes, rois=first.rois, **merged, meta=meta)


# ----------------------------------------------------------------------------- token maps
@dataclass
class TokenMap:
    """Where one sample's genes, ROIs and answer rows sit in its expanded sequence (no padding).

    Attributes
    ----------
    length : int
        Expanded sequence length (prompt with the anchor expanded, answer, end of turn).
    gene_of_token : int64[length]
        Index into the gene list of each position, -1 for none.
    roi_positions : int64[n_visual]
        Position of ROI token r.
    answer_rows : int64[n_rows]
        Rows averaged for the answer (see module docstring).
    """

    length: int
    gene_of_token: np.ndarray
    roi_positions: np.ndarray
    answer_rows: np.ndarray


def gene_of_tokens(offsets, genome_start: int, spans, gene_index: dict[str, int]) -> np.ndarray:
    """Gene index of each prompt token from character spans (-1: not in a gene block).

    Parameters
    ----------
    offsets : sequence of (start, end), length n_tokens
        Character span of each token in the rendered prompt.
    genome_start : int
        Where the SNP text starts in the rendered prompt.
    spans : sequence of (gene, start, end)
        Gene blocks within the SNP text (``GenomeText.spans``).
    gene_index : dict
        Gene name -> column of the output arrays; genes not in it are ignored.

    Returns
    -------
    int64[n_tokens]
        A token overlapping two blocks goes to the one it overlaps most (a
        BPE merge across the newline between blocks would do that; the
        Qwen2 pre-tokenizer never makes one).
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    kept = [(gene_index[g], s, e) for g, s, e in spans if g in gene_index]
    out = np.full(len(off), -1, dtype=np.int64)
    if not kept or not len(off):
        return out
    idx = np.array([k[0] for k in kept])
    starts = genome_start + np.array([k[1] for k in kept])
    ends = genome_start + np.array([k[2] for k in kept])
    overlap = np.minimum(off[:, 1:2], ends[None]) - np.maximum(off[:, 0:1], starts[None])  # [n_tok, n_blocks]
    best = overlap.argmax(1)
    hit = overlap[np.arange(len(off)), best] > 0
    out[hit] = idx[best[hit]]
    return out


def token_map(tokenizer, genome_text: str, spans, gene_index: dict[str, int], n_visual: int, predicted: str,
              answer_rows: str = "label", image_token_id: int | None = None, eot_ids=None) -> TokenMap:
    """Locate genes, ROIs and answer rows in the sequence that :class:`PromptCollator` builds.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
    genome_text : str
    spans : sequence of (gene, start, end)
        ``GenomeText.spans`` of ``genome_text``.
    gene_index : dict
        Gene -> output column.
    n_visual : int
        Visual tokens spliced at the anchor (109 for RiT).
    predicted : str
        The stage whose answer is appended ("This subject is <predicted>.").
    answer_rows : {"label", "prompt_end"}
    image_token_id, eot_ids : optional
        Cached lookups (see :func:`~rgenima_lib.models.prompting.encode_prompt`).

    Returns
    -------
    TokenMap
    """
    from rgenima_lib.models.prompting import ANSWER_TEMPLATE, answer_text, encode_prompt

    if answer_rows not in ANSWER_ROWS:
        raise ValueError(f"answer_rows must be one of {ANSWER_ROWS}, not {answer_rows!r}")
    enc = encode_prompt(tokenizer, genome_text, True, predicted, image_token_id=image_token_id, eot_ids=eot_ids,
                        with_offsets=True)
    anchor, n_prompt = enc.anchor_index, enc.n_prompt
    shift = n_visual - 1  # positions after the anchor move by the expansion

    prompt_genes = gene_of_tokens(enc.offsets, enc.genome_char_span[0], spans, gene_index)
    if (prompt_genes[anchor:] >= 0).any():
        raise ValueError("gene tokens after the image anchor: the prompt template changed")
    length = len(enc.input_ids) + shift
    gene_of = np.full(length, -1, dtype=np.int64)
    gene_of[:anchor] = prompt_genes[:anchor]

    if answer_rows == "prompt_end":
        rows = np.array([n_prompt - 1 + shift])
    else:
        answer = answer_text(predicted)
        label_start = ANSWER_TEMPLATE.index("{label}")
        enc_ans = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
        off = np.asarray(enc_ans["offset_mapping"]).reshape(-1, 2)
        is_label = (off[:, 1] > label_start) & (off[:, 0] < label_start + len(predicted))
        # Row p - 1 predicts token p: the rows where the model writes the stage.
        rows = n_prompt + np.flatnonzero(is_label) - 1 + shift
    return TokenMap(length, gene_of, anchor + np.arange(n_visual), rows.astype(np.int64))


# ----------------------------------------------------------------------------- the rollout pass
def _column_matrix(maps: Sequence[TokenMap], width: int, n_genes: int, n_rois: int):
    """M float32[B, width, 1 + G + R]: first token, gene blocks, ROI tokens (left padding)."""
    import torch

    cols = torch.zeros(len(maps), width, 1 + n_genes + n_rois)
    for b, m in enumerate(maps):
        pad = width - m.length
        cols[b, pad, 0] = 1.0
        pos = np.flatnonzero(m.gene_of_token >= 0)
        cols[b, torch.as_tensor(pad + pos), torch.as_tensor(1 + m.gene_of_token[pos])] = 1.0
        cols[b, torch.as_tensor(pad + m.roi_positions), torch.as_tensor(1 + n_genes + np.arange(n_rois))] = 1.0
    return cols


@dataclass
class BatchAttribution:
    """Attribution of one batch (float32 arrays, before the float16 of the dump)."""

    gene_importance: np.ndarray
    roi_importance: np.ndarray
    roi_gene: np.ndarray
    sink_share: np.ndarray
    gene_tokens: np.ndarray


def rollout_batch(model, samples, spans_list, genes: Sequence[str], predicted: Sequence[str],
                  sink: str = "exclude", answer_rows: str = "label") -> BatchAttribution:
    """Streaming rollout of a batch of samples with images, each followed by its predicted answer.

    Parameters
    ----------
    model : RGenIMA
        Loaded with ``attn_implementation="eager"``, in eval mode.
    samples : sequence of PromptSample
        With ``visual`` float[R, d] (R = number of ROIs).
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
    import torch

    from rgenima_lib.attribution.rollout import StreamingRollout, read_rows, rollout_hooks
    from rgenima_lib.models.prompting import PromptCollator, PromptSample, end_of_turn_ids

    tok = model.tokenizer
    gene_index = {g: i for i, g in enumerate(genes)}
    n_genes = len(genes)
    n_rois = int(np.asarray(samples[0].visual).shape[0])
    eot = end_of_turn_ids(tok)
    maps = [token_map(tok, s.genome_text, sp, gene_index, np.asarray(s.visual).shape[0], p, answer_rows,
                      model.image_token_id, eot) for s, sp, p in zip(samples, spans_list, predicted)]
    with_answer = [PromptSample(s.subject, s.genome_text, p, s.visual, s.presence) for s, p in zip(samples, predicted)]
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
    with torch.no_grad(), rollout_hooks(model, tracker):
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


def attribute_samples(model, samples, spans_list, genes: Sequence[str], rois: Sequence[str], *, fold: int = 0,
                      sink: str = "exclude", answer_rows: str = "label", batch_size: int = 1,
                      extra_orders=None, meta: dict | None = None) -> AttentionDump:
    """Score, then roll out, every sample; return the dump of one fold.

    Parameters
    ----------
    model : RGenIMA
        Eager attention (``RGenIMA.from_checkpoint(path, attn_implementation="eager")``).
    samples : sequence of PromptSample
        Test samples with images and true stages.
    spans_list : sequence
        ``GenomeText.spans`` per sample.
    genes : sequence of str, length G
        The panel's genes, in panel order.
    rois : sequence of str, length R
        ROI names in token order (R must equal the visual tokens per sample).
    fold : int
    sink, answer_rows : str
        See :mod:`rgenima_lib.attribution.rollout` and the module docstring.
    batch_size : int
        Samples per forward pass (1 at paper length: one layer's eager
        attention is H × T² floats per sample).
    extra_orders : list of list of GenomeText, optional
        Per sample, the same genome in other gene orders. When given (and not
        empty) the attributions are the mean over these orders only, and the
        sample's own text is used for the prediction alone: under causal
        attention a token's rollout share falls steeply with its position, so
        any fixed order, kept even at weight 1/K, leaves a gene's importance
        partly its place in the panel (see :func:`load_attribution_samples`).
    meta : dict, optional
        Recorded in the dump (model, checkpoint, note, ...).

    Returns
    -------
    AttentionDump
    """
    from rgenima_lib.attribution.rollout import SINK_MODES
    from rgenima_lib.models.prompting import PromptCollator, PromptSample
    from rgenima_lib.train.predict import score_answers

    if sink not in SINK_MODES:
        raise ValueError(f"sink must be one of {SINK_MODES}, not {sink!r}")
    if not samples:
        raise ValueError("no samples to attribute")
    for s in samples:
        if s.visual is None:
            raise ValueError(f"{s.subject}: no image; attribution needs the ROI tokens")
        if np.asarray(s.visual).shape[0] != len(rois):
            raise ValueError(f"{s.subject}: {np.asarray(s.visual).shape[0]} visual tokens but {len(rois)} ROIs")
    model.eval()
    collate = PromptCollator(model.tokenizer, with_labels=False)
    parts, probs = [], []
    for start in tqdm(range(0, len(samples), batch_size), desc="attribute", unit="batch", disable=None,
                      leave=False):
        chunk = samples[start:start + batch_size]
        p = score_answers(model, collate(chunk))
        pred = [STAGES[int(i)] for i in p.argmax(1)]
        n_extra = len(extra_orders[start]) if extra_orders else 0
        views = [] if n_extra else [rollout_batch(model, chunk, spans_list[start:start + batch_size], genes, pred,
                                                  sink, answer_rows)]
        for o in range(n_extra):  # the same subjects with their gene blocks in another order
            texts = [extra_orders[start + i][o] for i in range(len(chunk))]
            permuted = [PromptSample(s.subject, t.text, s.stage, s.visual, s.presence) for s, t in zip(chunk, texts)]
            views.append(rollout_batch(model, permuted, [t.spans for t in texts], genes, pred, sink, answer_rows))
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
        meta={"sink": sink, "answer_rows": answer_rows, "n_layers": n_layers, "fold": fold,
              "gene_orders": (len(extra_orders[0]) if extra_orders and extra_orders[0] else 1),
              "gene_order_source": "permuted" if extra_orders and extra_orders[0] else "own", **(meta or {})})


def load_attribution_samples(samples_tsv, imputed, snps, embeddings, limit: int | None = None,
                             gene_orders: int = 1, seed: int = 0):
    """The fold's test samples with images, each one's gene spans, and the same genomes in other gene orders.

    Parameters
    ----------
    samples_tsv, imputed, snps, embeddings : path
        As :func:`rgenima_lib.train.finetune.load_prompt_samples`.
    limit : int, optional
        First ``limit`` test samples only.
    gene_orders : int
        1: attribute the sample's own text (canonical on the test side; the
        paper). K > 1: attribute K random permutations of its gene blocks (the
        paper's augmentation, 4.4.2), seeded by (seed, subject, copy), and keep
        the own text for the prediction.
    seed : int

    Returns
    -------
    samples : list of PromptSample
        Test side, with images (samples without one are left out and logged).
    spans : list
        ``GenomeText.spans`` per sample.
    extra_orders : list of list of GenomeText
        Per sample, ``gene_orders`` permuted texts (empty lists for 1).
    """
    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.genetics.serialize import GenomeTexts
    from rgenima_lib.train.finetune import load_prompt_samples

    samples = load_prompt_samples(samples_tsv, "test", imputed, snps, embeddings, limit=limit)
    table = read_samples(samples_tsv)
    table = table[table["side"] == "test"]
    if limit is not None:
        table = table.iloc[:limit]
    from rgenima_lib.genetics.augment import permutation_seed

    texts = GenomeTexts.from_files(imputed, snps)
    out, spans, extra = [], [], []
    for sample, perm_seed in zip(samples, table["perm_seed"].astype(int)):
        if sample.visual is None:
            continue
        genome = texts(sample.subject, perm_seed)
        if genome.text != sample.genome_text:
            raise RuntimeError(f"{sample.subject}: SNP text rebuilt differently")
        out.append(sample)
        spans.append(genome.spans)
        # Stream 7: apart from the data sets' training copies (streams 0 and 1).
        extra.append([texts(sample.subject, permutation_seed(seed, sample.subject, k, stream=7))
                      for k in range(1, gene_orders + 1)] if gene_orders > 1 else [])
    if len(out) < len(samples):
        log.info("attribute: %d of %d test samples have no image and are left out", len(samples) - len(out),
                 len(samples))
    if not out:
        raise InputDataError("no test sample with an image.", path=samples_tsv,
                             fix="attribute a data configuration with images (image_gene).")
    return out, spans, extra


def synthetic_dump(n_subjects: int, genes: Sequence[str], rois: Sequence[str], *, planted_genes=(),
                   planted_rois: dict | None = None, planted_pairs=(), effect: float = 0.5, seed: int = 0,
                   note: str = "synthetic dump (tests, benchmarks)") -> AttentionDump:
    """A dump with known signal, for tests and benchmarks (no model involved).

    Baseline shares are log-normal around 1 / (number of items); planted genes
    get ``effect`` / (number of items) more importance in every subject, planted
    ROIs of a stage (``planted_rois[stage]``) and planted pairs
    ``(roi, gene, stages)`` likewise in that stage's subjects only. Stages follow the paper's
    proportions (644 / 100 / 916 / 338).

    Returns
    -------
    AttentionDump
    """
    from rgenima_lib.synthetic.clinical import stage_counts

    rng = np.random.default_rng(seed)
    g, r = len(genes), len(rois)
    counts = stage_counts(n_subjects)
    labels = np.repeat(np.array(STAGES), [counts[s] for s in STAGES])
    rng.shuffle(labels)
    gi = rng.lognormal(0.0, 0.3, (n_subjects, g)) / g
    ri = rng.lognormal(0.0, 0.3, (n_subjects, r)) / r
    rg = rng.lognormal(0.0, 0.3, (n_subjects, r, g)) / g  # each ROI row shares ~1 over the genes
    gidx = {x: i for i, x in enumerate(genes)}
    ridx = {x: i for i, x in enumerate(rois)}
    # Additive effects: eq. 17's stability is scale-free, so a multiplicative one would not change it.
    gi[:, [gidx[x] for x in planted_genes]] += effect / g
    for stage, names in (planted_rois or {}).items():
        ri[np.ix_(labels == stage, [ridx[x] for x in names])] += effect / r
    for roi, gene, stages in planted_pairs:
        rg[np.isin(labels, list(stages)), ridx[roi], gidx[gene]] += effect / g
    probs = rng.dirichlet(np.ones(len(STAGES)), n_subjects)
    return AttentionDump(
        subjects=np.array([f"S{i:05d}" for i in range(n_subjects)]), genes=np.array(list(genes)),
        rois=np.array(list(rois)), gene_importance=gi.astype(np.float16), roi_importance=ri.astype(np.float16),
        roi_gene=rg.astype(np.float16), label=labels, predicted=np.array(STAGES)[probs.argmax(1)],
        probabilities=probs.astype(np.float16), sink_share=rng.uniform(0, 0.5, n_subjects).astype(np.float16),
        roi_presence=np.ones((n_subjects, r), np.uint8), gene_tokens=np.full((n_subjects, g), 10, np.uint16),
        fold=(np.arange(n_subjects) % 3).astype(np.int16), meta={"note": note, "model": "synthetic"})
