"""Gene tokens (``llm.gene_input: tokens``): one token per gene, spliced where attribution's token map says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima_lib.attribution.token_map import token_map
from rgenima_lib.genetics.gene_tokens import GENE_TOKEN, GeneTokenTexts, padded_gene_dosages
from rgenima_lib.genetics.serialize import GenomeLayout
from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
from rgenima_lib.models.prompting import PromptCollator, PromptSample

D_VIS = 8
GENE_SNPS = [3, 1, 2]


def _layout() -> GenomeLayout:
    genes = ["APOE", "BIN1", "CLU"]
    block = np.repeat(np.arange(3), GENE_SNPS)
    return GenomeLayout.from_snps(pd.DataFrame({"block": block, "gene": np.array(genes)[block],
                                                "snp": [f"rs{i}" for i in range(6)], "a1": "A", "a2": "G"}))


@pytest.fixture(scope="module")
def model(demo_llm):
    torch.manual_seed(0)
    return RGenIMA.from_base(demo_llm(), MLLMConfig(visual_dim=D_VIS, gene_input="tokens", gene_snps=GENE_SNPS)).eval()


def test_padded_dosages_keep_each_gene_and_zero_the_rest():
    padded = padded_gene_dosages(np.array([0, 1, 2, 2, 1, 0.5]), _layout())
    np.testing.assert_array_equal(padded, [[0, 1, 2], [2, 0, 0], [1, 0.5, 0]])
    with pytest.raises(ValueError, match="impute"):
        padded_gene_dosages(np.array([0, 1, 2, -1, 1, 0]), _layout())


def test_spliced_gene_tokens_land_where_the_token_map_says(model):
    """A permuted order with an image: each gene's one token, at token_map's position, is that gene's encoding."""
    rng = np.random.default_rng(1)
    texts = GeneTokenTexts(rng.integers(0, 3, (2, 6)).astype(np.float32), ["s0", "s1"], _layout())
    genes = list(_layout().genes)
    genomes = [texts("s0", 11), texts("s1", -1)]
    assert [g for g, _, _ in genomes[0].spans] != genes  # the permutation moved the genes
    samples = [PromptSample(f"s{i}", g.text, "MCI", rng.normal(size=(2, D_VIS)).astype(np.float32), genes=g.genes)
               for i, g in enumerate(genomes)]
    batch = PromptCollator(model.tokenizer, with_labels=True)(samples)
    with torch.no_grad():
        embeds = model.embed_inputs(batch["input_ids"], batch["visual_tokens"], batch["gene_dosages"],
                                    batch["gene_ids"])
        width = embeds.shape[1]
        for b, (sample, genome) in enumerate(zip(samples, genomes)):
            m = token_map(model.tokenizer, genome.text, genome.spans, {g: i for i, g in enumerate(genes)}, 2, "MCI")
            assert int(batch["attention_mask"][b].sum()) == m.length
            for g, name in enumerate(genes):
                pos = np.flatnonzero(m.gene_of_token == g)
                assert len(pos) == 1, f"{name}: {len(pos)} tokens"
                expected = model.gene_encoder(torch.from_numpy(padded_gene_dosages(
                    texts.imputed[b], _layout())[g:g + 1]), torch.tensor([g]))[0]
                torch.testing.assert_close(embeds[b, width - m.length + pos[0]], expected)
            # The ROI tokens sit at their own positions, untouched by the gene splice.
            assert (batch["input_ids"][b, width - m.length + m.roi_positions] == model.image_token_id).all()
    assert model.tokenizer.convert_tokens_to_ids(GENE_TOKEN) == model.gene_token_id


def test_gene_tokens_and_text_do_not_mix(model, demo_llm):
    texts = GeneTokenTexts(np.ones((1, 6), np.float32), ["s0"], _layout())
    genome = texts("s0", -1)
    collate = PromptCollator(model.tokenizer)
    with pytest.raises(ValueError, match="3 gene anchors in the prompt but dosages for 0 genes"):
        collate([PromptSample("s0", genome.text, "NC")])
    with pytest.raises(ValueError, match="0 gene anchors in the prompt but dosages for 3 genes"):
        collate([PromptSample("s0", "APOE: 0 1 2", "NC", genes=genome.genes)])
    # A text-mode model has no gene anchor: the anchors are plain text to it, and the dosages are refused.
    text_model = RGenIMA.from_base(demo_llm(), MLLMConfig())
    with pytest.raises(ValueError, match="0 gene anchors"):
        PromptCollator(text_model.tokenizer)([PromptSample("s0", genome.text, "NC", genes=genome.genes)])


def test_bad_gene_input_configuration_is_refused(model):
    with pytest.raises(ValueError, match="gene_input must be one of"):
        MLLMConfig(gene_input="dosage")
    with pytest.raises(ValueError, match="needs gene_snps"):
        MLLMConfig(gene_input="tokens")
    with pytest.raises(ValueError, match="takes none"):
        MLLMConfig(gene_snps=[2, 3])
    # Dosages of another genotype layout (a wider gene) do not fit the trained encoder.
    with pytest.raises(ValueError, match="genotype layout differs"):
        model.gene_encoder(torch.zeros(1, 5), torch.tensor([0]))


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_attention", "gradient_input"])
def test_every_gradient_method_runs_on_a_gene_token_model_and_keeps_its_dosages(model, method):
    """The gradient methods rebuild the prompt with the answer: the gene tokens' dosages must go with it."""
    from rgenima_lib.attribution.attribute import attribute_batch
    from rgenima_lib.attribution.end_to_end import ImageInputs, answer_batch
    from rgenima_lib.models.rit import RiT, RiTConfig

    torch.manual_seed(2)
    rit = RiT(RiTConfig(n_rois=2, roi_size=4, dim=D_VIS, depth=1, heads=2, dropout=0.0, pool="mean",
                        patch_rank=1)).eval()
    rng = np.random.default_rng(2)
    texts = GeneTokenTexts(rng.integers(0, 3, (2, 6)).astype(np.float32), ["s0", "s1"], _layout())
    genomes = [texts("s0", -1), texts("s1", 5)]
    data = {f"s{i}": {"rois": rng.random((2, 4, 4, 4)).astype(np.float32), "presence": np.ones(2, bool),
                      "volume": np.ones(2, np.float32)} for i in range(2)}
    samples = [PromptSample(f"s{i}", g.text, "NC", np.zeros((2, D_VIS), np.float32), np.ones(2, np.uint8),
                            genes=g.genes) for i, g in enumerate(genomes)]
    spans = [g.spans for g in genomes]
    genes = list(_layout().genes)
    batch = answer_batch(model, samples, spans, genes, ["AD", "MCI"])
    assert batch.inputs["gene_dosages"].shape == (6, 3)
    got = attribute_batch(method, model, ImageInputs(rit, data.__getitem__, None), samples, spans, genes,
                          ["AD", "MCI"], ig_steps=4)
    assert got.roi_importance.shape == (2, 2) and np.isfinite(got.roi_importance).all()
