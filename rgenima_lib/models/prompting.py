"""The R-GenIMA prompt (paper 4.2.2): chat template, image anchor, answer labels, batching.

One sample becomes one token sequence:

    <chat template: system = the paper's first two sentences,
                    user   = "Genome Information: <SNP text> Brain Image: <image>. Your task ...">
    <assistant turn opened by the template>  This subject is <label>.  <end of turn>

The image anchor ``<image>`` is ONE added special token in the text; when a batch
is built it is expanded in place into ``n_visual`` copies of itself (109 for
RiT, 1 for Med3D), whose embeddings the model then overwrites with the
connector's output (LLaVA-NeXT / Qwen2-VL style). Sequence length after
expansion = text tokens - 1 + n_visual.

Choices and departures from the paper, stated once here:

- The paper gives one flat text; we send its first two sentences as the system
  message and the rest as the user message through the model's own chat
  template (docs/design.md, "Connector and prompt"). A tokenizer without a chat template (e.g. Llama-3 base)
  gets the Vicuna-style :data:`FALLBACK_CHAT_TEMPLATE`.
- Samples without an image (SNP-only models; gene-only samples of the
  ``mixture`` configuration) carry no anchor: ``<Image Content>`` is the text
  :data:`NO_IMAGE_TEXT`. The paper does not say what its SNP-only LLM saw.
- Labels (the loss mask) cover the answer "This subject is <label>." and the
  template's end-of-turn token that follows it (e.g. ``<|im_end|>``), so that
  greedy generation learns to stop; everything else is -100. Scoring
  (:mod:`rgenima_lib.train.predict`) uses the answer tokens only.
- Prompt and answer are tokenized separately and concatenated, so the prefix
  scored at prediction time is token-for-token the prefix trained on.
- Padding is on the LEFT (every prompt ends at the last column, which the
  scoring and generation with a KV cache need); position ids count real
  tokens only, so a sample's logits do not depend on its batch.
- With ``llm.gene_input: tokens`` (a departure, docs/departures.md) the SNP
  text is a run of :data:`~rgenima_lib.genetics.gene_tokens.GENE_TOKEN`
  anchors, one per gene; they are not expanded (one token per gene), and the
  model overwrites each with that gene's dosage token, the same splice as the
  ROI tokens'.
- ROI tokens whose presence flag is 0 (ROI missing in the subject) keep their
  slot and position id (docs/design.md, "Fixed token order") but are EXCLUDED
  FROM ATTENTION (attention mask 0): no token attends to a fabricated patch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from rgenima_lib.genetics.gene_tokens import GENE_TOKEN, GeneInput
from rgenima_lib.vocabulary import STAGES

SYSTEM_PROMPT = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers.")
"""Paper 4.2.2, first two sentences (sent as the system message)."""

USER_TEMPLATE = ("Genome Information: {genome} Brain Image: {image}. Your task is to classify the disease "
                 "of the subject based on their Brain Image and Genome Information. Choose one of the "
                 "following labels: [NC, SMC, MCI, AD].")
"""Paper 4.2.2, the rest; ``{genome}`` = SNP text, ``{image}`` = the anchor or :data:`NO_IMAGE_TEXT`."""

ANSWER_TEMPLATE = "This subject is {label}."
"""Paper 4.2.2: the diagnostic output."""

IMAGE_TOKEN = "<image>"
"""The image anchor: one added special token, replaced by the visual tokens."""

NO_IMAGE_TEXT = "not available"
"""What ``<Image Content>`` reads for a sample without an image (our choice; see module notes)."""

IGNORE_INDEX = -100
"""Label value that the loss ignores (PyTorch / Hugging Face convention)."""

FALLBACK_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + ' ' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""Vicuna-v1 style template for tokenizers that ship none (the paper's system sentence is Vicuna's)."""

_ANSWER_RE = re.compile(r"This subject is (NC|SMC|MCI|AD)\.")


def answer_text(label: str) -> str:
    """The target text for ``label`` (one of :data:`STAGES`)."""
    if label not in STAGES:
        raise ValueError(f"unknown stage {label!r}; expected one of {STAGES}")
    return ANSWER_TEMPLATE.format(label=label)


def parse_answer(text: str) -> str:
    """Strict parser of a generated answer (paper protocol, eq. 12).

    Parameters
    ----------
    text : str
        The decoded generation, special tokens removed.

    Returns
    -------
    str
        The stage if ``text`` (surrounding whitespace ignored) is exactly
        "This subject is X." with X in NC / SMC / MCI / AD, else ``''``: any
        other text counts as a wrong prediction.
    """
    match = _ANSWER_RE.fullmatch(text.strip())
    return match.group(1) if match else ""


def user_message(genome_text: str, has_image: bool) -> str:
    """The user turn of paper 4.2.2 for one sample."""
    if IMAGE_TOKEN in genome_text:
        raise ValueError(f"the SNP text contains the image anchor {IMAGE_TOKEN!r}")
    return USER_TEMPLATE.format(genome=genome_text, image=IMAGE_TOKEN if has_image else NO_IMAGE_TEXT)


def messages(genome_text: str, has_image: bool, label: str | None = None) -> list[dict]:
    """Chat messages (system, user[, assistant]) for one sample."""
    msgs = [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(genome_text, has_image)}]
    if label is not None:
        msgs.append({"role": "assistant", "content": answer_text(label)})
    return msgs


def ensure_chat_template(tokenizer) -> None:
    """Give ``tokenizer`` the fallback template if it ships none (e.g. Llama-3 base)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE


def prompt_text(tokenizer, genome_text: str, has_image: bool) -> str:
    """Everything before the answer: chat template with the generation prompt opened."""
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages(genome_text, has_image), tokenize=False,
                                         add_generation_prompt=True)


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids the template writes right after the assistant's content, up to its first special token.

    Found by rendering a dummy conversation with and without the answer, so it
    works for any template (``<|im_end|>`` for Qwen2, ``<|eot_id|>`` for
    Llama-3, eos for the fallback).
    """
    ensure_chat_template(tokenizer)
    head = tokenizer.apply_chat_template(messages("x", False), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages("x", False, "NC"), tokenize=False)
    answer = answer_text("NC")
    if not full.startswith(head) or answer not in full[len(head):]:
        raise ValueError("the chat template does not render the assistant answer after the generation prompt")
    tail = full[len(head):].split(answer, 1)[1]
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    for i, tid in enumerate(ids):
        if tid in special:
            return ids[: i + 1]
    return [tokenizer.eos_token_id]


@dataclass
class EncodedPrompt:
    """One sample's tokens before anchor expansion.

    Attributes
    ----------
    input_ids : list[int]
        Prompt tokens (with at most one anchor), then answer + end-of-turn tokens when labelled.
    labels : list[int]
        Same length; :data:`IGNORE_INDEX` except on the answer and end-of-turn tokens.
    n_prompt : int
        Number of prompt tokens (the answer starts here).
    anchor_index : int or None
        Index of the image anchor in ``input_ids``; None without image.
    genome_char_span : tuple[int, int]
        Character span of the SNP text in the rendered prompt (for attribution).
    offsets : list[tuple[int, int]]
        Character span of each prompt token in the rendered prompt (empty unless asked for).
    """

    input_ids: list[int]
    labels: list[int]
    n_prompt: int
    anchor_index: int | None
    genome_char_span: tuple[int, int]
    offsets: list[tuple[int, int]] = field(repr=False, default_factory=list)


def encode_prompt(tokenizer, genome_text: str, has_image: bool, label: str | None = None,
                  image_token_id: int | None = None, eot_ids: list[int] | None = None,
                  with_offsets: bool = False) -> EncodedPrompt:
    """Tokenize one sample (paper 4.2.2–4.2.3).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        The LLM's tokenizer, with :data:`IMAGE_TOKEN` added as a special token.
    genome_text : str
        The subject's SNP text (``serialize_genome``).
    has_image : bool
        Put the image anchor in (True) or :data:`NO_IMAGE_TEXT` (False).
    label : str, optional
        Stage; when given, the answer and end-of-turn tokens are appended and labelled.
    image_token_id : int, optional
        Id of the anchor; looked up when not given.
    eot_ids : list of int, optional
        :func:`end_of_turn_ids` of the tokenizer (computed when not given).
    with_offsets : bool
        Also return each prompt token's character span (attribution maps tokens to genes with it).

    Returns
    -------
    EncodedPrompt
    """
    if image_token_id is None:
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    text = prompt_text(tokenizer, genome_text, has_image)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=with_offsets)
    ids = list(enc["input_ids"])
    anchors = [i for i, t in enumerate(ids) if t == image_token_id]
    if len(anchors) != (1 if has_image else 0):
        raise ValueError(f"expected {int(has_image)} image anchor(s) in the prompt, found {len(anchors)}")
    start = text.index("Genome Information: ") + len("Genome Information: ")
    n_prompt = len(ids)
    labels = [IGNORE_INDEX] * n_prompt
    if label is not None:
        eot = end_of_turn_ids(tokenizer) if eot_ids is None else eot_ids
        answer = tokenizer(answer_text(label), add_special_tokens=False)["input_ids"] + eot
        ids += answer
        labels += answer
    return EncodedPrompt(ids, labels, n_prompt, anchors[0] if anchors else None,
                         (start, start + len(genome_text)),
                         [tuple(o) for o in enc["offset_mapping"]] if with_offsets else [])


@dataclass
class PromptSample:
    """One training or test sample.

    Attributes
    ----------
    subject : str
    genome_text : str
        SNP text of paper 4.2.2 (gene order may be permuted on the train side).
    stage : str or None
        NC / SMC / MCI / AD; None when unknown.
    visual : float array [n_visual, d_vis] or None
        Cached encoder tokens (109 x 768 RiT, 1 x 512 Med3D); None = no image.
    presence : uint8 array [n_visual] or None
        1 where the ROI exists; None = all present.
    genes : GeneInput or None
        The dosages behind the gene anchors of ``genome_text`` (``llm.gene_input: tokens``);
        None for the paper's SNP text.
    """

    subject: str
    genome_text: str
    stage: str | None = None
    visual: np.ndarray | None = None
    presence: np.ndarray | None = None
    genes: GeneInput | None = None


class PromptCollator:
    """Turns a list of :class:`PromptSample` into a left-padded batch.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        With :data:`IMAGE_TOKEN` added.
    with_labels : bool
        Append answers and labels (training) or stop at the generation prompt (prediction).

    Notes
    -----
    Output tensors (B samples, T = longest expanded sequence, N_img = visual
    tokens of all samples with an image, d = d_vis):

    - ``input_ids`` int64[B, T]: anchor expanded to ``n_visual`` image-token ids; pad id on the left.
    - ``attention_mask`` int64[B, T]: 0 on padding and on absent ROI tokens.
    - ``position_ids`` int64[B, T]: 0..n-1 over the real tokens (absent ROIs keep theirs); 0 on padding.
    - ``labels`` int64[B, T] (training only).
    - ``visual_tokens`` float32[N_img, d] in sample then ROI order, or absent.
    - ``n_visual`` int64[B]: visual tokens per sample (0 without image).
    - ``gene_dosages`` float32[N_gene, W] and ``gene_ids`` int64[N_gene], in sample then
      text order, when the samples carry gene tokens (:attr:`PromptSample.genes`).
    """

    def __init__(self, tokenizer, with_labels: bool = True):
        self.tokenizer = tokenizer
        self.with_labels = with_labels
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE_TOKEN!r} token; build the model with RGenIMA.from_base")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eot_ids = end_of_turn_ids(tokenizer)
        self.gene_token_id = tokenizer.get_vocab().get(GENE_TOKEN)

    def encode(self, sample: PromptSample) -> EncodedPrompt:
        # Not memoised: ~1 ms per paper-length prompt, against ~250 kB per cached one times 10^4 augmented samples.
        return encode_prompt(self.tokenizer, sample.genome_text, sample.visual is not None,
                             sample.stage if self.with_labels else None, image_token_id=self.image_token_id,
                             eot_ids=self.eot_ids)

    def gene_rows(self, sample: PromptSample, ids: list[int]) -> GeneInput | None:
        """The sample's gene input, checked against its anchors (one per gene, in text order)."""
        n_anchors = ids.count(self.gene_token_id) if self.gene_token_id is not None else 0
        n_genes = 0 if sample.genes is None else len(sample.genes.gene_ids)
        if n_anchors != n_genes:
            raise ValueError(f"{sample.subject}: {n_anchors} gene anchors in the prompt but dosages for {n_genes} "
                             "genes (gene tokens need the tokens form of the genome and a model built with "
                             "gene_input='tokens')")
        return sample.genes

    def __call__(self, samples: Sequence[PromptSample]) -> dict[str, torch.Tensor]:
        rows, visual, genes = [], [], []
        for s in samples:
            enc = self.encode(s)
            gene_input = self.gene_rows(s, enc.input_ids)
            if gene_input is not None:
                genes.append(gene_input)
            ids, labels = enc.input_ids, enc.labels
            attn = [1] * len(ids)
            n_vis = 0
            if enc.anchor_index is not None:
                vis = np.asarray(s.visual, dtype=np.float32)
                if vis.ndim != 2:
                    raise ValueError(f"{s.subject}: visual tokens must be [n_visual, d], got {vis.shape}")
                n_vis = vis.shape[0]
                pres = np.ones(n_vis, np.uint8) if s.presence is None else np.asarray(s.presence).astype(np.uint8)
                a = enc.anchor_index
                ids = ids[:a] + [self.image_token_id] * n_vis + ids[a + 1:]
                labels = labels[:a] + [IGNORE_INDEX] * n_vis + labels[a + 1:]
                attn = attn[:a] + pres.tolist() + attn[a + 1:]
                visual.append(vis)
            rows.append((ids, labels, attn, n_vis))
        width = max(len(r[0]) for r in rows)
        batch = {k: torch.zeros(len(rows), width, dtype=torch.long)
                 for k in ("input_ids", "attention_mask", "position_ids", "labels")}
        batch["input_ids"].fill_(self.pad_id)
        batch["labels"].fill_(IGNORE_INDEX)
        for i, (ids, labels, attn, _) in enumerate(rows):
            n = len(ids)
            batch["input_ids"][i, width - n:] = torch.tensor(ids)
            batch["labels"][i, width - n:] = torch.tensor(labels)
            batch["attention_mask"][i, width - n:] = torch.tensor(attn)
            batch["position_ids"][i, width - n:] = torch.arange(n)
        if not self.with_labels:
            del batch["labels"]
        batch["n_visual"] = torch.tensor([r[3] for r in rows], dtype=torch.long)
        if visual:
            batch["visual_tokens"] = torch.from_numpy(np.concatenate(visual, axis=0))
        if genes:
            width = max(g.dosages.shape[1] for g in genes)
            if any(g.dosages.shape[1] != width for g in genes):
                raise ValueError("samples of one batch have gene dosages of different widths (different SNP sets)")
            batch["gene_dosages"] = torch.from_numpy(np.concatenate([g.dosages for g in genes]).astype(np.float32))
            batch["gene_ids"] = torch.from_numpy(np.concatenate([g.gene_ids for g in genes]).astype(np.int64))
        return batch
