"""Attribution methods end to end (rgenima_lib.attribution.methods): shapes and dump format, integrated
gradients' completeness, Chefer's rule against a hand computation, the end-to-end rollout against an
independent RiT rollout, and the deletion test (faithfulness) on a planted toy model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rgenima_lib.attribution.attribute import attribute_batch, attribute_samples
from rgenima_lib.attribution.dump_format import read_dump, write_dump
from rgenima_lib.attribution.end_to_end import ImageInputs
from rgenima_lib.attribution.faithfulness import (deletion_drops, faithfulness_table, remove_rois,
                                                  variant_probabilities)
from rgenima_lib.attribution.gradient_attention import relevance_matrix, relevance_weights
from rgenima_lib.attribution.methods import METHODS
from rgenima_lib.genetics.serialize import join_blocks, reference_genome_text
from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
from rgenima_lib.models.prompting import PromptSample
from rgenima_lib.models.rit import RiT, RiTConfig, encoder_rollout, relative_log_volume

torch.set_num_threads(2)
GENES = ["APOE", "BIN1", "CLU", "APP"]
N_ROI, SIZE, DIM = 6, 4, 8


@pytest.fixture(scope="module")
def model(demo_llm):
    base = demo_llm(hidden_size=32, n_layers=2, n_heads=2, n_kv_heads=1, intermediate_size=64, seed=3,
                    gene_names=GENES)
    torch.manual_seed(0)
    return RGenIMA.from_base(base, MLLMConfig(visual_dim=DIM, attn_implementation="eager")).eval()


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(1)
    rit = RiT(RiTConfig(n_rois=N_ROI, roi_size=SIZE, dim=DIM, depth=2, heads=2, dropout=0.0, pool="mean",
                        patch_rank=2)).eval()
    with torch.no_grad():
        rit.set_input_normalization(torch.full((N_ROI, SIZE, SIZE, SIZE), 0.4), torch.full((N_ROI,), 0.3))
        for block in rit.blocks:  # sharper attention than the init, so that rollout rows differ
            block.attn.in_proj_weight.mul_(4.0)
        # Trained tokens are far from their position embeddings; at init a patch at its mean (the
        # integrated-gradients baseline) would give near-constant tokens, where LayerNorm is steep.
        rit.patch.bias.copy_(torch.randn(DIM))
    return rit


def _cohort(encoder, n=3, seed=0):
    """Samples (cached-token stand-ins from the RiT itself), spans and the loader of their ROI patches."""
    rng = np.random.default_rng(seed)
    data, samples, spans = {}, [], []
    for i in range(n):
        presence = np.ones(N_ROI, bool)
        if i == 1:
            presence[2] = False
        rois = rng.random((N_ROI, SIZE, SIZE, SIZE)).astype(np.float32) * presence[:, None, None, None]
        data[f"s{i}"] = {"rois": rois, "presence": presence, "volume": np.ones(N_ROI, np.float32)}
        blocks = [f"{g}: " + " ".join(map(str, rng.integers(0, 3, 2 + j))) for j, g in enumerate(GENES)]
        genome = join_blocks(blocks, GENES, rng.permutation(len(GENES)))
        with torch.no_grad():
            visual = encoder.encode(torch.from_numpy(rois)[None], torch.from_numpy(presence)[None])[0].numpy()
        samples.append(PromptSample(f"s{i}", genome.text, "NC", visual, presence.astype(np.uint8)))
        spans.append(genome.spans)
    image = ImageInputs(encoder, data.__getitem__, {s: encoder_rollout(
        encoder, torch.from_numpy(d["rois"])[None], torch.from_numpy(d["presence"])[None])[0].numpy()
        for s, d in data.items()})
    return samples, spans, image


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_the_same_dump_format_and_names_itself(model, encoder, method, tmp_path):
    samples, spans, image = _cohort(encoder)
    dump = attribute_samples(model, samples, spans, GENES, [f"r{i}" for i in range(N_ROI)], method=method,
                             image=image, ig_steps=4, meta={"note": "demo model, random init"})
    assert dump.gene_importance.shape == (3, len(GENES)) and dump.roi_importance.shape == (3, N_ROI)
    assert dump.roi_gene.shape == (3, N_ROI, len(GENES))
    assert np.isfinite(dump.gene_importance).all() and np.abs(dump.roi_importance).sum() > 0
    assert dump.roi_importance[1, 2] == 0  # the missing ROI
    write_dump(tmp_path / "d.npz", dump)
    back = read_dump(tmp_path / "d.npz")
    assert back.method == method and back.note == f"demo model, random init; attribution: {method}"
    if method == "integrated_gradients":
        assert back.meta["ig_steps"] == 4 and len(back.meta["completeness"]["sum_attributions"]) == 3


def test_integrated_gradients_are_complete_at_enough_steps(model, encoder):
    samples, spans, image = _cohort(encoder, n=2)
    got = attribute_batch("integrated_gradients", model, image, samples, spans, GENES, ["MCI", "AD"], ig_steps=64)
    total, gap = got.completeness[:, 0], got.completeness[:, 1]
    assert (np.abs(gap) > 1e-3).all(), "degenerate test: input and baseline score the same"
    np.testing.assert_allclose(total, gap, rtol=0.02, atol=2e-3)
    np.testing.assert_allclose(got.gene_importance.sum(1) + got.roi_importance.sum(1), total, rtol=1e-4, atol=1e-5)


def test_chefer_relevance_matches_a_hand_computation_for_one_layer():
    """f = Σ w ⊙ (A V): ∂f/∂A = w Vᵀ by hand, Ā = mean_h((A ⊙ w Vᵀ)^+), R = I + Ā."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.randn(1, 2, 5, 3, generator=g, dtype=torch.float64)
    attn = torch.softmax(q @ k.transpose(-1, -2), -1).requires_grad_()
    (grad,) = torch.autograd.grad((w * (attn @ v)).sum(), [attn])
    hand = (attn.detach() * (w @ v.transpose(-1, -2))).clamp_min(0).mean(1)
    torch.testing.assert_close(relevance_weights(attn.detach(), grad), hand.float())
    torch.testing.assert_close(relevance_matrix([relevance_weights(attn.detach(), grad)]),
                               torch.eye(5).expand(1, 5, 5) + hand.float())
    two = relevance_matrix([hand.float(), hand.float()])
    torch.testing.assert_close(two, (torch.eye(5) + hand.float()) @ (torch.eye(5) + hand.float()))


def _independent_rit_rollout(encoder, rois, presence):
    """Each layer's attention from its own MultiheadAttention on the layer input, head mean, mixed, multiplied."""
    inputs = []
    hooks = [b.register_forward_pre_hook(lambda _m, args: inputs.append(args)) for b in encoder.blocks]
    with torch.no_grad():
        encoder.encode(rois, presence)
    for h in hooks:
        h.remove()
    rollout = np.eye(N_ROI)
    for block, (x, kpm) in zip(encoder.blocks, inputs):
        with torch.no_grad():
            h = block.norm1(x)
            _, a = block.attn(h, h, h, key_padding_mask=kpm, need_weights=True, average_attn_weights=True)
        mixed = 0.5 * a[0].double().numpy() + 0.5 * np.eye(N_ROI)
        rollout = (mixed / mixed.sum(1, keepdims=True)) @ rollout
    return rollout


def test_end_to_end_rollout_is_the_llm_roi_shares_times_the_rit_rollout(model, encoder):
    samples, spans, image = _cohort(encoder)
    pred = ["NC", "AD", "SMC"]
    tokens = attribute_batch("rollout_tokens", model, image, samples, spans, GENES, pred)
    e2e = attribute_batch("rollout", model, image, samples, spans, GENES, pred)
    for b, s in enumerate(samples):
        d = image.load(s.subject)
        rit = _independent_rit_rollout(encoder, torch.from_numpy(d["rois"])[None], torch.from_numpy(d["presence"])[None])
        assert not np.allclose(rit, np.eye(N_ROI), atol=0.05), "degenerate test: no mixing between ROIs"
        np.testing.assert_allclose(e2e.roi_importance[b], tokens.roi_importance[b] @ rit, atol=2e-3)
        np.testing.assert_allclose(e2e.roi_gene[b], rit.T @ tokens.roi_gene[b], atol=2e-3)
    np.testing.assert_array_equal(e2e.gene_importance, tokens.gene_importance)


def test_removing_a_roi_is_the_pipelines_missing_roi(model, encoder):
    samples, spans, image = _cohort(encoder, n=1)
    sample = samples[0]
    full = image.patches([sample.subject])
    removed = remove_rois(full, [3])
    missing = dict(image.load(sample.subject))
    missing["rois"] = missing["rois"].copy()
    missing["rois"][3] = 0.0
    missing["presence"] = missing["presence"].copy()
    missing["presence"][3] = False
    with torch.no_grad():
        visual = encoder.encode(torch.from_numpy(missing["rois"])[None], torch.from_numpy(missing["presence"])[None])
    as_missing = PromptSample(sample.subject, sample.genome_text, "NC", visual[0].numpy(),
                              missing["presence"].astype(np.uint8))
    from rgenima_lib.models.prompting import PromptCollator
    from rgenima_lib.train.predict import score_answers

    expected = score_answers(model, PromptCollator(model.tokenizer, with_labels=False)([as_missing]))
    got = variant_probabilities(model, image, [(removed, sample)])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, variant_probabilities(model, image, [(full, sample)]), atol=1e-6)


def test_reference_text_resets_only_the_genotypes_of_the_chosen_genes():
    genome = join_blocks(["APOE: 1 2 0", "BIN1: 2 2", "APP: 0 1"], ["APOE", "BIN1", "APP"], [1, 0, 2])
    assert reference_genome_text(genome.text, genome.spans) == "BIN1: 0 0\nAPOE: 0 0 0\nAPP: 0 0"
    assert reference_genome_text(genome.text, genome.spans, {"BIN1"}) == "BIN1: 0 0\nAPOE: 1 2 0\nAPP: 0 1"


def test_gradient_methods_beat_random_deletion_where_the_used_rois_are_planted(model, encoder):
    """Planted: every ROI but 0 and 3 sits at its mean patch with the mean's token, so only 0 and 3 carry evidence."""
    samples, spans, image = _cohort(encoder, n=3, seed=5)
    planted = [0, 3]
    rng = np.random.default_rng(7)
    data = {}
    for s in samples:
        d = dict(image.load(s.subject))
        rois = np.broadcast_to(encoder.input_mean.numpy(), d["rois"].shape).copy()
        rois[planted] = rng.random((len(planted), SIZE, SIZE, SIZE)) * 3.0
        data[s.subject] = {"rois": rois.astype(np.float32), "presence": np.ones(N_ROI, bool), "volume": d["volume"]}
    image = ImageInputs(encoder, data.__getitem__, None)
    samples = [PromptSample(s.subject, s.genome_text, "AD", s.visual, np.ones(N_ROI, np.uint8)) for s in samples]
    scores = {}
    for method in ("integrated_gradients", "gradient_input"):
        got = attribute_batch(method, model, image, samples, spans, GENES, ["AD"] * 3, ig_steps=16)
        scores[method] = (got.roi_importance, got.gene_importance)
    drops = deletion_drops(model, image, samples, spans, GENES, scores, ks=(2,), n_random=5)
    table = faithfulness_table(drops).set_index(["method", "what"])
    for method in scores:
        assert table.loc[(method, "roi"), "difference"] > 0, table


def test_integrated_gradients_attribute_the_volumes_a_volume_reading_rit_uses(model, encoder):
    """A RiT that reads ROI volumes: the path moves them too, so IG stays complete and finds the one volume that differs.

    Every patch sits at its mean (the patch baseline), so the only evidence is ROI 4's volume, twice its average:
    an IG that held volumes fixed would score f(x) = f(x') and attribute nothing.
    """
    torch.manual_seed(1)
    rit = RiT(RiTConfig(n_rois=N_ROI, roi_size=SIZE, dim=DIM, depth=2, heads=2, dropout=0.0, pool="mean",
                        patch_rank=2, roi_volume=True)).eval()
    with torch.no_grad():
        rit.load_state_dict({**encoder.state_dict(), **{k: v for k, v in rit.state_dict().items()
                                                       if k.startswith("volume")}})
        rit.volume_embed.mul_(10.0)
    samples, spans, _ = _cohort(encoder, n=2)
    volume = np.full(N_ROI, 100.0, np.float32)
    volume[4] = 200.0
    mean_patch = rit.input_mean.numpy()
    data = {s.subject: {"rois": np.broadcast_to(mean_patch, (N_ROI, SIZE, SIZE, SIZE)).astype(np.float32),
                        "presence": np.ones(N_ROI, bool), "volume": volume} for s in samples}
    # the training average: this subject's relative volumes with ROI 4 half as large, so only ROI 4's input is not 0
    average = relative_log_volume(torch.from_numpy(volume)[None], torch.ones(1, N_ROI, dtype=torch.bool))[0]
    average[4] -= float(np.log(2.0))
    rit.set_volume_normalization(average, torch.full((N_ROI,), 0.2))
    image = ImageInputs(rit, data.__getitem__, None)
    samples = [PromptSample(s.subject, reference_genome_text(s.genome_text, sp), "NC", s.visual,
                            np.ones(N_ROI, np.uint8)) for s, sp in zip(samples, spans)]
    got = attribute_batch("integrated_gradients", model, image, samples, spans, GENES, ["MCI", "AD"], ig_steps=32)
    total, gap = got.completeness[:, 0], got.completeness[:, 1]
    assert (np.abs(gap) > 1e-4).all(), "degenerate test: the volume does not move f"
    np.testing.assert_allclose(total, gap, rtol=0.02, atol=1e-6)
    assert (np.abs(got.roi_importance).argmax(1) == 4).all(), got.roi_importance
    np.testing.assert_allclose(got.roi_importance[:, 4], total, rtol=0.05)  # the patches are at their baseline
    grad_input = attribute_batch("gradient_input", model, image, samples, spans, GENES, ["MCI", "AD"])
    assert np.abs(grad_input.roi_importance[:, 4]).min() > 0


def test_integrated_gradients_in_embedding_space_equal_the_patch_space_path(model, encoder):
    """The patch embedding is affine: IG over the patch embeddings gives each ROI exactly the patch-space IG."""
    from rgenima_lib.attribution.end_to_end import answer_batch, encode_tokens, label_logprob
    from rgenima_lib.attribution.integrated_gradients import path_points

    samples, spans, image = _cohort(encoder, n=1)
    sample, steps = samples[0], 8
    patches = image.patches([sample.subject])
    x = patches["rois"]
    x0 = torch.where(patches["presence"].bool().view(1, -1, 1, 1, 1), encoder.input_mean, x)
    ref = PromptSample(sample.subject, reference_genome_text(sample.genome_text, spans[0]), "NC", sample.visual,
                       sample.presence)
    batch = answer_batch(model, [ref], spans, GENES, ["AD"])  # genes at the baseline: only the patches move
    alphas, weights = path_points(steps)
    grad = torch.zeros_like(x)
    for a, w in zip(alphas, weights):
        xa = (x0 + float(a) * (x - x0)).requires_grad_()
        f = label_logprob(model, batch, encode_tokens(encoder, xa, patches["presence"], patches["volume"]))
        grad += float(w) * torch.autograd.grad(f.sum(), xa)[0]
    expected = ((x - x0) * grad)[0].flatten(1).sum(1).numpy()
    genes_at_baseline = attribute_batch("integrated_gradients", model, image, [ref], spans, GENES, ["AD"],
                                        ig_steps=steps)
    np.testing.assert_allclose(genes_at_baseline.roi_importance[0], expected, rtol=1e-3, atol=1e-6)
    assert np.abs(expected).max() > 1e-4, "degenerate test: the patches do not move f"


def test_removing_a_gene_token_zeroes_its_dosages_and_keeps_the_others():
    from rgenima_lib.attribution.faithfulness import remove_genes
    from rgenima_lib.genetics.gene_tokens import GeneInput

    genome = join_blocks(["APOE: 1 2", "BIN1: 2 2", "APP: 0 1"], ["APOE", "BIN1", "APP"], [1, 0, 2])
    dosages = np.array([[2, 2], [1, 2], [0, 1]], np.float32)  # rows in text order: BIN1, APOE, APP
    sample = PromptSample("s", genome.text, "AD", genes=GeneInput(dosages, np.array([1, 0, 2])))
    removed = remove_genes(sample, genome.spans, {"APOE"})
    np.testing.assert_array_equal(removed.genes.dosages, [[2, 2], [0, 0], [0, 1]])
    assert removed.genome_text == "BIN1: 2 2\nAPOE: 0 0\nAPP: 0 1" and removed.stage == "AD"
    np.testing.assert_array_equal(sample.genes.dosages, dosages)  # the sample itself is untouched


def test_explaining_the_label_explains_each_subjects_own_stage(model, encoder):
    samples, spans, image = _cohort(encoder, n=2)
    samples = [replace(s, stage=stage) for s, stage in zip(samples, ["AD", "SMC"])]
    rois = [f"r{i}" for i in range(N_ROI)]
    got = attribute_samples(model, samples, spans, GENES, rois, method="gradient_input", image=image,
                            explain="label")
    expected = attribute_batch("gradient_input", model, image, samples, spans, GENES, ["AD", "SMC"])
    np.testing.assert_allclose(got.roi_importance, expected.roi_importance, rtol=1e-4, atol=1e-6)
    assert got.meta["explain"] == "label"
    with pytest.raises(ValueError, match="needs every sample's stage"):
        attribute_samples(model, [replace(samples[0], stage=None)], spans[:1], GENES, rois, method="gradient_input",
                          image=image, explain="label")
