"""Prediction (paper 4.2.3 eq. 12 + answer scoring): cached scoring vs brute force, greedy decoding, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
from rgenima_lib.models.prompting import PromptCollator, PromptSample, answer_text
from rgenima_lib.train.predict import (PREDICTION_COLUMNS, escape_text, greedy_generate, predict, prediction_summary,
                                       score_answers)
from rgenima_lib.vocabulary import STAGES

D_VIS = 8


@pytest.fixture(scope="module")
def base(demo_llm):
    return demo_llm(seed=1)


@pytest.fixture(scope="module")
def model(base):
    torch.manual_seed(0)
    m = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS)).eval()
    with torch.no_grad():  # sharpen the random model so that answers differ clearly
        m.causal_lm.lm_head.weight.mul_(4.0)
    return m


def _samples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        genome = "\n".join(f"G{g}: " + " ".join(map(str, rng.integers(0, 3, 4))) for g in range(i + 1))
        vis = rng.normal(size=(3, D_VIS)).astype(np.float32) if i != 1 else None
        out.append(PromptSample(f"s{i}", genome, STAGES[i % 4], vis, None if vis is None else np.array([1, 0, 1])))
    return out


def _brute_force_loglik(model, sample, stage):
    """Log-likelihood of one answer from a full forward over prompt + answer (no cache, no batch)."""
    tok = model.tokenizer
    answer = tok(answer_text(stage), add_special_tokens=False)["input_ids"]
    batch = PromptCollator(tok, with_labels=False)([sample])
    n = len(answer)
    ids = torch.cat([batch["input_ids"], torch.tensor([answer])], 1)
    mask = torch.cat([batch["attention_mask"], torch.ones(1, n, dtype=torch.long)], 1)
    full = {"input_ids": ids, "attention_mask": mask,
            "position_ids": torch.arange(ids.shape[1]).unsqueeze(0), "visual_tokens": batch.get("visual_tokens")}
    with torch.no_grad():
        logp = torch.log_softmax(model(**full).logits[0].double(), -1)
    T = ids.shape[1]
    return sum(logp[T - n - 1 + j, answer[j]] for j in range(n)).item()


def test_scoring_sums_to_one_and_matches_brute_force(model):
    samples = _samples(3)
    probs = score_answers(model, PromptCollator(model.tokenizer, with_labels=False)(samples))
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
    for i, s in enumerate(samples):
        ll = np.array([_brute_force_loglik(model, s, st) for st in STAGES])
        expected = np.exp(ll - ll.max()) / np.exp(ll - ll.max()).sum()
        np.testing.assert_allclose(probs[i], expected, atol=1e-4)
    assert probs.std() > 1e-3, "degenerate test: all answers equally likely"


def test_greedy_generation_matches_uncached_argmax(model):
    from rgenima_lib.train.predict import _prefix_forward

    samples = _samples(3)
    batch = PromptCollator(model.tokenizer, with_labels=False)(samples)
    with torch.no_grad():
        gen = greedy_generate(model, *_prefix_forward(model, batch), max_new_tokens=5)
        for i, s in enumerate(samples):
            one = PromptCollator(model.tokenizer, with_labels=False)([s])
            ids, expect = one["input_ids"], []
            for _ in range(5):
                n = ids.shape[1]
                grown = torch.ones(1, n - one["input_ids"].shape[1], dtype=torch.long)
                out = model(input_ids=ids, attention_mask=torch.cat([one["attention_mask"], grown], 1),
                            position_ids=torch.arange(n).unsqueeze(0), visual_tokens=one.get("visual_tokens"))
                nxt = int(out.logits[0, -1].argmax())
                if nxt in (model.tokenizer.eos_token_id,):
                    break
                expect.append(nxt)
                ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
            assert gen[i] == expect
    assert sum(len(g) for g in gen) > 3, "degenerate test: nothing generated"


def test_prediction_table_and_unparseable_count(model):
    samples = _samples(4)
    samples[3].stage = None
    table = predict(model, samples, batch_size=3, max_new_tokens=4)
    assert list(table.columns) == PREDICTION_COLUMNS
    assert table["subject"].tolist() == ["s0", "s1", "s2", "s3"] and table["stage"].iloc[3] == ""
    np.testing.assert_allclose(table[[f"prob_{s}" for s in STAGES]].sum(axis=1), 1.0, atol=1e-9)
    # An untrained model does not write "This subject is X." in 4 tokens: every generation is unparseable.
    assert (table["generated_label"] == "").all()
    summary = prediction_summary(table)
    assert summary["n"] == 3 and summary["n_unparseable"] == 4 and summary["generation_accuracy"] == 0.0


def test_escape_text_keeps_tsv_rows_intact(tmp_path):
    from rgenima_lib.io import read_tsv, write_tsv

    text = "a\tb\nc # d\\"
    write_tsv(pd.DataFrame({"generated_text": [escape_text(text)], "x": [1]}), tmp_path / "p.tsv")
    back = read_tsv(tmp_path / "p.tsv", keep_default_na=False)
    assert back.shape == (1, 2) and back["generated_text"].iloc[0] == "a\\tb\\nc \\x23 d\\\\"


def _write_dataset(root, n_subjects=8):
    """A minimal fold in the data stage's formats: samples.tsv, imputed genotypes, snps.tsv, token cache."""
    from rgenima_lib.genetics.genotype_matrix import save_genotypes
    from rgenima_lib.models.embedding_cache import save_embeddings

    rng = np.random.default_rng(0)
    subjects = [f"{i:03d}_S_{i:04d}" for i in range(n_subjects)]
    snps = pd.DataFrame({"snp": [f"rs{i}" for i in range(6)], "chrom": "19", "pos": np.arange(6) * 100,
                         "a1": "A", "a2": "G", "gene": ["APOE"] * 3 + ["BIN1"] * 3, "block": [0] * 3 + [1] * 3})
    snps.to_csv(root / "snps.tsv", sep="\t", index=False)
    save_genotypes(root / "fold0.npz", rng.integers(0, 3, (n_subjects, 6)).astype(np.float32), subjects, snps["snp"])
    save_embeddings(root / "tokens.safetensors", subjects, rng.normal(size=(n_subjects, 3, D_VIS)),
                    np.ones((n_subjects, 3), np.uint8))
    rows = []
    for i, s in enumerate(subjects):
        side = "test" if i >= 6 else "train"
        for copy in range(2 if side == "train" else 1):
            rows.append({"sample": f"{s}/paired/{copy}", "subject": s, "stage": STAGES[i % 4], "label": i % 4,
                         "view": "paired", "copy": copy, "perm_seed": -1 if copy == 0 else 1000 + i,
                         "with_image": i % 3 != 0, "side": side})
    pd.DataFrame(rows).to_csv(root / "samples.tsv", sep="\t", index=False)
    return root


def test_cli_build_finetune_predict(tmp_path):
    from rgenima_lib.cli import main
    from rgenima_lib.io import read_tsv

    data = _write_dataset(tmp_path)
    demo = tmp_path / "demo_llm"
    assert main(["build-demo-llm", "--output", str(demo), "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--kv-heads", "1", "--intermediate-size", "64", "--gene-panel", "config/gene_panel.tsv"]) == 0
    common = ["--samples", str(data / "samples.tsv"), "--imputed", str(data / "fold0.npz"),
              "--snps", str(data / "snps.tsv"), "--embeddings", str(data / "tokens.safetensors")]
    ckpt = tmp_path / "ckpt"
    assert main(["finetune", "--base", str(demo), *common, "--settings",
                 json.dumps({"lr": 1e-3, "epochs": 1, "batch_size_per_gpu": 4, "bf16": True, "grad_accum": 1,
                             "weight_decay": 0.0, "max_grad_norm": 1.0, "log_every": 10, "max_steps": None,
                             "gradient_checkpointing": False}),
                 "--seed", "0", "--output", str(ckpt), "--history", str(tmp_path / "h.tsv"),
                 "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["steps"] == 3 and summary["samples"] == 12 and summary["precision"] == "fp32"
    assert (ckpt / "rgenima.json").is_file()
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--checkpoint", str(ckpt), *common, "--output", str(out),
                 "--summary", str(tmp_path / "p.json")]) == 0
    table = read_tsv(out, keep_default_na=False, dtype={"subject": str})
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 2
    # The fold's test subjects (6 and 7), with their stages; answer probabilities that sum to one, and the
    # predicted stage the most probable one.
    assert table["subject"].tolist() == ["006_S_0006", "007_S_0007"] and table["stage"].tolist() == ["MCI", "AD"]
    probs = table[[f"prob_{s}" for s in STAGES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert table["predicted"].tolist() == [STAGES[i] for i in probs.argmax(axis=1)]
    p = json.loads((tmp_path / "p.json").read_text())
    assert p["demo"] is True and p["note"] == "demo model, random init"
    # The checkpoint says it sees images: predicting without --embeddings is refused with exit status 2.
    assert main(["predict", "--checkpoint", str(ckpt), *common[:6], "--output", str(tmp_path / "x.tsv")]) == 2


def test_one_prompt_loader_for_finetune_predict_and_attribution(tmp_path):
    from rgenima_lib.data.prompt_samples import load_attribution_prompts, load_fold_prompts, load_prompt_samples
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.genetics.augment import STREAMS, permutation_seed

    data = _write_dataset(tmp_path)
    files = (data / "samples.tsv", data / "fold0.npz", data / "snps.tsv")
    train = load_fold_prompts(files[0], "train", *files[1:], data / "tokens.safetensors")
    assert len(train.samples) == 12 and [g.text for g in train.genomes] == [s.genome_text for s in train.samples]
    # Row 2 is subject 0's second gene order (perm_seed 1000); subject 0 (i % 3 == 0) has no image; the SNP-only
    # model sees none.
    assert train.genomes[1] == train.texts("000_S_0000", 1000) and train.genomes[0] == train.texts("000_S_0000", -1)
    assert train.samples[0].visual is None and train.samples[2].visual.shape == (3, D_VIS)
    assert all(s.visual is None for s in load_prompt_samples(files[0], "train", *files[1:]))
    assert [s.subject for s in load_prompt_samples(*files[:1], "test", *files[1:], limit=1)] == ["006_S_0006"]
    # Attribution: test samples with an image only, each with its spans and its seeded extra gene orders.
    prompts = load_attribution_prompts(*files, data / "tokens.safetensors", gene_orders=2, seed=4)
    assert [s.subject for s in prompts.samples] == ["007_S_0007"]  # 006 (i % 3 == 0) has no image
    assert [g for g, _, _ in prompts.spans[0]] == ["APOE", "BIN1"]
    # The attribution's own seed stream (7, as the dumps were made): apart from the data sets' copies.
    assert STREAMS["attribution"] == 7 and STREAMS["attribution"] not in (STREAMS["paired"], STREAMS["gene_only"])
    expected = [train.texts("007_S_0007", permutation_seed(4, "007_S_0007", k, stream=7)) for k in (1, 2)]
    assert prompts.extra_orders == [expected]
    assert load_attribution_prompts(*files, data / "tokens.safetensors").extra_orders == [[]]
    with pytest.raises(InputDataError, match="no test sample with an image"):
        load_attribution_prompts(*files, data / "tokens.safetensors", limit=1)
