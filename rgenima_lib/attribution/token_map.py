"""Where a sample's genes, ROI tokens and answer rows sit in the sequence the model reads.

The attribution reads rollout shares by column (the prompt tokens of each gene block, each
ROI token) and by row (the answer rows). :func:`token_map` locates them in the sequence that
:class:`~rgenima_lib.models.prompting.PromptCollator` builds: gene tokens from the character
spans of the SNP text (:class:`~rgenima_lib.genetics.serialize.GenomeText` spans), ROI tokens
at the expanded image anchor.

"Answer row" (``answer_rows``): ``label`` (default) averages the rows of the
positions that predict the label token(s) (the " is" before " NC"), i.e.
where the model decides the stage; ``prompt_end`` takes the last prompt
position (which predicts "This"). The paper does not say which row it used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgenima_lib.models.prompting import ANSWER_TEMPLATE, answer_text, encode_prompt

ANSWER_ROWS = ("label", "prompt_end")


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
        Rows averaged for the answer (see the module docstring).
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
        Visual tokens spliced at the anchor (109 for RiT); 0 for a prompt without an image.
    predicted : str
        The stage whose answer is appended ("This subject is <predicted>.").
    answer_rows : {"label", "prompt_end"}
    image_token_id, eot_ids : optional
        Cached lookups (see :func:`~rgenima_lib.models.prompting.encode_prompt`).

    Returns
    -------
    TokenMap
    """
    if answer_rows not in ANSWER_ROWS:
        raise ValueError(f"answer_rows must be one of {ANSWER_ROWS}, not {answer_rows!r}")
    has_image = n_visual > 0  # 0: a gene-only LLM, whose prompt has no image anchor
    enc = encode_prompt(tokenizer, genome_text, has_image, predicted, image_token_id=image_token_id,
                        eot_ids=eot_ids, with_offsets=True)
    n_prompt = enc.n_prompt
    anchor = enc.anchor_index if has_image else n_prompt
    shift = n_visual - 1 if has_image else 0  # positions after the anchor move by the expansion

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
