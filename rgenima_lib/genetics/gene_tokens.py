"""The genome as one token per gene (``llm.gene_input: tokens``; a departure from the paper, docs/departures.md).

The paper writes the SNPs into the prompt as text (:mod:`rgenima_lib.genetics.serialize`).
In the ``tokens`` form the genome part of the prompt is instead one anchor
token :data:`GENE_TOKEN` per gene, in the sample's gene order, and each anchor's
embedding is overwritten by the model with a vector built from that gene's
dosages (:class:`rgenima_lib.models.mllm.GeneTokenEncoder`), the way the ROI
tokens overwrite the image anchors.

A sample's genome is then a :class:`GeneTokenGenome`: the anchor text, the
character span of each gene's anchor (so that attribution's character-span
token map gives each gene exactly its one token), and the dosages that fill
the anchors, in text order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rgenima_lib.genetics.augment import gene_order
from rgenima_lib.genetics.genotype_matrix import load_genotypes, read_snps
from rgenima_lib.genetics.serialize import GenomeLayout

GENE_TOKEN = "<gene>"
"""The gene anchor: one added special token per gene, replaced by that gene's dosage token."""


@dataclass(frozen=True)
class GeneInput:
    """The dosages behind one sample's gene anchors, in text order.

    Attributes
    ----------
    dosages : float32[n_genes, width]
        Row i: the SNP dosages of the i-th gene in the text, zero-padded to
        ``width`` (the widest gene); padding contributes nothing to a linear map.
    gene_ids : int64[n_genes]
        Canonical index of the i-th gene in the text (selects its map).
    """

    dosages: np.ndarray
    gene_ids: np.ndarray


class GeneTokenGenome(NamedTuple):
    """A genome in the tokens form: anchor text, each gene's ``(gene, start, end)`` span, and the dosages."""

    text: str
    spans: list[tuple[str, int, int]]
    genes: GeneInput


def padded_gene_dosages(dosage_row: np.ndarray, layout: GenomeLayout) -> np.ndarray:
    """float32[n_genes, width]: one row per gene (canonical order), its SNPs' dosages then zeros."""
    row = np.asarray(dosage_row, dtype=np.float32)
    if row.shape != (layout.n_snps,):
        raise ValueError(f"dosage row has {row.size} SNPs, layout {layout.n_snps}")
    if np.isnan(row).any() or (row < 0).any():
        raise ValueError("dosage row holds missing values; impute (2p) before building gene tokens")
    sizes = np.diff(layout.bounds)
    out = np.zeros((layout.n_genes, int(sizes.max())), np.float32)
    for b in range(layout.n_genes):
        out[b, : sizes[b]] = row[layout.bounds[b]: layout.bounds[b + 1]]
    return out


def gene_token_genome(padded: np.ndarray, genes, order) -> GeneTokenGenome:
    """The tokens form of one genome in gene ``order`` (a permutation of the canonical indices).

    Parameters
    ----------
    padded : float32[n_genes, width]
        :func:`padded_gene_dosages` of the subject.
    genes : sequence of str, length n_genes
        Canonical gene names.
    order : int[n_genes]
    """
    order = np.asarray(order, dtype=np.int64)
    width = len(GENE_TOKEN)
    spans = [(genes[b], i * width, (i + 1) * width) for i, b in enumerate(order.tolist())]
    # No separator: the anchor is a special token, so the tokenizer cuts the run into exactly one token each.
    return GeneTokenGenome(GENE_TOKEN * len(order), spans, GeneInput(padded[order], order))


class GeneTokenTexts:
    """Tokens-form genomes of samples (subject, permutation seed): the counterpart of ``GenomeTexts``.

    Parameters
    ----------
    imputed : float[n_subjects, n_snps]
        A fold's imputed dosage.
    subjects : list of str, length n_subjects
    layout : GenomeLayout
    """

    def __init__(self, imputed: np.ndarray, subjects, layout: GenomeLayout):
        self.imputed = np.asarray(imputed)
        self.row = {s: i for i, s in enumerate(subjects)}
        self.layout = layout

    @classmethod
    def from_files(cls, imputed_npz, snps_tsv) -> "GeneTokenTexts":
        """From ``results/genetics/imputed/fold<k>.npz`` and ``results/genetics/snps.tsv``."""
        geno = load_genotypes(imputed_npz)
        return cls(geno["dosage"], geno["subjects"].tolist(), GenomeLayout.from_snps(read_snps(snps_tsv)))

    @property
    def gene_snps(self) -> list[int]:
        """SNPs per gene in canonical order (what the model's gene encoder is shaped by)."""
        return np.diff(self.layout.bounds).astype(int).tolist()

    def __call__(self, subject: str, perm_seed: int) -> GeneTokenGenome:
        """The anchors, spans and dosages of sample (subject, perm_seed)."""
        if subject not in self.row:
            raise KeyError(f"subject {subject} has no genotypes in this matrix")
        padded = padded_gene_dosages(self.imputed[self.row[subject]], self.layout)
        return gene_token_genome(padded, self.layout.genes, gene_order(self.layout.n_genes, int(perm_seed)))
