"""A fold's samples as LLM prompts: the one place that joins the sample table, the genotypes and the image tokens.

Fine-tuning (``rgenima finetune``), prediction (``rgenima predict``) and attribution
(``rgenima attribute``) all read a fold's samples the same way: each row of
``datasets/{config}/fold{k}/samples.tsv`` (``rgenima_lib.data.datasets``) becomes a
:class:`~rgenima_lib.models.prompting.PromptSample` whose SNP text is rebuilt from the
fold's imputed genotypes in the row's gene order, and whose visual tokens, for a row with an
image, come from the encoder's token cache. With ``gene_input="tokens"`` (a departure,
docs/departures.md) the genome is instead one anchor per gene in the same gene order, with the
dosages behind them (:mod:`rgenima_lib.genetics.gene_tokens`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rgenima_lib.data.datasets import read_samples
from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.augment import STREAMS, permutation_seed
from rgenima_lib.genetics.gene_tokens import GeneTokenGenome, GeneTokenTexts
from rgenima_lib.genetics.serialize import DEFAULT_PACKING, DEFAULT_SEPARATOR, GenomeText, GenomeTexts
from rgenima_lib.models.embedding_cache import load_embeddings
from rgenima_lib.models.prompting import PromptSample

log = logging.getLogger("rgenima")


@dataclass
class FoldPrompts:
    """One side of a fold's samples as prompts, with what rebuilt them.

    Attributes
    ----------
    samples : list of PromptSample, length n
        In sample-table order.
    genomes : list of GenomeText or GeneTokenGenome, length n
        Each sample's SNP text (or gene anchors) and the character spans of its gene blocks.
    texts : GenomeTexts or GeneTokenTexts
        The fold's genomes: any subject's genome in any gene order.
    """

    samples: list[PromptSample]
    genomes: list[GenomeText | GeneTokenGenome]
    texts: GenomeTexts | GeneTokenTexts


def fold_genomes(imputed: str | Path, snps: str | Path, gene_input: str = "text", separator: str = DEFAULT_SEPARATOR,
                 tokenizer=None, packing: str = DEFAULT_PACKING) -> GenomeTexts | GeneTokenTexts:
    """The fold's genomes in the form the model reads: SNP text (the paper) or gene tokens.

    ``separator``, ``tokenizer`` and ``packing`` choose the text form's genotype symbols (see
    :func:`load_fold_prompts`).
    """
    if gene_input == "text":
        texts = GenomeTexts.from_files(imputed, snps, separator=separator, tokenizer=tokenizer, packing=packing)
        log.info("SNP text: genotype separator %r (setting %r), packing %r (setting %r)", texts.separator, separator,
                 texts.packing, packing)
        return texts
    if gene_input == "tokens":
        return GeneTokenTexts.from_files(imputed, snps)
    raise ValueError(f"gene_input must be 'text' or 'tokens', not {gene_input!r}")


def load_fold_prompts(samples_tsv: str | Path, side: str, imputed: str | Path, snps: str | Path,
                      embeddings: str | Path | None = None, limit: int | None = None,
                      gene_input: str = "text", separator: str = DEFAULT_SEPARATOR, tokenizer=None,
                      packing: str = DEFAULT_PACKING) -> FoldPrompts:
    """The fold's samples of one side as prompts (text rebuilt from genotypes, tokens from the cache).

    Parameters
    ----------
    samples_tsv : path
        ``datasets/{config}/fold{k}/samples.tsv`` (``rgenima_lib.data.datasets``).
    side : {"train", "test"}
    imputed : path
        The fold's 2p-imputed genotypes (``fold{k}.npz``).
    snps : path
        ``snps.tsv`` (gene blocks).
    embeddings : path, optional
        The encoder's token cache for this fold; None for the LLM SNP-only model
        (every sample is then text only, even a paired one).
    limit : int, optional
        Keep the first ``limit`` samples (smoke runs).
    gene_input : {"text", "tokens"}
        The genome as SNP text (the paper) or one token per gene (the model's ``MLLMConfig.gene_input``).
    separator : str
        Genotype separator of the text form (``genetics.snp_separator``); 'auto' picks it for ``tokenizer``
        (:func:`~rgenima_lib.genetics.serialize.resolve_separator`).
    tokenizer : PreTrainedTokenizerFast, optional
        The LLM's tokenizer (needed for 'auto'; checks the separator of a packed text).
    packing : {"none", "pairs"}
        Genotype symbols per SNP (the paper) or per two SNPs of a gene (``genetics.snp_packing``).

    Returns
    -------
    FoldPrompts

    Raises
    ------
    InputDataError
        A sample whose subject has no genotypes, or no cached visual tokens where the row has an image.
    """
    table = read_samples(samples_tsv)
    table = table[table["side"] == side]
    if limit is not None:
        table = table.iloc[:limit]
    texts = fold_genomes(imputed, snps, gene_input, separator=separator, tokenizer=tokenizer, packing=packing)
    tokens = {}
    if embeddings is not None:
        subjects, arr, presence = load_embeddings(embeddings)
        tokens = {s: (arr[i], presence[i]) for i, s in enumerate(subjects)}
    samples, genomes = [], []
    for row in table.itertuples(index=False):
        visual = presence = None
        if embeddings is not None and row.with_image:
            if row.subject not in tokens:
                raise InputDataError("subject has no cached visual tokens.", path=embeddings, subject=row.subject,
                                     fix="rerun the embed rule for this encoder and fold.")
            visual, presence = tokens[row.subject]
        try:
            genome = texts(row.subject, int(row.perm_seed))
        except KeyError as exc:
            raise InputDataError("subject has no genotypes in the imputed matrix.", path=imputed,
                                 subject=row.subject, fix="rerun impute-genotypes for this fold.") from exc
        samples.append(PromptSample(row.subject, genome.text, row.stage, visual, presence,
                                    genes=genome.genes if gene_input == "tokens" else None))
        genomes.append(genome)
    return FoldPrompts(samples, genomes, texts)


def load_prompt_samples(samples_tsv: str | Path, side: str, imputed: str | Path, snps: str | Path,
                        embeddings: str | Path | None = None, limit: int | None = None,
                        gene_input: str = "text", separator: str = DEFAULT_SEPARATOR,
                        tokenizer=None, packing: str = DEFAULT_PACKING) -> list[PromptSample]:
    """The prompts of :func:`load_fold_prompts` alone (fine-tuning, prediction)."""
    return load_fold_prompts(samples_tsv, side, imputed, snps, embeddings, limit, gene_input, separator,
                             tokenizer, packing).samples


@dataclass
class AttributionPrompts:
    """The test samples a fold's attribution reads.

    Attributes
    ----------
    samples : list of PromptSample
        Test side, with images (samples without one are left out).
    spans : list
        ``GenomeText.spans`` per sample.
    extra_orders : list of list of GenomeText or GeneTokenGenome
        Per sample, the same genome in ``gene_orders`` seeded gene orders (empty lists for one order).
    """

    samples: list[PromptSample]
    spans: list
    extra_orders: list[list[GenomeText]]


def load_attribution_prompts(samples_tsv, imputed, snps, embeddings, limit: int | None = None,
                             gene_orders: int = 1, seed: int = 0, gene_input: str = "text",
                             separator: str = DEFAULT_SEPARATOR, tokenizer=None,
                             packing: str = DEFAULT_PACKING) -> AttributionPrompts:
    """The fold's test samples (with images, given embeddings), their gene spans, and other gene orders of them.

    Parameters
    ----------
    samples_tsv, imputed, snps : path
        As :func:`load_fold_prompts`.
    embeddings : path or None
        The RiT token cache: only samples with images are kept. None (a gene-only LLM): every test sample.
    limit : int, optional
        First ``limit`` test samples only.
    gene_orders : int
        1: attribute the sample's own text (canonical on the test side; the
        paper). K > 1: attribute K random permutations of its gene blocks (the
        paper's augmentation, 4.4.2), seeded by (seed, subject, copy) on the
        ``attribution`` seed stream, and keep the own text for the prediction.
    seed : int
    gene_input : {"text", "tokens"}
        As :func:`load_fold_prompts`; in the tokens form the other gene orders carry their dosages.
    separator, tokenizer, packing
        As :func:`load_fold_prompts`.

    Returns
    -------
    AttributionPrompts

    Raises
    ------
    InputDataError
        Embeddings given and no test sample has an image.
    """
    prompts = load_fold_prompts(samples_tsv, "test", imputed, snps, embeddings, limit=limit, gene_input=gene_input,
                                separator=separator, tokenizer=tokenizer, packing=packing)
    out, spans, extra = [], [], []
    for sample, genome in zip(prompts.samples, prompts.genomes):
        if embeddings is not None and sample.visual is None:
            continue
        out.append(sample)
        spans.append(genome.spans)
        extra.append([prompts.texts(sample.subject, permutation_seed(seed, sample.subject, k,
                                                                     stream=STREAMS["attribution"]))
                      for k in range(1, gene_orders + 1)] if gene_orders > 1 else [])
    if len(out) < len(prompts.samples):
        log.info("attribute: %d of %d test samples have no image and are left out", len(prompts.samples) - len(out),
                 len(prompts.samples))
    if not out:
        raise InputDataError("no test sample with an image.", path=samples_tsv,
                             fix="attribute a data configuration with images (image_gene).")
    return AttributionPrompts(out, spans, extra)


__all__ = ["FoldPrompts", "fold_genomes", "load_fold_prompts", "load_prompt_samples", "AttributionPrompts",
           "load_attribution_prompts"]
