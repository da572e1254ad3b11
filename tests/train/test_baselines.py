"""Table 1 baselines: MLP, BERT on windowed SNP text, BERT + image tokens with † / ‡ fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rgenima_lib.models.baselines import (MODEL_IDS, CrossModalAttention, GeneImageClassifier, SNPMLP, TextEncoder,
                                          build_baseline, default_text_model_path, load_text_backbone,
                                          model_image_encoder, tokenize_windows)
from rgenima_lib.train.classifier import FitConfig, TensorDataset, fit_classifier, predict_proba, seed_everything
from rgenima_lib.vocabulary import STAGES

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def minilm():
    """The pretrained MiniLM shipped in the venv, loaded offline."""
    return load_text_backbone()


@pytest.fixture(scope="module")
def tiny_bert(minilm):
    """A 2-layer random BERT with MiniLM's vocabulary: fast stand-in for encoder mechanics."""
    from transformers import BertConfig, BertModel

    tokenizer, _ = minilm
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    return tokenizer, BertModel(cfg).eval()


def snp_text(n_genes: int, rng) -> str:
    return "\n".join(f"GENE{g}: " + " ".join(map(str, rng.integers(0, 3, 9))) for g in range(n_genes))


def test_mlp_shapes():
    assert SNPMLP(50)(torch.rand(3, 50) * 2).shape == (3, 4)


def test_minilm_ships_in_the_venv_and_loads_offline(minilm):
    tokenizer, model = minilm
    assert (default_text_model_path() / "model.safetensors").is_file()
    assert model.config.hidden_size == 384 and model.config.max_position_embeddings == 512
    ids, mask = tokenize_windows(tokenizer, ["APOE: 0 1 2"], max_length=16)
    enc = TextEncoder(model)
    tokens, tmask = enc(ids, mask)
    assert tokens.shape == (1, 16, 384) and tmask.sum() == mask.sum()


def test_long_text_is_cut_into_windows(tiny_bert):
    tokenizer, _ = tiny_bert
    rng = np.random.default_rng(0)
    texts = [snp_text(12, rng), snp_text(2, rng)]
    ids, mask = tokenize_windows(tokenizer, texts, max_length=32)
    body = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    n_win = -(-len(body) // 30)
    assert ids.shape == (2, n_win, 32) and n_win > 2
    pieces = []
    for c in range(n_win):
        w = ids[0, c][mask[0, c].bool()].tolist()
        assert w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id
        pieces += w[1:-1]
    assert pieces == body  # nothing lost, nothing repeated
    assert mask[1, 1:].sum() == 0  # the short text's extra windows are padding


def test_trimmed_windows_encode_as_the_padded_ones(minilm):
    """TextEncoder trims each group of windows to its own length: the real tokens' states do not change."""
    from rgenima_lib.models import baselines

    tokenizer, model = minilm
    rng = np.random.default_rng(2)
    # Three windows of 128 for the long text (the last one short), one short window for the other.
    ids, mask = tokenize_windows(tokenizer, [snp_text(60, rng), snp_text(3, rng)], max_length=128)
    assert ids.shape[1] >= 2 and mask[:, -1].sum() < 128
    tokens, tmask = TextEncoder(model)(ids, mask)
    b, c, length = ids.shape
    with torch.no_grad():  # the reference: every window at the full 128 positions
        ref = model(input_ids=ids.view(b * c, length), attention_mask=mask.view(b * c, length)).last_hidden_state
    ref = (ref * mask.view(b * c, length, 1)).view(b, c * length, -1)
    used = mask.view(b * c, length).any(1).view(b, c).repeat_interleave(length, dim=1)
    torch.testing.assert_close(tokens[used], ref[used], rtol=1e-4, atol=1e-5)
    assert baselines.TRIM_STEP < 128  # otherwise nothing was trimmed


def test_text_encoder_frozen_and_windows_laid_end_to_end(tiny_bert):
    tokenizer, bert = tiny_bert
    rng = np.random.default_rng(1)
    ids, mask = tokenize_windows(tokenizer, [snp_text(8, rng), snp_text(1, rng)], max_length=24)
    enc = TextEncoder(bert, trainable=False).train()
    assert not enc.backbone.training and not any(p.requires_grad for p in enc.parameters())
    tokens, tmask = enc(ids, mask)
    c = ids.shape[1]
    assert tokens.shape == (2, c * 24, 32) and tmask.shape == (2, c * 24)
    assert torch.all(tokens[1][~tmask[1]] == 0)
    # Window 1 of text 0 equals encoding that window alone.
    alone = bert(input_ids=ids[0, 1:2], attention_mask=mask[0, 1:2]).last_hidden_state[0]
    torch.testing.assert_close(tokens[0, 24:48], alone)


def fusion_inputs(b=4, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(b, 7, 12, generator=g)
    tmask = torch.ones(b, 7, dtype=torch.bool)
    tmask[0, 5:] = False
    image = torch.randn(b, t, 10, generator=g)
    presence = torch.ones(b, t, dtype=torch.bool)
    presence[1 % b, 2] = False
    presence[b - 1] = False  # no image at all (mixture configuration)
    return dict(text_tokens=text, text_mask=tmask, image_tokens=image, image_presence=presence)


@pytest.mark.parametrize("fusion", ["concat", "cross"])
def test_fusion_shapes_and_masking(fusion):
    torch.manual_seed(0)
    model = GeneImageClassifier(12, 10, fusion, hidden=16, heads=2).eval()
    x = fusion_inputs()
    out = model(**x)
    assert out.shape == (4, 4) and torch.isfinite(out).all()
    y = {k: v.clone() for k, v in x.items()}
    y["image_tokens"][1, 2] = 100.0  # a missing ROI token
    y["image_tokens"][3] = -50.0  # a subject without image
    y["text_tokens"][0, 6] = 9.0  # a padded text position
    torch.testing.assert_close(model(**y), out, rtol=0, atol=1e-5)
    z = {k: v.clone() for k, v in x.items()}
    z["image_tokens"][0, 0] += torch.randn(10)  # a present image token matters
    assert not torch.allclose(model(**z)[0], out[0])


def test_cross_attention_queries_text_and_attends_only_to_present_image_tokens():
    torch.manual_seed(1)
    cma = CrossModalAttention(8, heads=2).eval()
    text, image = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    presence = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    out, attn = cma(text, image, presence, return_attention=True)
    assert out.shape == (2, 3, 8) and attn.shape == (2, 3, 4)  # one row per gene/text token (queries)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3))
    assert torch.all(attn[0, :, 1] == 0)


def test_build_every_baseline():
    for model_id in MODEL_IDS:
        model = build_baseline(model_id, n_snps=20, text_dim=12, image_dim=10, hidden=16, heads=2)
        x = {"dosage": torch.rand(2, 20) * 2} if model_id == "mlp" else fusion_inputs(2)
        if model_image_encoder(model_id) is None:
            x.pop("image_tokens", None)
            x.pop("image_presence", None)
        assert model(**x).shape == (2, 4)
    assert model_image_encoder("bert_rit_cross") == "rit" and model_image_encoder("bert_med3d_concat") == "med3d"
    with pytest.raises(ValueError):
        build_baseline("svm")


def test_bert_classifier_end_to_end_with_token_ids(tiny_bert):
    tokenizer, bert = tiny_bert
    model = build_baseline("bert", text_dim=32, text_encoder=TextEncoder(bert), hidden=16)
    ids, mask = tokenize_windows(tokenizer, ["APOE: 0 1", "CLU: 2 2 1 0"], max_length=16)
    assert model(input_ids=ids, attention_mask=mask).shape == (2, 4)


def test_cross_fusion_learns_a_signal_carried_only_by_image_tokens():
    """Label = which of 4 image tokens is 'atrophied'; the text is noise, so only eq. 3's path can learn it.

    Each token position has a fixed identity vector, as RiT tokens carry their ROI-position embedding.
    """
    rng = np.random.default_rng(0)
    n, t = 320, 4
    y = rng.integers(0, 4, n)
    identity = rng.normal(0, 1, (t, 8))
    image = (identity + 0.3 * rng.normal(0, 1, (n, t, 8))).astype(np.float32)
    image[np.arange(n), y, 0] += 3.0
    text = rng.normal(0, 1, (n, 6, 12)).astype(np.float32)
    data = dict(text_tokens=torch.tensor(text), text_mask=torch.ones(n, 6, dtype=torch.bool),
                image_tokens=torch.tensor(image), image_presence=torch.ones(n, t, dtype=torch.bool))
    seed_everything(0)
    model = GeneImageClassifier(12, 8, "cross", hidden=32, heads=2, dropout=0.0)
    train = TensorDataset(**{k: v[:240] for k, v in data.items()}, label=torch.tensor(y[:240]))
    fit_classifier(model, train, None, FitConfig(epochs=15, batch_size=16, lr=3e-3, seed=0))
    prob = predict_proba(model, TensorDataset(**{k: v[240:] for k, v in data.items()}))
    assert np.mean(prob.argmax(1) == y[240:]) > 0.8  # chance 0.25; 0.94-0.95 over seeds 0-2


def test_gene_tokens_pool_each_gene_block_in_canonical_order(minilm):
    from rgenima_lib.genetics.serialize import GenomeText
    from rgenima_lib.models.baselines import pool_gene_tokens, tokenize_genomes

    tokenizer, _ = minilm
    genes = ["APOE", "BIN1", "CLU"]
    # Permuted block order (CLU first), as a gene-order-augmented sample.
    text = "CLU: 0 1\nAPOE: 2 2 1\nBIN1: 0"
    spans = [("CLU", 0, 8), ("APOE", 9, 20), ("BIN1", 21, 28)]
    ids, mask, gene_index = tokenize_genomes(tokenizer, [GenomeText(text, spans)], genes, max_length=8)
    tags = gene_index[mask.bool()].tolist()
    flat_ids = ids[mask.bool()].tolist()
    for g, gene in enumerate(genes):
        words = tokenizer.decode([i for i, t in zip(flat_ids, tags) if t == g]).replace(" ", "")
        block = text[spans[[s[0] for s in spans].index(gene)][1]:spans[[s[0] for s in spans].index(gene)][2]]
        assert words == block.lower().replace(" ", "")
    assert all(t == -1 for i, t in zip(flat_ids, tags) if i in (tokenizer.cls_token_id, tokenizer.sep_token_id))
    states = torch.randn(1, ids.shape[1] * 8, 5)
    pooled, present = pool_gene_tokens(states, gene_index.view(1, -1), 4)
    assert present.tolist() == [[True, True, True, False]]
    sel = gene_index.view(-1) == 1
    torch.testing.assert_close(pooled[0, 1], states[0, sel].mean(0))
    assert torch.all(pooled[0, 3] == 0)


# --- training one baseline on a fold (train.baseline) -------------------------------------------------------

BASELINE_SETTINGS = {"model": {"hidden": 16, "heads": 2, "dropout": 0.1, "mlp_hidden": [32]},
                     "train": {"epochs": 40, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.0, "patience": 40,
                               "balance": "loss", "monitor": "loss", "grad_clip": 1.0, "warmup_epochs": 1,
                               "eval_batch_size": 32},
                     "val_fraction": 0.2, "max_copies": 1}


def _fold_samples(n_train=48, n_test=16, copies=3, seed=0):
    """A fold's sample table: ``copies`` gene orders per training subject, one per test subject."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_train + n_test):
        side = "train" if i < n_train else "test"
        y = int(rng.integers(4))
        for copy in range(copies if side == "train" else 1):
            rows.append({"subject": f"{i:03d}_S_{i:04d}", "stage": STAGES[y], "label": y, "copy": copy,
                         "perm_seed": -1 if copy == 0 else 100 * copy + i, "with_image": True, "side": side})
    return pd.DataFrame(rows)


def test_baseline_settings_name_a_missing_or_unknown_key():
    from rgenima_lib.train.baseline import BaselineSettings

    settings = BaselineSettings.from_dict(BASELINE_SETTINGS)
    assert settings.fit_config(7).seed == 7 and settings.fit_config(7).epochs == 40
    with pytest.raises(ValueError, match=r"baselines: missing setting\(s\) val_fraction"):
        BaselineSettings.from_dict({k: v for k, v in BASELINE_SETTINGS.items() if k != "val_fraction"})
    with pytest.raises(ValueError, match=r"baselines: unknown setting\(s\) max_copy\b"):
        BaselineSettings.from_dict({**BASELINE_SETTINGS, "max_copy": 0})
    train = {k: v for k, v in BASELINE_SETTINGS["train"].items() if k != "patience"}
    with pytest.raises(ValueError, match=r"baselines.train: missing setting\(s\) patience"):
        BaselineSettings.from_dict({**BASELINE_SETTINGS, "train": train}).fit_config(0)


def test_train_baseline_mlp_learns_a_planted_snp_and_repeats_exactly():
    from rgenima_lib.train.baseline import BaselineInputs, BaselineSettings, train_baseline

    samples = _fold_samples()
    subjects = samples["subject"].drop_duplicates().tolist()
    label = samples.drop_duplicates("subject").set_index("subject")["label"]
    rng = np.random.default_rng(1)
    dosage = rng.integers(0, 2, (len(subjects), 20)).astype(np.float32)
    dosage[:, :4] = 0.0
    dosage[np.arange(len(subjects)), label[subjects].to_numpy()] = 2.0  # planted: SNP y carries stage y
    inputs = BaselineInputs(dosage=(subjects, dosage), dosage_path="fold0.npz")
    settings = BaselineSettings.from_dict(BASELINE_SETTINGS)
    run = train_baseline("mlp", samples, inputs, settings, seed=3, threads=2)
    test = samples[samples["side"] == "test"]
    assert run.subjects == test["subject"].tolist() and run.probabilities.shape == (16, 4)
    assert (run.probabilities.argmax(1) == test["label"].to_numpy()).mean() >= 0.75  # chance: 0.25
    # One row per subject for the MLP (gene-order copies would only reweight): 48 subjects, some held out.
    assert run.info["dims"] == {"n_snps": 20} and run.info["train"]["seed"] == 3
    again = train_baseline("mlp", samples, inputs, settings, seed=3, threads=2)
    assert np.array_equal(run.probabilities, again.probabilities)
    # A test subject without a genotype row names the file and the subject.
    from rgenima_lib.errors import InputDataError

    short = BaselineInputs(dosage=(subjects[:-1], dosage[:-1]), dosage_path="fold0.npz")
    with pytest.raises(InputDataError, match=f"fold0.npz: subject {subjects[-1]}: subject has no genotype row"):
        train_baseline("mlp", samples, short, settings, seed=3)


def test_train_baseline_fusion_reads_text_rows_up_to_max_copies_and_image_tokens():
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.train.baseline import (BaselineInputs, BaselineSettings, baseline_tensors, text_key, text_rows,
                                            train_baseline)

    samples = _fold_samples(n_train=24, n_test=8)
    rows = text_rows(samples, max_copies=1)
    assert set(rows.loc[rows["side"] == "train", "copy"]) == {0, 1} and len(rows[rows["side"] == "test"]) == 8
    assert len(text_rows(samples, max_copies=-1)) == len(samples)
    rng = np.random.default_rng(2)
    keys = [text_key(s, p) for s, p in zip(samples["subject"], samples["perm_seed"])]
    tokens = rng.normal(size=(len(keys), 5, 8)).astype(np.float16)
    subjects = samples["subject"].drop_duplicates().tolist()
    inputs = BaselineInputs(text_tokens=(keys, tokens, np.ones((len(keys), 5), np.uint8)),
                            image_tokens=(subjects, rng.normal(size=(len(subjects), 3, 6)).astype(np.float16),
                                          np.ones((len(subjects), 3), np.uint8)),
                            text_tokens_path="gene_tokens.safetensors")
    data = baseline_tensors("bert_rit_cross", rows, inputs)
    assert data["text_tokens"].shape == (len(rows), 5, 8) and data["image_tokens"].shape == (len(rows), 3, 6)
    settings = BaselineSettings.from_dict({**BASELINE_SETTINGS, "train": {**BASELINE_SETTINGS["train"], "epochs": 2}})
    run = train_baseline("bert_rit_cross", samples, inputs, settings, seed=0)
    assert run.info["dims"] == {"text_dim": 8, "image_dim": 6} and run.probabilities.shape == (8, 4)
    # A text the cache lacks (gene_tokens ran with other samples or max_copies) names the cache and the rule.
    lost = BaselineInputs(text_tokens=(keys[1:], tokens[1:], np.ones((len(keys) - 1, 5), np.uint8)),
                          text_tokens_path="gene_tokens.safetensors")
    with pytest.raises(InputDataError, match="gene_tokens.safetensors: 1 sample text.*rerun gene_tokens"):
        train_baseline("bert", samples, lost, settings, seed=0)


def test_gene_token_cache_one_row_per_distinct_text_in_subject_order(tiny_bert):
    import pandas as pd

    from rgenima_lib.genetics.serialize import GenomeLayout, GenomeTexts
    from rgenima_lib.models.baselines import pool_gene_tokens, tokenize_genomes
    from rgenima_lib.train.baseline import gene_token_cache, text_key

    tokenizer, bert = tiny_bert
    snps = pd.DataFrame({"snp": [f"rs{i}" for i in range(6)], "gene": ["APOE"] * 2 + ["BIN1"] * 2 + ["CLU"] * 2,
                         "block": [0, 0, 1, 1, 2, 2], "a1": "A", "a2": "G"})
    texts = GenomeTexts(np.random.default_rng(0).integers(0, 3, (2, 6)).astype(np.float32), ["b", "a"],
                        GenomeLayout.from_snps(snps))
    table = pd.DataFrame({"subject": ["b", "a", "a", "b"], "perm_seed": [-1, -1, 5, 7], "copy": [0, 0, 1, 2],
                          "side": ["test", "train", "train", "train"]})
    # Two data configurations share texts: each distinct (subject, gene order) is encoded once.
    keys, tokens, presence = gene_token_cache([table, table], texts, tokenizer, bert, max_copies=1, max_length=32,
                                              batch_size=2)
    assert keys == ["a|-1", "a|5", "b|-1"] and tokens.dtype == np.float16 and tokens.shape == (3, 3, 32)
    assert presence.all()
    ids, mask, gene_index = tokenize_genomes(tokenizer, [texts("a", 5)], list(texts.layout.genes), 32)
    with torch.no_grad():
        states, _ = TextEncoder(bert)(ids, mask)
    pooled, _ = pool_gene_tokens(states, gene_index.view(1, -1), 3)
    np.testing.assert_allclose(tokens[keys.index(text_key("a", 5))], pooled[0].half().numpy(), atol=1e-3)
