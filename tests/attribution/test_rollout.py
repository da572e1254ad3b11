"""Streaming attention rollout (paper 2.2-2.4, 4.3) against the full-matrix product; token maps; dumps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rgenima_lib.attribution.attribute import rollout_batch
from rgenima_lib.attribution.dump_format import AttentionDump, concat_dumps, read_dump, write_dump
from rgenima_lib.attribution.synthetic_dump import synthetic_dump
from rgenima_lib.attribution.token_map import gene_of_tokens, token_map
from rgenima_lib.attribution.rollout import (ROLLOUT_ATTENTION, StreamingRollout, eager_rollout_hooks,
                                             full_rollout, mixed_attention, read_rows, rollout_attention)
from rgenima_lib.genetics.serialize import join_blocks
from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
from rgenima_lib.models.prompting import PromptCollator, PromptSample

torch.set_num_threads(2)
GENES = ["APOE", "BIN1", "CLU", "APP", "TOMM40"]
N_VIS, D_VIS = 6, 8


def _random_attention(rng, b, h, t, valid=None):
    """Causal softmax attention float64[B, H, T, T] (masked keys get 0)."""
    logits = torch.from_numpy(rng.normal(size=(b, h, t, t)))
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
    if valid is not None:
        mask = mask & valid[:, None, None, :]
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)


def test_mixed_attention_is_row_stochastic_and_masks_padding():
    rng = np.random.default_rng(0)
    valid = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    attn = _random_attention(rng, 2, 3, 6, valid)
    for sink in ("keep", "exclude", "per_layer"):
        a = mixed_attention(attn, valid, torch.tensor([2, 0]), sink, torch.float64)
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 6, dtype=torch.float64))
        assert torch.equal(a[0, :2], torch.eye(6, dtype=torch.float64)[:2])  # padding rows: identity
        assert (a[0, 2:, :2] == 0).all()  # nobody reads padding
        expected = 0.5 * attn.mean(1)[1] + 0.5 * torch.eye(6, dtype=torch.float64)
        if sink != "per_layer":
            torch.testing.assert_close(a[1], expected / expected.sum(-1, keepdim=True))
    a = mixed_attention(attn, valid, torch.tensor([2, 0]), "per_layer", torch.float64)
    assert (a[0, 3:, 2] == 0).all() and (a[1, 1:, 0] == 0).all()  # the sink column is gone below its own row
    with pytest.raises(ValueError, match="sink"):
        mixed_attention(attn, sink="drop")


@pytest.mark.parametrize("sink", ["keep", "exclude", "per_layer"])
def test_streaming_columns_equal_full_rollout_on_random_layers(sink):
    rng = np.random.default_rng(1)
    b, t, k, layers = 2, 24, 5, 4
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[0, :3] = False  # left padding of sample 0
    valid[1, 10] = False  # an absent ROI token
    sink_index = torch.tensor([3, 0])
    attns = [_random_attention(rng, b, 2, t, valid) for _ in range(layers)]
    columns = torch.from_numpy((rng.random((b, t, k)) < 0.3).astype(np.float64))
    columns[:, :, 0] = 0
    columns[torch.arange(b), sink_index, 0] = 1.0
    tracker = StreamingRollout(columns, valid, sink_index, sink, dtype=torch.float64)
    for attn in attns:
        tracker.update(attn)
    full = full_rollout(attns, valid, sink_index, sink) @ columns
    torch.testing.assert_close(tracker.state, full, atol=1e-12, rtol=0)
    blockwise = StreamingRollout(columns, valid, sink_index, sink, dtype=torch.float64)
    for attn in attns:  # blocks of 5 rows over the keys up to each block's last row (causal)
        blockwise.fold_rows((a, attn[:, :, a:a + 5, :a + 5].mean(1)) for a in range(0, t, 5))
    torch.testing.assert_close(blockwise.state, full, atol=1e-12, rtol=0)
    shares = read_rows(tracker.state, [[t - 1], [t - 2, t - 1]], torch.tensor([[5, 6], [7, 8]]), sink=sink)
    row = full[1, [t - 2, t - 1]]
    if sink == "exclude":
        row = row / (1 - row[:, :1])
    torch.testing.assert_close(shares.answer[1], row.mean(0))
    torch.testing.assert_close(shares.sink_share[1], full[1, [t - 2, t - 1], 0].mean())


def test_gene_of_tokens_assigns_each_token_to_the_block_it_overlaps_most():
    spans = [("APOE", 0, 9), ("BIN1", 10, 19)]  # "APOE: 0 1\nBIN1: 2 0"
    offsets = [(0, 2), (5, 6), (8, 9), (9, 10), (9, 12), (12, 19), (19, 25), (3, 3)]
    got = gene_of_tokens(offsets, 100, [(g, s + 100, e + 100) for g, s, e in spans], {"APOE": 0, "BIN1": 1})
    np.testing.assert_array_equal(got, [-1] * 8)  # offsets outside the genome start (100) map to nothing
    got = gene_of_tokens(offsets, 0, spans, {"APOE": 0, "BIN1": 1})
    np.testing.assert_array_equal(got, [0, 0, 0, -1, 1, 1, -1, -1])
    assert (gene_of_tokens(offsets, 0, spans, {"BIN1": 4}) == [-1, -1, -1, -1, 4, 4, -1, -1]).all()


@pytest.fixture(scope="module")
def model(demo_llm):
    base = demo_llm(hidden_size=32, n_layers=3, n_heads=2, n_kv_heads=1, intermediate_size=64, seed=2,
                    gene_names=GENES)
    torch.manual_seed(0)
    m = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS, attn_implementation="eager")).eval()
    with torch.no_grad():  # sharper attention than the random init, so that rollout rows differ visibly
        for layer in m.causal_lm.model.layers:
            layer.self_attn.q_proj.weight.mul_(6.0)
    return m


def _samples(n=2, seed=0):
    rng = np.random.default_rng(seed)
    samples, spans = [], []
    for i in range(n):
        blocks = [f"{g}: " + " ".join(map(str, rng.integers(0, 3, 2 + i + j % 3))) for j, g in enumerate(GENES)]
        genome = join_blocks(blocks, GENES, rng.permutation(len(GENES)))
        presence = np.ones(N_VIS, np.uint8)
        presence[2] = 0 if i == 1 else 1
        samples.append(PromptSample(f"s{i}", genome.text, "NC", rng.normal(size=(N_VIS, D_VIS)).astype(np.float32),
                                    presence))
        spans.append(genome.spans)
    return samples, spans


@pytest.mark.parametrize("sink", ["keep", "exclude", "per_layer"])
def test_streaming_rollout_equals_full_matrix_rollout_on_a_small_model(model, sink):
    """Batched streaming (hooks, left padding, an absent ROI) == per-sample full product of all layers, to 1e-5."""
    samples, spans = _samples()
    predicted = ["MCI", "SMC"]
    got = rollout_batch(model, samples, spans, GENES, predicted, sink=sink)
    index = {g: i for i, g in enumerate(GENES)}
    for b, s in enumerate(samples):
        tm = token_map(model.tokenizer, s.genome_text, spans[b], index, N_VIS, predicted[b])
        one = PromptCollator(model.tokenizer, with_labels=True)(
            [PromptSample(s.subject, s.genome_text, predicted[b], s.visual, s.presence)])
        one.pop("labels")
        with torch.no_grad():
            out = model(**one, output_attentions=True, use_cache=False)
        assert len(out.attentions) == 3
        rollout = full_rollout(out.attentions, one["attention_mask"].bool(), torch.tensor([0]), sink)[0]

        def row(i):
            r = rollout[i]
            return r / (1 - r[0]) if sink == "exclude" else r

        answer = torch.stack([row(i) for i in tm.answer_rows]).mean(0).numpy()
        genes = np.array([answer[tm.gene_of_token == g].sum() for g in range(len(GENES))])
        rois = answer[tm.roi_positions] * s.presence
        pairs = np.array([[row(p).numpy()[tm.gene_of_token == g].sum() for g in range(len(GENES))]
                          for p in tm.roi_positions]) * s.presence[:, None]
        np.testing.assert_allclose(got.gene_importance[b], genes, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got.roi_importance[b] * s.presence, rois, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got.roi_gene[b] * s.presence[:, None], pairs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got.sink_share[b], torch.stack([rollout[i, 0] for i in tm.answer_rows]).mean(),
                                   atol=1e-5)
        assert genes.std() > 1e-4 and pairs.std() > 1e-5, "degenerate test: uniform rollout"
    if sink == "exclude":  # the renormalised shares of gene + ROI + other tokens make the rest of the row
        assert (got.gene_importance.sum(1) + got.roi_importance.sum(1) < 1).all()


def test_token_map_finds_gene_tokens_roi_slots_and_the_rows_that_write_the_label(model):
    tok = model.tokenizer
    samples, spans = _samples(1)
    s = samples[0]
    index = {g: i for i, g in enumerate(GENES)}
    tm = token_map(tok, s.genome_text, spans[0], index, N_VIS, "SMC")
    batch = PromptCollator(tok, with_labels=True)([PromptSample("x", s.genome_text, "SMC", s.visual)])
    ids = batch["input_ids"][0].tolist()
    assert tm.length == len(ids)
    assert [ids[p] for p in tm.roi_positions] == [model.image_token_id] * N_VIS
    assert tm.roi_positions.tolist() == list(range(tm.roi_positions[0], tm.roi_positions[0] + N_VIS))
    text = {g: s.genome_text[a:e] for g, a, e in spans[0]}
    for g, i in index.items():
        decoded = tok.decode([ids[p] for p in np.flatnonzero(tm.gene_of_token == i)]).replace(" ", "")
        assert decoded and decoded in text[g].replace(" ", "") and g in decoded  # a whole block, name included
    label_tokens = tok.decode([ids[r + 1] for r in tm.answer_rows]).strip()
    assert label_tokens == "SMC"  # row r predicts token r + 1: the rows where the stage is written
    end = token_map(tok, s.genome_text, spans[0], index, N_VIS, "SMC", answer_rows="prompt_end")
    assert tok.decode([ids[end.answer_rows[0] + 1]]).strip() == "This"


def test_passes_restore_the_attention_implementation_and_any_loaded_model_gives_the_same_rollout(model, tmp_path):
    samples, spans = _samples(1)
    attn_modules = [m for n, m in model.named_modules() if n.endswith("self_attn")]
    before = [len(m._forward_hooks) for m in attn_modules]
    tracker = StreamingRollout(torch.zeros(1, 4, 1))
    with eager_rollout_hooks(model, tracker):
        assert [len(m._forward_hooks) for m in attn_modules] == [n + 1 for n in before]
    assert [len(m._forward_hooks) for m in attn_modules] == before
    with rollout_attention(model, tracker):
        assert model.causal_lm.config._attn_implementation == ROLLOUT_ATTENTION
    assert model.causal_lm.config._attn_implementation == "eager"
    model.save_checkpoint(tmp_path / "ckpt")
    reference = rollout_batch(model, samples, spans, GENES, ["NC"]).roi_gene
    for implementation in ("sdpa", "eager"):
        loaded = RGenIMA.from_checkpoint(tmp_path / "ckpt", attn_implementation=implementation).eval()
        np.testing.assert_allclose(rollout_batch(loaded, samples, spans, GENES, ["NC"]).roi_gene, reference,
                                   atol=1e-6)
        assert loaded.causal_lm.config._attn_implementation == implementation


def _rollout_model(demo_llm, arch):
    """The fixture's model in either architecture: 3 layers, 2 query heads on 1 kv head (GQA), sharp attention."""
    base = demo_llm(arch=arch, hidden_size=32, n_layers=3, n_heads=2, n_kv_heads=1, intermediate_size=64, seed=2,
                    gene_names=GENES)
    torch.manual_seed(0)
    m = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS)).eval()  # loaded with SDPA
    with torch.no_grad():
        for layer in m.causal_lm.model.layers:
            layer.self_attn.q_proj.weight.mul_(6.0)
    return m


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def arch_model(request, demo_llm):
    return _rollout_model(demo_llm, request.param)


def _padded_batch(model):
    """Two samples of different lengths (left padding), one with an absent ROI; (batch, valid, sink, columns)."""
    samples, _ = _samples(2)
    samples[1] = PromptSample(samples[1].subject, samples[1].genome_text + "\nAPOE: 1 1 2 0 1", "NC",
                              samples[1].visual, samples[1].presence)
    batch = PromptCollator(model.tokenizer, with_labels=True)(samples)
    batch.pop("labels")
    valid = batch["attention_mask"].bool()
    sink_index = (~valid).long().cumprod(1).sum(1)  # first real token (absent ROIs come later)
    width = valid.shape[1]
    columns = torch.from_numpy((np.random.default_rng(3).random((2, width, 6)) < 0.2).astype(np.float32))
    columns[:, :, 0] = 0
    columns[torch.arange(2), sink_index, 0] = 1.0
    assert int(sink_index[0]) != int(sink_index[1]) and (~valid[:, int(sink_index.max()):]).any()
    return batch, valid, sink_index, columns


def _final_state(model, batch, tracker, passes):
    with torch.no_grad(), passes(model, tracker):
        model(**batch, use_cache=False, logits_to_keep=1)
    assert tracker.n_layers == 3
    return tracker.state


@pytest.mark.parametrize("sink", ["keep", "exclude", "per_layer"])
def test_blockwise_rollout_beside_sdpa_equals_the_eager_pass(arch_model, sink):
    """Qwen2 and Llama, GQA, padding, an absent ROI, blocks of 5 rows: the state of the eager pass to 1e-5."""
    batch, valid, sink_index, columns = _padded_batch(arch_model)
    heads, width = arch_model.causal_lm.config.num_attention_heads, valid.shape[1]
    blockwise = StreamingRollout(columns, valid, sink_index, sink, block_rows=5)
    eager = StreamingRollout(columns, valid, sink_index, sink)
    got = _final_state(arch_model, batch, blockwise, rollout_attention)
    want = _final_state(arch_model, batch, eager, eager_rollout_hooks)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert blockwise.largest_block[:3] == (2, heads, 5) and width - 5 <= blockwise.largest_block[3] <= width
    assert got[valid].std() > 1e-3, "degenerate test: uniform rollout"
    assert arch_model.causal_lm.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("causal, padded", [(True, False), (True, True), (False, False), (False, True)])
def test_blockwise_layer_output_is_sdpas(causal, padded):
    """fold_attention's P V (GQA, padding with fully masked rows, causal or not) is SDPA's output to 5e-6.

    Measured: at most 1.9e-6 here (outputs of order 1), float rounding of the two summation orders.
    """
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    b, heads, kv_heads, t, d = 2, 4, 2, 37, 16
    q, k, v = torch.randn(b, heads, t, d) * 3, torch.randn(b, kv_heads, t, d), torch.randn(b, kv_heads, t, d)
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[0, :5] = False
    mask = None
    if padded:  # causal: rows 0-4 of sample 0 see no key at all (SDPA gives them 0)
        mask = valid[:, None, None, :].expand(b, 1, t, t)
        mask = mask & torch.ones(t, t, dtype=torch.bool).tril() if causal else mask
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=causal)
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=d ** -0.5)
    for rows in (1, 5, t):
        tracker = StreamingRollout(torch.rand(b, t, 3), valid, block_rows=rows)
        got = tracker.fold_attention(q, k, v, mask, d ** -0.5, causal=causal)
        assert got.shape == want.shape and torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=5e-6, rtol=0)
    if padded and causal:
        assert (got[0, :5] == 0).all()


def test_the_rollout_pass_runs_the_network_scoring_runs(arch_model):
    """The logits under the rollout pass's attention are the SDPA forward's (padded batch, GQA), to 1e-5."""
    batch, valid, sink_index, columns = _padded_batch(arch_model)
    with torch.no_grad():
        want = arch_model(**batch, use_cache=False).logits
        with rollout_attention(arch_model, StreamingRollout(columns, valid, sink_index)):
            got = arch_model(**batch, use_cache=False).logits
    torch.testing.assert_close(got[valid], want[valid], atol=1e-5, rtol=0)


def test_block_size_does_not_change_the_rollout(arch_model):
    batch, valid, sink_index, columns = _padded_batch(arch_model)
    width = valid.shape[1]
    states = [_final_state(arch_model, batch, StreamingRollout(columns, valid, sink_index, "exclude", block_rows=rows),
                           rollout_attention)
              for rows in (1, 7, width, 4 * width)]  # a block of the whole layer, and one clipped to it
    for state in states[1:]:
        torch.testing.assert_close(state, states[0], atol=1e-6, rtol=0)


def test_no_per_head_t_by_t_tensor_exists_in_the_rollout_pass(model):
    """Every tensor the pass makes, seen through a dispatch mode: none float[B, H, T, T], unlike the eager pass.

    The only T x T floats are SDPA's own float copy of the boolean padding mask, float[B, 1, T, T],
    which scoring makes too.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    batch, valid, sink_index, columns = _padded_batch(model)
    heads, width = model.causal_lm.config.num_attention_heads, valid.shape[1]

    class SquareFloatTensors(TorchDispatchMode):
        shapes: set

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() >= width * width:
                    self.shapes.add(tuple(t.shape))
            return out

    seen = {}
    for name, passes in (("blockwise", rollout_attention), ("eager", eager_rollout_hooks)):
        tracker = StreamingRollout(columns, valid, sink_index, block_rows=8)
        spy = SquareFloatTensors()
        spy.shapes = set()
        with spy:
            _final_state(model, batch, tracker, passes)
        seen[name] = spy.shapes
    assert (2, heads, width, width) in seen["eager"]  # the spy does see a whole layer's weights where they exist
    assert seen["blockwise"] <= {(2, 1, width, width)}, seen["blockwise"]


def test_scoring_runs_sdpa_and_the_rollout_pass_its_own_attention(model):
    """Which implementation each attention call of attribute_samples runs under, on a model loaded eager."""
    from rgenima_lib.attribution.attribute import attribute_samples

    samples, spans = _samples(2)
    calls = []
    first_layer = next(m for n, m in model.named_modules() if n.endswith("layers.0.self_attn"))
    handle = first_layer.register_forward_pre_hook(
        lambda module, args: calls.append(module.config._attn_implementation))
    try:
        attribute_samples(model, samples, spans, GENES, [f"R{i}" for i in range(N_VIS)], batch_size=2)
    finally:
        handle.remove()
    # One prompt pass and four answer continuations of scoring, then the rollout pass.
    assert calls == ["sdpa"] * 5 + [ROLLOUT_ATTENTION], calls
    assert model.causal_lm.config._attn_implementation == "eager"


def test_dump_round_trip_pooling_and_size(tmp_path):
    genes = [f"G{i}" for i in range(105)]
    rois = [f"R{i}" for i in range(109)]
    dump = synthetic_dump(1000, genes, rois, seed=0)
    write_dump(tmp_path / "d.npz", dump)
    back = read_dump(tmp_path / "d.npz")
    for key in ("subjects", "genes", "rois", "gene_importance", "roi_importance", "roi_gene", "label", "predicted",
                "probabilities", "roi_presence", "gene_tokens", "fold"):
        np.testing.assert_array_equal(getattr(back, key), getattr(dump, key))
    assert back.roi_gene.dtype == np.float16 and back.meta["format"] == "rgenima-attention-dump/1"
    # 109 x 105 float16 per subject is 22.9 kB before compression; the file must stay near that.
    assert (tmp_path / "d.npz").stat().st_size < 25e6
    halves = [synthetic_dump(10, genes, rois, seed=s) for s in (1, 2)]
    halves[1].subjects = np.char.add(halves[1].subjects, "b")
    pooled = concat_dumps(halves)
    assert pooled.n_subjects == 20 and pooled.roi_gene.shape == (20, 109, 105)
    with pytest.raises(ValueError, match="two dumps"):
        concat_dumps([halves[0], halves[0]])
    with pytest.raises(ValueError, match="disagree"):
        AttentionDump(**{**{k: getattr(dump, k) for k in dump.__dataclass_fields__}, "roi_gene": dump.roi_gene[:5]})


def test_gene_orders_replace_the_own_order_in_the_attribution(model):
    from rgenima_lib.attribution.attribute import attribute_samples

    samples, spans = _samples(2)
    rng = np.random.default_rng(9)
    blocks = [[line for line in s.genome_text.split("\n")] for s in samples]
    names = [[b.split(":")[0] for b in bl] for bl in blocks]
    other = [join_blocks(bl, nm, rng.permutation(len(bl))) for bl, nm in zip(blocks, names)]
    rois = [f"R{i}" for i in range(N_VIS)]
    avg = attribute_samples(model, samples, spans, GENES, rois, extra_orders=[[o] for o in other], batch_size=2)
    pred = avg.predicted.tolist()
    one = rollout_batch(model, samples, spans, GENES, pred)
    perm = rollout_batch(model, [PromptSample(s.subject, o.text, s.stage, s.visual, s.presence)
                                 for s, o in zip(samples, other)], [o.spans for o in other], GENES, pred)
    np.testing.assert_allclose(avg.gene_importance.astype(float), perm.gene_importance, rtol=2e-3, atol=1e-6)
    assert avg.meta["gene_orders"] == 1 and not np.allclose(one.gene_importance, perm.gene_importance)
    both = attribute_samples(model, samples, spans, GENES, rois, extra_orders=[[o, s_] for o, s_ in zip(other, [
        join_blocks(bl, nm, np.arange(len(bl))) for bl, nm in zip(blocks, names)])], batch_size=2)
    np.testing.assert_allclose(both.gene_importance.astype(float), (one.gene_importance + perm.gene_importance) / 2,
                               rtol=2e-3, atol=1e-6)  # the mean over the given orders (float16 in the dump)
    assert both.meta["gene_orders"] == 2 and (both.predicted == avg.predicted).all()


def test_a_gene_only_llm_is_attributed_over_its_genes_alone(demo_llm):
    """attribution.genes_from: gene_only: a model without ROI tokens gives a dump of genes only."""
    from rgenima_lib.attribution.attribute import attribute_samples

    base = demo_llm(hidden_size=32, n_layers=2, n_heads=2, n_kv_heads=1, intermediate_size=64, seed=2,
                    gene_names=GENES)
    torch.manual_seed(0)
    snp_model = RGenIMA.from_base(base, MLLMConfig(attn_implementation="eager")).eval()
    samples, spans = _samples(2)
    text_only = [PromptSample(s.subject, s.genome_text, s.stage) for s in samples]
    tm = token_map(snp_model.tokenizer, text_only[0].genome_text, spans[0], {g: i for i, g in enumerate(GENES)}, 0,
                   "NC")
    ids = PromptCollator(snp_model.tokenizer, with_labels=True)(text_only[:1])["input_ids"][0].tolist()
    assert tm.length == len(ids) and tm.roi_positions.size == 0
    assert snp_model.image_token_id not in ids
    dump = attribute_samples(snp_model, text_only, spans, GENES, [], batch_size=2)
    assert dump.gene_importance.shape == (2, len(GENES)) and dump.roi_importance.shape == (2, 0)
    assert (dump.gene_importance.astype(float) > 0).all() and dump.rois.size == 0
    # the end-to-end rollout of a model without ROI tokens is its token rollout (nothing to compose with)
    end_to_end = attribute_samples(snp_model, text_only, spans, GENES, [], batch_size=2, method="rollout", image=None)
    np.testing.assert_array_equal(end_to_end.gene_importance, dump.gene_importance)
    assert end_to_end.method == "rollout"
    with pytest.raises(ValueError, match="ROIs"):  # ROI tokens and an empty ROI list do not go together
        attribute_samples(snp_model, samples, spans, GENES, [])
