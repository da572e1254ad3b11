"""SNP text, gene-order permutations, fold-wise 2p imputation, tokens per SNP."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.genetics.augment import CANONICAL, augmented_copies, gene_order, permutation_seed
from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage
from rgenima_lib.genetics.serialize import GenomeLayout, GenomeTexts, serialize_genome, token_stats


@pytest.fixture()
def layout():
    snps = pd.DataFrame({
        "snp": ["rs429358", "rs7412", "rs1", "rs2", "rs3", "rs4"],
        "a1": ["C", "T", "A", "G", "T", "C"], "a2": ["T", "C", "G", "A", "C", "A"],
        "gene": ["APOE", "APOE", "BIN1", "BIN1", "BIN1", "CLU"], "block": [0, 0, 1, 1, 1, 2],
    })
    return GenomeLayout.from_snps(snps)


def test_compact_format_and_spans(layout):
    row = np.array([1, 0, 2, 0.9, 0.5, 0.49])  # imputed 2p values round half up
    text = serialize_genome(row, layout)
    assert text.text == "APOE: 1 0\nBIN1: 2 1 1\nCLU: 0"
    assert [g for g, _, _ in text.spans] == ["APOE", "BIN1", "CLU"]
    for gene, start, end in text.spans:
        assert text.text[start:end].startswith(gene + ":")
    verbose = serialize_genome(row, layout, style="verbose").text
    assert verbose.splitlines()[0] == "APOE: rs429358 C/T: CT, rs7412 T/C: CC"
    with pytest.raises(ValueError, match="impute"):
        serialize_genome(np.array([1, -1, 0, 0, 0, 0]), layout)
    with pytest.raises(ValueError, match="impute"):
        serialize_genome(np.array([1, np.nan, 0, 0, 0, 0]), layout)


def test_permutation_moves_blocks_not_snps(layout):
    row = np.array([1, 0, 2, 1, 0, 2])
    canonical = serialize_genome(row, layout).text.split("\n")
    texts = GenomeTexts(row[None], ["S1"], layout)
    seen = set()
    for k in range(1, 30):
        seed = permutation_seed(20251129, "S1", k)
        text = texts("S1", seed)
        assert text.text == texts("S1", seed).text  # rebuilt identically
        blocks = text.text.split("\n")
        assert sorted(blocks) == sorted(canonical)  # every block intact, SNP order inside untouched
        assert [g for g, _, _ in text.spans] == [b.split(":")[0] for b in blocks]
        seen.add(tuple(blocks))
    assert len(seen) == 6  # all 3! orders occur
    assert texts("S1", CANONICAL).text == "\n".join(canonical)


def test_permutation_seeds_are_stable_and_distinct():
    a = permutation_seed(7, "011_S_0002", 1)
    assert a == permutation_seed(7, "011_S_0002", 1)
    others = {permutation_seed(7, "011_S_0002", 2), permutation_seed(8, "011_S_0002", 1),
              permutation_seed(7, "011_S_0003", 1), permutation_seed(7, "011_S_0002", 1, stream=1)}
    assert a not in others and len(others) == 4
    np.testing.assert_array_equal(gene_order(105, a), gene_order(105, a))
    assert gene_order(5, CANONICAL).tolist() == [0, 1, 2, 3, 4]
    copies = augmented_copies(["A", "B"], [3, 1], seed=7)
    assert copies["perm_seed"].tolist()[0] == CANONICAL and copies["perm_seed"].tolist()[3] == CANONICAL
    assert copies["copy"].tolist() == [0, 1, 2, 0]


def test_imputation_uses_training_subjects_only():
    rng = np.random.default_rng(0)
    dosage = rng.integers(0, 3, size=(20, 6)).astype(np.int8)
    dosage[rng.random((20, 6)) < 0.2] = -1
    train = np.arange(20) < 14
    imputed, p, n_called = impute_expected_dosage(dosage, train)
    fit = dosage[train]
    expected_p = np.array([fit[fit[:, j] >= 0, j].mean() / 2 for j in range(6)])
    np.testing.assert_allclose(p, expected_p)
    missing = dosage < 0
    np.testing.assert_allclose(imputed[missing], np.broadcast_to(2 * p, dosage.shape)[missing], rtol=1e-6)
    np.testing.assert_array_equal(imputed[~missing], dosage[~missing])
    # Changing the test subjects' genotypes changes nothing fitted.
    other = dosage.copy()
    other[~train] = 2
    imputed2, p2, _ = impute_expected_dosage(other, train)
    np.testing.assert_array_equal(p2, p)
    np.testing.assert_array_equal(imputed2[train], imputed[train])
    # A SNP without any call among the training subjects falls back to 0.
    dosage[train, 0] = -1
    _, p3, n3 = impute_expected_dosage(dosage, train)
    assert p3[0] == 0 and n3[0] == 0


def test_tokens_per_snp_compact_vs_verbose(layout):
    from rgenima_lib.genetics.serialize import load_tokenizer

    tok = load_tokenizer()
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 3, size=(5, layout.n_snps)).astype(float)
    compact = [serialize_genome(r, layout).text for r in rows]
    verbose = [serialize_genome(r, layout, style="verbose").text for r in rows]
    # One token per genotype symbol: every digit is its own token.
    ids = tok(compact[0], add_special_tokens=False)["input_ids"]
    digits = [t for t in tok.convert_ids_to_tokens(ids) if t in {"0", "1", "2"}]
    assert len(digits) == layout.n_snps
    c = token_stats(compact, layout.n_snps, tok)
    v = token_stats(verbose, layout.n_snps, tok)
    assert c["tokens_per_snp"] < v["tokens_per_snp"] / 3


def test_unseparated_form_spans_and_permutations(layout):
    row = np.array([1, 0, 2, 0.9, 0.5, 0.49])
    text = serialize_genome(row, layout, separator="none")
    assert text.text == "APOE:10 BIN1:211 CLU:0"
    assert [text.text[s:e] for _, s, e in text.spans] == ["APOE:10", "BIN1:211", "CLU:0"]
    texts = GenomeTexts(row[None], ["S1"], layout, separator="none")
    permuted = texts("S1", permutation_seed(3, "S1", 1))
    assert sorted(permuted.text.split(" ")) == sorted(text.text.split(" "))
    assert all(permuted.text[s:e].startswith(g + ":") for g, s, e in permuted.spans)
    # The verbose form keeps one block per line whatever the separator.
    assert serialize_genome(row, layout, style="verbose", separator="none").text.count("\n") == 2


def test_bad_separator_is_a_clear_error(layout):
    from rgenima_lib.genetics.serialize import resolve_separator

    row = np.zeros(layout.n_snps)
    with pytest.raises(ValueError, match=r"one of \['comma', 'none', 'space'\], got 'tab'"):
        serialize_genome(row, layout, separator="tab")
    with pytest.raises(ValueError, match="resolve_separator"):
        GenomeTexts(row[None], ["S1"], layout, separator="auto")
    with pytest.raises(ValueError, match="got 'tab'"):
        resolve_separator("tab", None, layout)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        resolve_separator("auto", None, layout)


def test_wordpiece_keeps_the_spaced_text(layout):
    """The BERT baselines' WordPiece merges digit runs by value: auto keeps the spaced text, byte for byte."""
    from rgenima_lib.genetics.serialize import load_tokenizer, resolve_separator, separator_cost

    tok = load_tokenizer()
    assert not separator_cost(tok, layout, "none")["exact"]
    assert resolve_separator("auto", tok, layout) == "space"
    row = np.array([1, 0, 2, 1, 1, 0])
    assert serialize_genome(row, layout, separator="space").text == serialize_genome(row, layout).text
    assert serialize_genome(row, layout).text == "APOE: 1 0\nBIN1: 2 1 1\nCLU: 0"


def decode_packed(text: str, layout: GenomeLayout) -> np.ndarray:
    """int[n_snps]: the minor-allele counts a pairs-packed text says, read back in canonical gene order.

    Written from the format's definition (docs/genetics.md), not from the encoder: a block is
    ``gene:`` then ``ceil(n / 2)`` digits for the gene's ``n`` SNPs (any separator between them), digit
    ``d`` of a pair standing for ``(d // 3, d % 3)`` and a last unpaired digit for itself.
    """
    n_of = dict(zip(layout.genes, np.diff(layout.bounds).tolist()))
    said = {}
    for block in re.split(r"\s(?=[A-Za-z])", text):  # a gene name starts every block
        gene, body = block.split(":", 1)
        digits = [int(c) for c in body if c.isdigit()]
        n = n_of[gene]
        assert len(digits) == -(-n // 2), block
        counts = []
        for i, d in enumerate(digits):
            counts += [d // 3, d % 3] if 2 * i + 1 < n else [d]
        said[gene] = counts
    return np.concatenate([said[g] for g in layout.genes])


@pytest.fixture()
def mixed_layout():
    """Genes of 1 to 11 SNPs, odd and even counts."""
    sizes = [1, 2, 3, 4, 10, 11, 7]
    block = np.repeat(np.arange(len(sizes)), sizes)
    return GenomeLayout.from_snps(pd.DataFrame({
        "snp": [f"rs{i}" for i in range(len(block))], "a1": "A", "a2": "G",
        "gene": np.asarray(["APOE", "BIN1", "TOMM40", "CLU", "CR1", "ABCA7", "MS4A6A"])[block], "block": block}))


@pytest.mark.parametrize("separator", ["none", "space", "comma"])
def test_packed_pairs_read_back_to_the_dosages(mixed_layout, separator):
    """Odd and even genes, imputed 2p values, permuted gene orders: every text says the rounded genotypes."""
    layout = mixed_layout
    rng = np.random.default_rng(3)
    for _ in range(20):
        row = rng.integers(0, 3, layout.n_snps).astype(float)
        row[rng.random(layout.n_snps) < 0.2] = rng.uniform(0, 2)  # 2p-imputed calls
        genome = serialize_genome(row, layout, order=rng.permutation(layout.n_genes), separator=separator,
                                  packing="pairs")
        np.testing.assert_array_equal(decode_packed(genome.text, layout), np.floor(row + 0.5))
        assert all(genome.text[s:e].startswith(g + ":") for g, s, e in genome.spans)


def test_packed_pairs_format_odd_genes_and_reference(layout):
    from rgenima_lib.genetics.serialize import pack_pairs, reference_genome_text

    row = np.array([1, 0, 2, 0.9, 0.5, 0.49])  # APOE (1, 0); BIN1 (2, 1, 1); CLU (0)
    genome = serialize_genome(row, layout, separator="none", packing="pairs")
    # APOE: 3*1+0; BIN1: 3*2+1, then its odd last SNP as itself; CLU: one unpaired SNP.
    assert genome.text == "APOE:3 BIN1:71 CLU:0"
    assert serialize_genome(row, layout, separator="space", packing="pairs").text == "APOE: 3\nBIN1: 7 1\nCLU: 0"
    assert pack_pairs(np.array([2, 2, 2])).tolist() == [8, 2] and pack_pairs(np.array([], int)).tolist() == []
    # The default stays the paper's text, byte for byte.
    assert serialize_genome(row, layout, separator="none").text == "APOE:10 BIN1:211 CLU:0"
    texts = GenomeTexts(row[None], ["S1"], layout, separator="none", packing="pairs")
    assert texts("S1", CANONICAL) == genome
    assert sorted(texts("S1", permutation_seed(3, "S1", 1)).text.split(" ")) == sorted(genome.text.split(" "))
    # The reference genotypes (all 0) pack to 0: resetting a packed text is the packed text of the reference.
    zero = serialize_genome(np.zeros(layout.n_snps), layout, separator="none", packing="pairs")
    assert reference_genome_text(genome.text, genome.spans) == zero.text
    assert reference_genome_text(genome.text, genome.spans, {"BIN1"}) == "APOE:3 BIN1:00 CLU:0"


def test_bad_packing_is_a_clear_error(layout):
    from rgenima_lib.genetics.serialize import resolve_separator

    row = np.zeros(layout.n_snps)
    with pytest.raises(ValueError, match=r"one of \['none', 'pairs'\], got 'triples'"):
        serialize_genome(row, layout, packing="triples")
    with pytest.raises(ValueError, match="compact style only"):
        serialize_genome(row, layout, style="verbose", packing="pairs")
    with pytest.raises(ValueError, match="got 'triples'"):
        resolve_separator("none", None, layout, "triples")


def test_wordpiece_refuses_unseparated_packed_digits(mixed_layout):
    """WordPiece merges digit runs by value: packed digits must be separated, and a named 'none' is refused."""
    from rgenima_lib.genetics.serialize import load_tokenizer, resolve_separator, separator_cost

    layout = mixed_layout
    tok = load_tokenizer()
    assert not separator_cost(tok, layout, "none", packing="pairs")["exact"]
    assert resolve_separator("auto", tok, layout, "pairs") == "space"
    with pytest.raises(ValueError, match="packing 'pairs' with separator 'none' does not tokenize exactly"):
        resolve_separator("none", tok, layout, "pairs")
    # Unpacked, a named separator is written as asked (snp_text_tokens compares them all), as before.
    assert resolve_separator("none", tok, layout) == "none"
