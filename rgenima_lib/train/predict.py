"""Prediction with the fine-tuned MLLM: answer scoring and strict greedy generation (paper 4.2.3, eq. 12).

Two outputs per test subject, both reported (docs/design.md, "Prediction"):

- **Scoring** (our addition): the log-likelihood of each of the four answers
  "This subject is <label>." given the prompt, summed over the answer's tokens,
  then a softmax over the four: class probabilities for AUC and calibration.
  The prompt prefix is run ONCE with a KV cache; each answer is then a short
  continuation of that cache (cropped back after each), so scoring costs one
  prompt forward plus 4 x ~6 tokens.
- **Generation** (the paper's protocol, eq. 12): greedy decoding from the same
  cache until the end-of-turn token, parsed strictly by
  :func:`rgenima_lib.models.prompting.parse_answer`; an unparseable text is a
  wrong prediction and is counted.

``predicted`` in the table is the scoring argmax; ``generated_label`` the
parsed generation ('' when unparseable).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rgenima_lib.models.attention import PREDICTION_ATTENTION, attention_implementation
from rgenima_lib.models.prompting import PromptCollator, PromptSample, answer_text, end_of_turn_ids, parse_answer
from rgenima_lib.vocabulary import STAGES

PREDICTION_COLUMNS = ["subject", "stage", "predicted", *[f"prob_{s}" for s in STAGES],
                      "generated_text", "generated_label"]


def _prefix_forward(model, batch: dict):
    """Run the prompts; return (last-position logits float[B, V], cache, attention mask, next position ids)."""
    out = model(**batch, use_cache=True, logits_to_keep=1)
    next_pos = batch["position_ids"][:, -1:] + 1  # left padding: every prompt ends in the last column
    return out.logits[:, -1].float(), out.cache, batch["attention_mask"], next_pos


def _continuation_logprob(model, last_logits, cache, attn, next_pos, answer_ids: list[int]) -> torch.Tensor:
    """Summed log-probability of ``answer_ids`` after each cached prompt; the cache is restored after.

    Returns
    -------
    float32[B]
    """
    bsz = last_logits.shape[0]
    ids = torch.tensor(answer_ids, dtype=torch.long, device=attn.device).expand(bsz, -1)
    n = ids.shape[1]
    out = model(input_ids=ids, attention_mask=torch.cat([attn, torch.ones_like(ids)], dim=1),
                position_ids=next_pos + torch.arange(n, device=attn.device), cache=cache, use_cache=True)
    logits = torch.cat([last_logits.unsqueeze(1), out.logits[:, :-1].float()], dim=1)  # [B, n, V]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    cache.crop(-n)
    return logp.sum(dim=1)


def score_answers(model, batch: dict) -> np.ndarray:
    """Class probabilities from the four answers' log-likelihoods.

    Parameters
    ----------
    model : RGenIMA
        Any attention implementation; scoring runs :data:`PREDICTION_ATTENTION` (SDPA).
    batch : dict
        From ``PromptCollator(tokenizer, with_labels=False)``.

    Returns
    -------
    float64[B, 4]
        Rows sum to 1, columns in :data:`STAGES` order.
    """
    device = next(model.parameters()).device
    with torch.no_grad(), attention_implementation(model, PREDICTION_ATTENTION):
        last, cache, attn, pos = _prefix_forward(model, {k: v.to(device) for k, v in batch.items()})
        ll = _answer_loglik(model, last, cache, attn, pos)
    return torch.softmax(ll.double(), dim=1).cpu().numpy()


def _answer_loglik(model, last, cache, attn, pos) -> torch.Tensor:
    tok = model.tokenizer
    return torch.stack([_continuation_logprob(model, last, cache, attn, pos,
                                              tok(answer_text(s), add_special_tokens=False)["input_ids"])
                        for s in STAGES], dim=1)


def greedy_generate(model, last_logits, cache, attn, next_pos, max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding (paper eq. 12) from a cached prompt, stopping at end-of-turn / eos.

    A hand-written loop rather than ``generate``: the prompt holds spliced
    embeddings and explicit position ids (absent ROIs keep theirs), which
    ``generate`` would recompute from the mask.

    Returns
    -------
    list of list of int
        Generated ids per sample, the stop token excluded.
    """
    tok = model.tokenizer
    stop = set(end_of_turn_ids(tok)) | {tok.eos_token_id}
    bsz = last_logits.shape[0]
    generated = [[] for _ in range(bsz)]
    done = torch.zeros(bsz, dtype=torch.bool)
    attn = attn.clone()
    logits = last_logits
    for _ in range(max_new_tokens):
        nxt = logits.argmax(dim=-1)
        for i in range(bsz):
            if not done[i]:
                if int(nxt[i]) in stop:
                    done[i] = True
                else:
                    generated[i].append(int(nxt[i]))
        if done.all():
            break
        attn = torch.cat([attn, torch.ones(bsz, 1, dtype=attn.dtype, device=attn.device)], dim=1)
        out = model(input_ids=nxt.unsqueeze(1), attention_mask=attn, position_ids=next_pos, cache=cache,
                    use_cache=True)
        next_pos = next_pos + 1
        logits = out.logits[:, -1].float()
    return generated


def predict(model, samples: Sequence[PromptSample], batch_size: int = 8, generate: bool = True,
            max_new_tokens: int = 16) -> pd.DataFrame:
    """Score and (optionally) generate for every sample.

    Parameters
    ----------
    model : RGenIMA
        In eval mode; scoring and generation run :data:`PREDICTION_ATTENTION` (SDPA).
    samples : sequence of PromptSample
        ``stage`` may be None (written as '').
    batch_size : int
    generate : bool
        Also run the paper's greedy generation.
    max_new_tokens : int
        Generation budget; the answer is ~6 tokens, a longer text is wrong anyway.

    Returns
    -------
    DataFrame
        :data:`PREDICTION_COLUMNS`, one row per sample, in input order.
    """
    model.eval()
    device = next(model.parameters()).device
    collate = PromptCollator(model.tokenizer, with_labels=False)
    rows = []
    for start in tqdm(range(0, len(samples), batch_size), desc="predict", unit="batch",
                      disable=None, leave=False):
        chunk = samples[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        with torch.no_grad(), attention_implementation(model, PREDICTION_ATTENTION):
            last, cache, attn, pos = _prefix_forward(model, batch)
            probs = torch.softmax(_answer_loglik(model, last, cache, attn, pos).double(), dim=1).cpu().numpy()
            gen = greedy_generate(model, last, cache, attn, pos, max_new_tokens) if generate else [[]] * len(chunk)
        for s, p, g in zip(chunk, probs, gen):
            text = model.tokenizer.decode(g, skip_special_tokens=True) if generate else ""
            rows.append({"subject": s.subject, "stage": s.stage or "", "predicted": STAGES[int(np.argmax(p))],
                         **{f"prob_{c}": float(v) for c, v in zip(STAGES, p)},
                         "generated_text": text, "generated_label": parse_answer(text) if generate else ""})
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def prediction_summary(table: pd.DataFrame) -> dict:
    """Accuracy of both protocols and the count of unparseable generations."""
    labelled = table[table["stage"] != ""]
    n = len(labelled)
    return {"n": n,
            "scoring_accuracy": float((labelled["predicted"] == labelled["stage"]).mean()) if n else None,
            "generation_accuracy": float((labelled["generated_label"] == labelled["stage"]).mean()) if n else None,
            "n_unparseable": int((table["generated_label"] == "").sum())}


def escape_text(text: str) -> str:
    r"""``generated_text`` made safe for a TSV read with ``comment='#'``.

    Backslash escapes: ``\\`` for a backslash, ``\t``, ``\r``, ``\n``, and ``\x23`` for '#'.
    """
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
            .replace("#", "\\x23"))
