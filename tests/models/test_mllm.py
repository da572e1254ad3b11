"""The multimodal LLM (paper 4.2.3): padding invariance, presence masking, eq. 11 loss, checkpoints, LoRA, demo LLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rgenima_lib.models.demo_llm import DEMO_NOTE, build_demo_llm, is_demo_model, model_note
from rgenima_lib.models.mllm import MLLMConfig, RGenIMA, answer_nll
from rgenima_lib.models.prompting import PromptCollator, PromptSample
from rgenima_lib.vocabulary import STAGES

D_VIS = 8


@pytest.fixture(scope="module")
def base(demo_llm):
    return demo_llm()


def _samples(n=4, seed=0, n_vis=4):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        genome = "\n".join(f"G{g}: " + " ".join(map(str, rng.integers(0, 3, rng.integers(2, 9)))) for g in range(i + 1))
        vis = rng.normal(size=(n_vis, D_VIS)).astype(np.float32) if i % 3 != 2 else None
        pres = None if vis is None else (rng.random(n_vis) > 0.25).astype(np.uint8)
        out.append(PromptSample(f"s{i}", genome, STAGES[i % 4], vis, pres))
    return out


def test_demo_llm_loads_like_real_weights_and_says_demo(base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llm = AutoModelForCausalLM.from_pretrained(str(base))
    tok = AutoTokenizer.from_pretrained(str(base))
    assert llm.config.model_type == "qwen2" and llm.config.rgenima_demo["note"] == DEMO_NOTE
    assert tok.chat_template and "<image>" in tok.get_vocab()
    assert is_demo_model(base) and model_note(base) == DEMO_NOTE
    assert not is_demo_model(tmp_path)  # an empty folder is not a demo model
    # Same seed -> byte-identical weights and tokenizer.
    again = build_demo_llm(tmp_path / "again", hidden_size=64, n_layers=2, intermediate_size=128, seed=0)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (base / name).read_bytes()


def test_llama_family_demo_runs(demo_llm):
    path = demo_llm(arch="llama", hidden_size=32, n_layers=1, n_heads=2, n_kv_heads=1, intermediate_size=64)
    model = RGenIMA.from_base(path, MLLMConfig(visual_dim=D_VIS, connector="mlp")).eval()
    assert model.causal_lm.config.model_type == "llama"
    batch = PromptCollator(model.tokenizer)(_samples(2))
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


@pytest.mark.parametrize("connector", ["linear", "mlp"])
def test_padding_invariance(base, connector):
    """A sample's logits are the same alone and in a left-padded batch (to 1e-4)."""
    torch.manual_seed(0)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS, connector=connector)).eval()
    samples = _samples(5)
    collate = PromptCollator(model.tokenizer)
    batch = collate(samples)
    assert len({int(m.sum()) for m in batch["attention_mask"]}) > 1, "the test needs unequal lengths"
    with torch.no_grad():
        together = model(**batch).logits
        for i, s in enumerate(samples):
            alone_batch = collate([s])
            alone = model(**alone_batch).logits[0]
            n = alone.shape[0]
            real = alone_batch["attention_mask"][0].bool()
            diff = (alone[real] - together[i, -n:][real]).abs().max().item()
            assert diff < 1e-4, f"sample {i}: {diff}"


def test_absent_roi_tokens_are_excluded_from_attention(base):
    torch.manual_seed(0)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS)).eval()
    s = _samples(1)[0]
    s.presence = np.array([1, 0, 1, 1], np.uint8)
    other = PromptSample(s.subject, s.genome_text, s.stage, s.visual.copy(), s.presence)
    other.visual[1] = 100.0  # garbage in the absent ROI
    collate = PromptCollator(model.tokenizer)
    b1, b2 = collate([s]), collate([other])
    with torch.no_grad():
        l1, l2 = model(**b1).logits[0], model(**b2).logits[0]
    keep = b1["attention_mask"][0].bool()
    assert torch.allclose(l1[keep], l2[keep], atol=1e-5)
    # ... whereas a present ROI does matter.
    other.visual[1] = s.visual[1]
    other.visual[0] = 100.0
    with torch.no_grad():
        assert not torch.allclose(model(**collate([other])).logits[0][keep], l1[keep], atol=1e-3)


def test_loss_is_paper_eq11(base):
    """Loss = mean over samples of the summed answer-token NLL."""
    torch.manual_seed(0)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS)).eval()
    batch = PromptCollator(model.tokenizer)(_samples(3))
    with torch.no_grad():
        out = model(**batch)
    logp = torch.log_softmax(out.logits.float(), -1)
    per_sample = []
    for i in range(3):
        idx = (batch["labels"][i] != -100).nonzero().flatten()
        per_sample.append(-sum(logp[i, t - 1, batch["labels"][i, t]] for t in idx))
    assert torch.allclose(out.loss, torch.stack(per_sample).mean(), rtol=1e-5)
    assert torch.allclose(answer_nll(out.logits, batch["labels"]), torch.stack(per_sample), rtol=1e-5)
    # Training computes logits for the answer tail only: same loss.
    with torch.no_grad():
        tail = model(**batch, loss_logits_only=True)
    assert tail.logits.shape[1] < out.logits.shape[1] // 4
    assert torch.allclose(tail.loss, out.loss, rtol=1e-5)


def test_checkpoint_round_trip(base, tmp_path):
    torch.manual_seed(0)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS, connector="mlp")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_checkpoint(tmp_path / "ckpt", extra={"note": "x"})
    loaded = RGenIMA.from_checkpoint(tmp_path / "ckpt").eval()
    batch = PromptCollator(model.tokenizer)(_samples(3))
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    meta = json.loads((tmp_path / "ckpt" / "rgenima.json").read_text())
    assert meta["demo"] is True and meta["config"]["connector"] == "mlp" and is_demo_model(tmp_path / "ckpt")


def test_lora_merges_into_a_plain_checkpoint(base, tmp_path):
    torch.manual_seed(0)
    model = RGenIMA.from_base(base, MLLMConfig(visual_dim=D_VIS, lora=True, lora_r=4, lora_alpha=8,
                                               lora_dropout=0.0)).eval()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("connector.") for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)  # lora_B starts at zero: make the adapters do something
    model.save_checkpoint(tmp_path / "ckpt")
    loaded = RGenIMA.from_checkpoint(tmp_path / "ckpt").eval()
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    batch = PromptCollator(model.tokenizer)(_samples(2))
    with torch.no_grad():
        assert (model(**batch).logits - loaded(**batch).logits).abs().max() < 1e-4


def test_demo_model_fits_a_planted_signal(base):
    """The stage is written in the visual tokens; a few steps of fine-tuning must pick it up."""
    from rgenima_lib.train.finetune import FinetuneConfig, finetune
    from rgenima_lib.train.predict import predict

    rng = np.random.default_rng(3)
    samples = []
    for i in range(16):
        k = i % 4
        vis = 0.3 * rng.normal(size=(2, D_VIS)).astype(np.float32)
        vis[:, k] += 3.0
        samples.append(PromptSample(f"s{i}", "APOE: " + " ".join(map(str, rng.integers(0, 3, 6))), STAGES[k], vis))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast and immune to other jobs on the cores
    try:
        res = finetune(base, samples, None, MLLMConfig(visual_dim=D_VIS),
                       FinetuneConfig(lr=5e-3, epochs=100, batch_size_per_gpu=16, grad_accum=1, max_steps=60, seed=0,
                                      bf16=False, gradient_checkpointing=False))
    finally:
        torch.set_num_threads(threads)
    losses = [h["loss"] for h in res.history]
    print("planted-signal losses:", [round(x, 2) for x in losses])
    assert np.mean(losses[-3:]) < 0.25 * np.mean(losses[:3])
    table = predict(res.module, samples, batch_size=16)
    assert (table["predicted"] == table["stage"]).mean() >= 0.75
    assert (table["generated_label"] == table["stage"]).mean() >= 0.75
