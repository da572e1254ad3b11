"""The R-GenIMA prompt (paper 4.2.2): template, anchor splicing, label mask, strict parser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rgenima_lib.models.prompting import (IGNORE_INDEX, IMAGE_TOKEN, NO_IMAGE_TEXT, SYSTEM_PROMPT, PromptCollator,
                                          PromptSample, answer_text, encode_prompt, end_of_turn_ids, parse_answer,
                                          prompt_text)
from rgenima_lib.vocabulary import STAGES

PAPER_PROMPT_PARTS = [
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers.",
    "Genome Information: APOE: 0 1 2\nBIN1: 1 1 0 Brain Image: <image>. Your task is to classify the disease of "
    "the subject based on their Brain Image and Genome Information. Choose one of the following labels: "
    "[NC, SMC, MCI, AD].",
]
GENOME = "APOE: 0 1 2\nBIN1: 1 1 0"


@pytest.fixture(scope="module")
def model(demo_llm):
    from rgenima_lib.models.mllm import MLLMConfig, RGenIMA

    torch.manual_seed(0)
    return RGenIMA.from_base(demo_llm(), MLLMConfig(visual_dim=8)).eval()


def test_prompt_is_the_papers_text_through_the_chat_template(model):
    text = prompt_text(model.tokenizer, GENOME, True)
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>")
    for part in PAPER_PROMPT_PARTS:
        assert part in text
    assert text.endswith("<|im_start|>assistant\n")
    no_image = prompt_text(model.tokenizer, GENOME, False)
    assert IMAGE_TOKEN not in no_image and f"Brain Image: {NO_IMAGE_TEXT}." in no_image


def test_one_anchor_token_and_labels_cover_only_the_answer(model):
    tok = model.tokenizer
    for stage in STAGES:
        enc = encode_prompt(tok, GENOME, True, stage, with_offsets=True)
        assert len(enc.offsets) == enc.n_prompt
        assert enc.input_ids.count(model.image_token_id) == 1
        assert enc.input_ids[enc.anchor_index] == model.image_token_id
        answer = tok(answer_text(stage), add_special_tokens=False)["input_ids"] + end_of_turn_ids(tok)
        labelled = [i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX]
        assert labelled == list(range(enc.n_prompt, enc.n_prompt + len(answer)))
        assert [enc.labels[i] for i in labelled] == answer
        assert tok.decode(answer) == f"This subject is {stage}.<|im_end|>"
        # The genome span points at the SNP text in the rendered prompt.
        text = prompt_text(tok, GENOME, True)
        s, e = enc.genome_char_span
        assert text[s:e] == GENOME
        # Tokens overlapping that span are exactly the SNP text's tokens (how attribution finds genes).
        inside = [t for t, (a, b) in zip(enc.input_ids, enc.offsets) if a < e and b > s]
        assert tok.decode(inside).strip() == GENOME


def test_anchor_in_snp_text_is_refused(model):
    with pytest.raises(ValueError, match="anchor"):
        encode_prompt(model.tokenizer, "APOE: 0 <image>", True, "NC")


def test_splice_positions_length_and_label_mask_in_a_padded_batch(model):
    rng = np.random.default_rng(1)
    n_vis = [5, 3, 0]
    samples = [PromptSample("a", GENOME, "NC", rng.normal(size=(5, 8)).astype(np.float32), np.array([1, 1, 0, 1, 1])),
               PromptSample("b", GENOME + "\nCLU: 2 2 2 0 1", "AD", rng.normal(size=(3, 8)).astype(np.float32)),
               PromptSample("c", GENOME, "MCI", None)]
    batch = PromptCollator(model.tokenizer)(samples)
    T = batch["input_ids"].shape[1]
    embeds = model.embed_inputs(batch["input_ids"], batch["visual_tokens"])
    text_embed = model.llm.get_input_embeddings()
    offset = 0
    for i, s in enumerate(samples):
        enc = encode_prompt(model.tokenizer, s.genome_text, s.visual is not None, s.stage)
        n_text = len(enc.input_ids)
        length = n_text - 1 + n_vis[i] if n_vis[i] else n_text
        pad = T - length
        assert batch["attention_mask"][i, :pad].sum() == 0
        assert (batch["input_ids"][i, :pad] == model.tokenizer.pad_token_id).all()
        assert batch["position_ids"][i, pad:].tolist() == list(range(length))  # absent ROIs keep their position
        ids = batch["input_ids"][i, pad:]
        if n_vis[i]:
            a = enc.anchor_index
            # Visual tokens sit exactly where the anchor was, in ROI order, then the text resumes.
            assert ids[:a].tolist() == enc.input_ids[:a]
            assert (ids[a:a + n_vis[i]] == model.image_token_id).all()
            assert ids[a + n_vis[i]:].tolist() == enc.input_ids[a + 1:]
            expected = model.connector(torch.from_numpy(s.visual))
            assert torch.allclose(embeds[i, pad + a:pad + a + n_vis[i]], expected)
            assert torch.allclose(embeds[i, pad + a + n_vis[i]:], text_embed(torch.tensor(enc.input_ids[a + 1:])))
            offset += n_vis[i]
        else:
            assert ids.tolist() == enc.input_ids
        # Labels: only the answer (+ end of turn) at the end of the row.
        labels = batch["labels"][i]
        n_answer = n_text - enc.n_prompt
        assert (labels[:T - n_answer] == IGNORE_INDEX).all()
        assert labels[T - n_answer:].tolist() == enc.input_ids[enc.n_prompt:]
    a = encode_prompt(model.tokenizer, GENOME, True, "NC").anchor_index
    pad0 = T - (len(encode_prompt(model.tokenizer, GENOME, True, "NC").input_ids) - 1 + 5)
    # Presence flag 0 (third ROI of sample a): excluded from attention, slot kept.
    assert batch["attention_mask"][0, pad0 + a:pad0 + a + 5].tolist() == [1, 1, 0, 1, 1]
    assert batch["visual_tokens"].shape == (8, 8)


def test_fallback_template_for_tokenizers_without_one(model):
    import copy

    tok = copy.deepcopy(model.tokenizer)
    tok.chat_template = None
    text = prompt_text(tok, GENOME, True)
    assert text.startswith(SYSTEM_PROMPT + " USER: Genome Information:") and text.endswith("ASSISTANT:")
    enc = encode_prompt(tok, GENOME, True, "SMC")
    labelled = [t for t in enc.labels if t != IGNORE_INDEX]
    assert tok.decode(labelled).strip() == "This subject is SMC." + tok.eos_token


@pytest.mark.parametrize("text,label", [("This subject is NC.", "NC"), ("This subject is SMC.", "SMC"),
                                        ("This subject is MCI.", "MCI"), (" This subject is AD.\n", "AD")])
def test_parser_accepts_the_exact_answer(text, label):
    assert parse_answer(text) == label


@pytest.mark.parametrize("text", ["This subject is nc.", "this subject is NC.", "This subject is NC",
                                  "This subject is NC. It is", "The subject is AD.", "This subject is  AD.",
                                  "This subject is MCI/AD.", "This subject is CN.", "This subject is EMCI.",
                                  "AD", "This subject is AD!", "This subject is AD..", "", "This subject is [AD]."])
def test_parser_rejects_near_misses(text):
    assert parse_answer(text) == ""
