"""The demo LLM: a small, randomly initialised causal LM and tokenizer, built locally (docs/design.md, "No downloads").

Stands in for Qwen2.5-7B / Llama-3-8B (paper 4.2.3) in the synthetic demo and the
tests. It is saved with ``save_pretrained`` and loaded through exactly the
same ``from_pretrained(local_path)`` code as real weights; nothing is
downloaded. Its ``config.json`` carries ``"rgenima_demo": {"demo": true, ...}``
and a ``DEMO_MODEL.txt`` sits beside it, so every checkpoint fine-tuned from it
(which keeps the config) and every table made from those checkpoints can say
"demo model, random init" (:func:`is_demo_model`).

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the prompt
template, the four answers, the panel's gene symbols and genotype-like text,
with the pre-tokenizer of the architecture's real model, so that token counts
behave like the real ones on our SNP text: Qwen2's for ``qwen2`` (digits split
one by one), Llama-3's for ``llama`` (digits in groups of up to three; the
genotype-like text holds every group of three genotypes, so that each group is
one token as in Llama-3's vocabulary of all 1,000 three-digit numbers). It is cased and lossless (byte level), as
the strict answer parser needs; the MiniLM WordPiece vocabulary is uncased and
could not write "This subject is NC.". Special tokens are Qwen2's ChatML ones
plus the image anchor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from rgenima_lib.models.prompting import ANSWER_TEMPLATE, IMAGE_TOKEN, SYSTEM_PROMPT, USER_TEMPLATE
from rgenima_lib.vocabulary import STAGES

DEMO_NOTE = "demo model, random init"
"""The words every output made from a demo model carries."""

DEMO_MARKER_FILE = "DEMO_MODEL.txt"

# Qwen2's pre-tokenizer regex (from its tokenizer.json): digits one by one, letters in runs.
QWEN2_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                       r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Llama-3's (from its tokenizer.json): the same but for digits, in groups of one to three.
LLAMA3_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                        r"|\s*[\r\n]+|\s+(?!\S)|\s+")

SPLIT_PATTERNS = {"qwen2": QWEN2_SPLIT_PATTERN, "llama3": LLAMA3_SPLIT_PATTERN}
"""Pre-tokenizer regex by name."""

ARCH_PRE_TOKENIZER = {"qwen2": "qwen2", "llama": "llama3"}
"""The pre-tokenizer of each demo architecture's real counterpart (Qwen2.5, Llama-3)."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Qwen2's ChatML template (without its default-system-prompt branch: we always send one)."""

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN)


def default_corpus(gene_names: Sequence[str] = (), n_random: int = 200, seed: int = 0) -> list[str]:
    """Texts the demo tokenizer is trained on: the template, the answers, gene names and genotype-like text.

    The genotype-like lines mix the forms the SNP text may take
    (``rgenima_lib.genetics.serialize``: symbols separated or not, one block per
    line or the dense form; rsIDs with alleles), so that the BPE learns the
    merges of each.
    """
    rng = np.random.default_rng(seed)
    genes = list(gene_names) or ["APOE", "BIN1", "CLU", "ABCA7", "CR1", "PICALM", "MS4A6A", "CD33", "TREM2"]
    texts = [SYSTEM_PROMPT, USER_TEMPLATE.format(genome="", image=IMAGE_TOKEN), "system\nuser\nassistant\n"]
    texts += [ANSWER_TEMPLATE.format(label=s) for s in STAGES]
    texts += [" ".join(genes), ", ".join(genes), "; ".join(f"{g}:" for g in genes)]
    for _ in range(n_random):
        g = rng.choice(genes, size=min(len(genes), 8), replace=False)
        texts.append(" ".join(f"{x}: " + " ".join(map(str, rng.integers(0, 3, rng.integers(1, 12)))) + ";" for x in g))
        texts.append(", ".join(f"rs{rng.integers(1e3, 1e8)} {''.join(rng.choice(list('ACGT'), 2))}" for _ in range(6)))
        texts.append(" ".join(f"{x}:" + "".join(map(str, rng.integers(0, 3, rng.integers(1, 12)))) for x in g))
    return texts


def build_demo_tokenizer(corpus: Iterable[str], vocab_size: int = 2000, pre_tokenizer: str = "qwen2"):
    """Train the demo byte-level BPE tokenizer and wrap it for ``transformers``.

    Parameters
    ----------
    corpus : iterable of str
        Training texts (see :func:`default_corpus`).
    vocab_size : int
        Target vocabulary size, special tokens included.
    pre_tokenizer : {"qwen2", "llama3"}
        The split regex (:data:`SPLIT_PATTERNS`).

    Returns
    -------
    PreTrainedTokenizerFast
        With the ChatML chat template, ``<|endoftext|>`` as pad and eos, and
        :data:`IMAGE_TOKEN` as an additional special token.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if pre_tokenizer not in SPLIT_PATTERNS:
        raise ValueError(f"pre_tokenizer must be one of {sorted(SPLIT_PATTERNS)}, not {pre_tokenizer!r}")
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERNS[pre_tokenizer]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>", IMAGE_TOKEN],
                                   padding_side="left", model_max_length=32768)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_demo_llm(out_dir: str | Path, *, arch: str = "qwen2", hidden_size: int = 128, n_layers: int = 2,
                   n_heads: int = 4, n_kv_heads: int = 2, intermediate_size: int = 512,
                   vocab_size: int = 2000, max_positions: int = 16384, seed: int = 0,
                   gene_names: Sequence[str] = (), corpus: Iterable[str] | None = None,
                   embedding_rows: int | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Build and save the demo LLM (random init) and its tokenizer to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Destination; loadable with ``AutoModelForCausalLM.from_pretrained(out_dir)``.
    arch : {"qwen2", "llama"}
        Architecture family (the paper's two backbones); also picks the
        tokenizer's pre-tokenizer (:data:`ARCH_PRE_TOKENIZER`).
    hidden_size, n_layers, n_heads, n_kv_heads, intermediate_size : int
        Size of the random model (Qwen2.5-7B: 3584, 28, 28, 4, 18944).
    vocab_size : int
        BPE vocabulary size.
    max_positions : int
        ``max_position_embeddings`` (paper-scale prompts are a few thousand tokens).
    seed : int
        Seeds the weights; same seed -> identical files.
    gene_names : sequence of str
        Panel gene symbols, added to the tokenizer's training corpus.
    corpus : iterable of str, optional
        Replace the default training corpus.
    embedding_rows : int, optional
        Embedding / LM-head rows when larger than the vocabulary (e.g. 151,936 to
        match Qwen2's parameter count in the GPU benchmark); unused rows never occur.
    dtype : torch.dtype
        Storage dtype of the saved weights.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    if arch not in ARCH_PRE_TOKENIZER:
        raise ValueError(f"arch must be 'qwen2' or 'llama', not {arch!r}")
    out_dir = Path(out_dir)
    tokenizer = build_demo_tokenizer(default_corpus(gene_names, seed=seed) if corpus is None else corpus, vocab_size,
                                     ARCH_PRE_TOKENIZER[arch])
    common = dict(vocab_size=max(len(tokenizer), embedding_rows or 0), hidden_size=hidden_size,
                  num_hidden_layers=n_layers,
                  num_attention_heads=n_heads, num_key_value_heads=n_kv_heads, intermediate_size=intermediate_size,
                  max_position_embeddings=max_positions, tie_word_embeddings=True,
                  bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if arch == "qwen2":
        config = Qwen2Config(**common, rope_theta=1_000_000.0, use_sliding_window=False)
    else:
        config = LlamaConfig(**common, rope_theta=500_000.0)
    config.rgenima_demo = {"demo": True, "note": DEMO_NOTE, "arch": arch, "seed": seed}
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / DEMO_MARKER_FILE).write_text(
        f"{DEMO_NOTE}: a {arch} model with {n_layers} layers, hidden size {hidden_size}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, seed {seed}, built locally by "
        "rgenima build-demo-llm. Not a pretrained language model: results from it are a pipeline demo only.\n")
    return out_dir


def is_demo_model(path: str | Path) -> bool:
    """True if ``path`` is a demo LLM, or a checkpoint / folder fine-tuned from one.

    Looks for the ``rgenima_demo`` entry in ``config.json`` of ``path`` or of
    ``path/llm`` (the LLM folder inside an R-GenIMA checkpoint).
    """
    path = Path(path)
    for cfg in (path / "config.json", path / "llm" / "config.json"):
        if cfg.is_file():
            return bool(json.loads(cfg.read_text()).get("rgenima_demo", {}).get("demo", False))
    return False


def model_note(path: str | Path) -> str:
    """The note a table or figure made from ``path`` should carry ('' for real weights)."""
    return DEMO_NOTE if is_demo_model(path) else ""
