"""R-GenIMA's multimodal LLM: a Hugging Face causal LM plus a connector from visual tokens (paper 4.2.1–4.2.3).

The cached encoder tokens H (109 x 768 RiT, 1 x 512 Med3D) go through the
connector (paper eq. 7 / 9: Linear; a 2-layer MLP with GELU as an option) to
the LLM's hidden size and overwrite, in the embedding sequence, the image-anchor
positions that :class:`rgenima_lib.models.prompting.PromptCollator` expanded
(paper 4.2.2, "embedding-level visual insertion"). The LLM is any
``AutoModelForCausalLM`` loadable with ``from_pretrained(local_path)``
(Qwen2 / Qwen2.5 and Llama-3 families; the demo LLM the same way).

Loss (paper eq. 11): the per-sample SUM of the answer tokens' negative
log-likelihood, averaged over the batch (Hugging Face's default would average
over tokens instead).

Departures from the paper:

- LoRA (peft) is optional; the paper fine-tunes all parameters (the default here).
- The anchor token is added to the tokenizer when missing; its embedding row is
  never read (always overwritten), so no pretrained row changes meaning.
- ``gene_input="tokens"`` (docs/departures.md): the genome is one token per
  gene, :class:`GeneTokenEncoder` applied to that gene's dosages, spliced at
  the gene anchors (:data:`~rgenima_lib.genetics.gene_tokens.GENE_TOKEN`) like
  the visual tokens at the image anchors. The paper writes the SNPs as text
  (``gene_input="text"``, the default).

Checkpoint layout (one folder, written atomically)::

    <ckpt>/llm/            save_pretrained of the LLM (LoRA merged) + its tokenizer
    <ckpt>/connector.safetensors
    <ckpt>/gene_encoder.safetensors   (gene_input = "tokens" only)
    <ckpt>/rgenima.json    MLLMConfig, base model path, demo flag, training summary
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.gene_tokens import GENE_TOKEN
from rgenima_lib.io import atomic_output
from rgenima_lib.models.prompting import IGNORE_INDEX, IMAGE_TOKEN, ensure_chat_template

CHECKPOINT_FORMAT = "rgenima-mllm/1"
GENE_INPUTS = ("text", "tokens")


@dataclass
class MLLMConfig:
    """What the multimodal model is made of (everything but the LLM weights).

    Attributes
    ----------
    visual_dim : int or None
        Width of the cached visual tokens: 768 (RiT), 512 (Med3D), None (LLM SNP-only: no connector).
    connector : {"linear", "mlp"}
        Paper eq. 7 / 9 use ``linear``; ``mlp`` = Linear, GELU, Linear (LLaVA-1.5 style).
    attn_implementation : str
        ``sdpa`` (default) or ``eager``; the prediction and rollout passes pick their own (models.attention).
    lora : bool
        Fine-tune LoRA adapters (plus the connector) instead of all LLM weights.
    lora_r, lora_alpha : int
        LoRA rank and scale (scaling = alpha / r).
    lora_dropout : float
    lora_targets : list of str
        Module names that get adapters (Qwen2 and Llama share these).
    gene_input : {"text", "tokens"}
        The genome as the paper's SNP text, or one token per gene (a departure).
    gene_snps : list of int or None
        ``tokens`` only: SNPs per gene in canonical order (shapes the gene encoder;
        ``GeneTokenTexts.gene_snps``).
    """

    visual_dim: int | None = None
    connector: str = "linear"
    attn_implementation: str = "sdpa"
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    gene_input: str = "text"
    gene_snps: list[int] | None = None

    def __post_init__(self):
        if self.connector not in ("linear", "mlp"):
            raise ValueError(f"connector must be 'linear' or 'mlp', not {self.connector!r}")
        if self.gene_input not in GENE_INPUTS:
            raise ValueError(f"gene_input must be one of {GENE_INPUTS}, not {self.gene_input!r}")
        if (self.gene_input == "tokens") != bool(self.gene_snps):
            raise ValueError("gene_input='tokens' needs gene_snps (SNPs per gene, from the genotype layout), and "
                             f"gene_input='text' takes none (got gene_input={self.gene_input!r}, "
                             f"gene_snps={'none' if not self.gene_snps else len(self.gene_snps)} genes)")
        if self.gene_snps and min(self.gene_snps) < 1:
            raise ValueError("every gene needs at least one SNP")

    @classmethod
    def from_dict(cls, d: dict) -> "MLLMConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def check_model_folder(path: str | Path, *, fix: str) -> dict:
    """A local Hugging Face model folder that ``from_pretrained`` can load: its ``config.json``, checked.

    Parameters
    ----------
    path : str or Path
        The folder (a base LLM, or ``<checkpoint>/llm``).
    fix : str
        What to do when it is not usable (depends on who made the folder).

    Returns
    -------
    dict : the parsed ``config.json``

    Raises
    ------
    InputDataError
        Not a folder; no ``config.json`` (a folder of weights only, or the wrong level of a
        download); ``config.json`` not JSON; a ``model_type`` this transformers does not know
        (an unknown backbone: ``from_pretrained`` would fail deep inside with a KeyError).
    """
    import transformers
    from transformers import CONFIG_MAPPING

    path = Path(path)
    config_path = path / "config.json"
    if not path.is_dir():
        raise InputDataError("model folder not found (or not a folder).", path=path, fix=fix)
    if not config_path.is_file():
        raise InputDataError("model folder has no config.json: not a Hugging Face model folder.", path=path, fix=fix)
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(f"config.json is not valid JSON ({exc}).", path=config_path, fix=fix) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not model_type or model_type not in CONFIG_MAPPING:
        raise InputDataError(
            f"unknown backbone: config.json has model_type {model_type!r}, which transformers "
            f"{transformers.__version__} cannot build (Qwen2 / Qwen2.5: 'qwen2'; Llama-3: 'llama').",
            path=config_path,
            fix="use a causal LM of a supported family, or a transformers version that knows this model_type. "
                + fix)
    return config


#: The fix for a base LLM folder that cannot be loaded.
BASE_MODEL_FIX = ("point llm.backbones.<name>.model_path (--base) at the local Hugging Face folder of the model "
                  "(config.json, weights, tokenizer files; nothing is downloaded), or leave model_path null "
                  "with llm.demo.enabled: true for the demo LLM (rule build_demo_llm).")


def build_connector(visual_dim: int, hidden_size: int, kind: str) -> nn.Module:
    """Connector from d_vis to the LLM hidden size (paper eq. 7 / 9)."""
    if kind == "linear":
        return nn.Linear(visual_dim, hidden_size)
    return nn.Sequential(nn.Linear(visual_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))


class GeneTokenEncoder(nn.Module):
    """One token per gene: a per-gene affine map from the gene's SNP dosages to the LLM hidden size.

    Parameters
    ----------
    gene_snps : list of int, length n_genes
        SNPs per gene (canonical order); width = the largest.
    hidden_size : int

    Notes
    -----
    Gene g's token is ``dosages[:n_g] @ weight[g, :n_g] + bias[g]``: the zero
    padding beyond n_g adds nothing, and the bias is the gene's identity (a
    gene embedding), so a permuted gene order still tells the genes apart.
    Initialised like ``nn.Linear`` over n_g inputs.
    """

    def __init__(self, gene_snps: list[int], hidden_size: int):
        super().__init__()
        sizes = torch.as_tensor(gene_snps, dtype=torch.float32)
        bound = (1.0 / sizes.sqrt())[:, None, None]
        self.weight = nn.Parameter((torch.rand(len(gene_snps), int(sizes.max()), hidden_size) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(len(gene_snps), hidden_size) * 2 - 1) * bound[:, 0])

    def forward(self, dosages: torch.Tensor, gene_ids: torch.Tensor) -> torch.Tensor:
        """Gene tokens.

        Parameters
        ----------
        dosages : float[N, width]
            Zero-padded dosages of N gene occurrences (any samples, any order).
        gene_ids : int64[N]
            Canonical gene of each row.

        Returns
        -------
        float[N, hidden]
        """
        if dosages.shape[1] != self.weight.shape[1] or int(gene_ids.max()) >= self.weight.shape[0]:
            raise ValueError(f"gene dosages [{dosages.shape[0]}, {dosages.shape[1]}] (max gene id "
                             f"{int(gene_ids.max())}) do not fit a gene encoder of {self.weight.shape[0]} genes x "
                             f"{self.weight.shape[1]} SNPs: the genotype layout differs from the one trained on")
        weight = self.weight[gene_ids]
        return torch.einsum("nw,nwh->nh", dosages.to(weight.dtype), weight) + self.bias[gene_ids]


def load_llm_tokenizer(path: str | Path, gene_tokens: bool = False):
    """The LLM's tokenizer with the image anchor (and the gene anchor), a pad token, left padding, a chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    # Text-mode models never get the gene anchor: an extra row would enter every softmax over the vocabulary.
    for anchor in [IMAGE_TOKEN] + ([GENE_TOKEN] if gene_tokens else []):
        if anchor not in tok.get_vocab():
            tok.add_tokens([anchor], special_tokens=True)
    if tok.pad_token is None:  # Llama-3 ships none; padded positions are masked, so eos is safe.
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    ensure_chat_template(tok)
    return tok


class RGenIMA(nn.Module):
    """LLM + connector; see the module docstring.

    Parameters
    ----------
    llm : PreTrainedModel
        A causal LM (possibly wrapped by peft).
    tokenizer : PreTrainedTokenizerFast
        From :func:`load_llm_tokenizer`.
    config : MLLMConfig
    base_path : str
        Where the LLM came from (recorded in checkpoints).
    """

    def __init__(self, llm, tokenizer, config: MLLMConfig, base_path: str = ""):
        super().__init__()
        self.llm = llm
        self.tokenizer = tokenizer
        self.mllm_config = config
        self.base_path = str(base_path)
        self.connector = (None if config.visual_dim is None else
                          build_connector(config.visual_dim, self.causal_lm.config.hidden_size, config.connector))
        if self.connector is not None:
            self.connector.to(next(llm.parameters()).dtype)
        self.gene_encoder = (GeneTokenEncoder(config.gene_snps, self.causal_lm.config.hidden_size)
                             if config.gene_input == "tokens" else None)
        if self.gene_encoder is not None:
            self.gene_encoder.to(next(llm.parameters()).dtype)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.gene_token_id = tokenizer.get_vocab().get(GENE_TOKEN)
        if self.gene_encoder is not None and self.gene_token_id is None:
            raise ValueError(f"gene_input='tokens' needs {GENE_TOKEN!r} in the tokenizer (load_llm_tokenizer)")

    # ----------------------------------------------------------------- loading / saving
    @classmethod
    def from_base(cls, llm_path: str | Path, config: MLLMConfig, *, dtype: torch.dtype = torch.float32,
                  seed: int = 0) -> "RGenIMA":
        """Start from LLM weights in a local folder (real or demo); the connector is initialised from ``seed``."""
        from transformers import AutoModelForCausalLM

        llm_path = Path(llm_path)
        check_model_folder(llm_path, fix=BASE_MODEL_FIX)
        tokenizer = load_llm_tokenizer(llm_path, gene_tokens=config.gene_input == "tokens")
        llm = AutoModelForCausalLM.from_pretrained(str(llm_path), dtype=dtype,
                                                   attn_implementation=config.attn_implementation)
        if len(tokenizer) > llm.get_input_embeddings().weight.shape[0]:
            llm.resize_token_embeddings(len(tokenizer))
        llm.config.pad_token_id = tokenizer.pad_token_id
        if config.lora:
            from peft import LoraConfig, get_peft_model

            llm = get_peft_model(llm, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                 lora_dropout=config.lora_dropout,
                                                 target_modules=list(config.lora_targets), task_type="CAUSAL_LM"))
        torch.manual_seed(seed)
        return cls(llm, tokenizer, config, base_path=str(llm_path))

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, dtype: torch.dtype = torch.float32,
                        attn_implementation: str | None = None) -> "RGenIMA":
        """Load a checkpoint written by :meth:`save_checkpoint` (LoRA already merged)."""
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        path = Path(path)
        # A checkpoint folder is written whole (atomically) by rule finetune: a damaged one is rebuilt by
        # deleting it, since Snakemake reruns a job only when its output is missing.
        fix = f"delete the folder (rm -r '{path}') and rerun the workflow: rule finetune rebuilds it."
        try:
            meta = json.loads((path / "rgenima.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputDataError(f"not an R-GenIMA checkpoint: rgenima.json is missing or damaged ({exc}).",
                                 path=path, fix=fix) from exc
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
            raise InputDataError(f"not an R-GenIMA checkpoint (rgenima.json format "
                                 f"{meta.get('format') if isinstance(meta, dict) else None!r}).", path=path, fix=fix)
        check_model_folder(path / "llm", fix=fix)
        config = MLLMConfig.from_dict({**meta["config"], "lora": False})
        if config.visual_dim is not None and not (path / "connector.safetensors").is_file():
            raise InputDataError("checkpoint of a model with images has no connector.safetensors.", path=path,
                                 fix=fix)
        if config.gene_input == "tokens" and not (path / "gene_encoder.safetensors").is_file():
            raise InputDataError("checkpoint of a gene-token model has no gene_encoder.safetensors.", path=path,
                                 fix=fix)
        if attn_implementation:
            config.attn_implementation = attn_implementation
        tokenizer = load_llm_tokenizer(path / "llm", gene_tokens=config.gene_input == "tokens")
        llm = AutoModelForCausalLM.from_pretrained(str(path / "llm"), dtype=dtype,
                                                   attn_implementation=config.attn_implementation)
        model = cls(llm, tokenizer, config, base_path=meta.get("base_path", ""))
        if model.connector is not None:
            model.connector.load_state_dict(load_file(str(path / "connector.safetensors")))
            model.connector.to(dtype)
        if model.gene_encoder is not None:
            model.gene_encoder.load_state_dict(load_file(str(path / "gene_encoder.safetensors")))
            model.gene_encoder.to(dtype)
        return model

    @property
    def causal_lm(self):
        """The Hugging Face model itself (inside peft's wrapper when LoRA is on; LoRA layers are injected in place)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def full_state_dict(self, state_dict: dict | None = None) -> tuple[dict, dict, dict]:
        """Split a state dict of this module into (LLM, connector, gene encoder) parts, LoRA merged.

        Parameters
        ----------
        state_dict : dict, optional
            E.g. the ZeRO-3 consolidated one; defaults to ``self.state_dict()``.
        """
        sd = self.state_dict() if state_dict is None else state_dict
        llm_sd = {k[len("llm."):]: v for k, v in sd.items() if k.startswith("llm.")}
        conn_sd = {k[len("connector."):]: v.contiguous() for k, v in sd.items() if k.startswith("connector.")}
        gene_sd = {k[len("gene_encoder."):]: v.contiguous() for k, v in sd.items() if k.startswith("gene_encoder.")}
        if self.mllm_config.lora:
            llm_sd = merge_lora(llm_sd, self.mllm_config.lora_alpha / self.mllm_config.lora_r)
        return llm_sd, conn_sd, gene_sd

    def save_checkpoint(self, path: str | Path, state_dict: dict | None = None, extra: dict | None = None) -> Path:
        """Write the checkpoint folder atomically (see module docstring); returns ``path``."""
        from safetensors.torch import save_file

        llm_sd, conn_sd, gene_sd = self.full_state_dict(state_dict)
        with atomic_output(path, directory=True) as tmp:
            self.causal_lm.save_pretrained(tmp / "llm", state_dict=llm_sd)
            self.tokenizer.save_pretrained(tmp / "llm")
            if self.connector is not None:
                save_file(conn_sd, str(tmp / "connector.safetensors"))
            if self.gene_encoder is not None:
                save_file(gene_sd, str(tmp / "gene_encoder.safetensors"))
            cfg = asdict(self.mllm_config)
            meta = {"format": CHECKPOINT_FORMAT, "config": cfg, "base_path": self.base_path,
                    "demo": bool(getattr(self.causal_lm.config, "rgenima_demo", {}).get("demo", False)),
                    **(extra or {})}
            (tmp / "rgenima.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        return Path(path)

    # ----------------------------------------------------------------- forward
    def embed_inputs(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor | None = None,
                     gene_dosages: torch.Tensor | None = None, gene_ids: torch.Tensor | None = None,
                     text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the visual tokens spliced in at the expanded anchor positions, gene tokens at the gene anchors.

        Parameters
        ----------
        input_ids : int64[B, T]
            From :class:`PromptCollator` (anchor already expanded to n_visual copies).
        visual_tokens : float[N_img, d_vis], optional
            All samples' visual tokens in sample-then-ROI order; N_img must equal
            the number of anchor positions in ``input_ids``.
        gene_dosages : float[N_gene, width], optional
        gene_ids : int64[N_gene], optional
            The gene anchors' dosages and genes in sample-then-text order
            (:class:`PromptCollator`); N_gene must equal the gene anchors in ``input_ids``.
        text_embeds : float[B, T, hidden], optional
            The token embeddings to splice into instead of the embedding table's rows of
            ``input_ids`` (gradient attributions move them along a path).

        Returns
        -------
        float[B, T, hidden]
        """
        embeds = self.llm.get_input_embeddings()(input_ids) if text_embeds is None else text_embeds
        embeds = self.splice_genes(embeds, input_ids, gene_dosages, gene_ids)
        is_img = input_ids == self.image_token_id
        n_img = int(is_img.sum())
        if n_img == 0:
            return embeds
        if visual_tokens is None or self.connector is None or visual_tokens.shape[0] != n_img:
            got = None if visual_tokens is None else tuple(visual_tokens.shape)
            raise ValueError(f"{n_img} image positions but visual tokens {got} "
                             f"(connector: {self.connector is not None})")
        projected = self.connector(visual_tokens.to(embeds.dtype))
        # masked_scatter fills the True positions in row-major order: sample by sample, ROI by ROI.
        return embeds.masked_scatter(is_img.unsqueeze(-1), projected)

    def splice_genes(self, embeds: torch.Tensor, input_ids: torch.Tensor, gene_dosages: torch.Tensor | None,
                     gene_ids: torch.Tensor | None) -> torch.Tensor:
        """``embeds`` float[B, T, hidden] with the gene anchors overwritten by the gene tokens (sample, then text order)."""
        n_gene = int((input_ids == self.gene_token_id).sum()) if self.gene_token_id is not None else 0
        n_given = 0 if gene_ids is None else int(gene_ids.shape[0])
        if n_gene != n_given or (n_gene and self.gene_encoder is None):
            raise ValueError(f"{n_gene} gene anchors but dosages for {n_given} genes "
                             f"(gene encoder: {self.gene_encoder is not None})")
        if n_gene == 0:
            return embeds
        tokens = self.gene_encoder(gene_dosages, gene_ids).to(embeds.dtype)
        return embeds.masked_scatter((input_ids == self.gene_token_id).unsqueeze(-1), tokens)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                visual_tokens: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                gene_dosages: torch.Tensor | None = None, gene_ids: torch.Tensor | None = None, cache=None, use_cache: bool = False, logits_to_keep: int = 0, loss_logits_only: bool = False,
                **kwargs):
        """One forward pass.

        Parameters
        ----------
        input_ids, attention_mask, position_ids : int64[B, T]
            From :class:`PromptCollator`; with a ``cache``, only the new tokens
            (``attention_mask`` then covers cached + new tokens).
        visual_tokens : float[N_img, d_vis], optional
        labels : int64[B, T], optional
            :data:`IGNORE_INDEX` outside the answer.
        gene_dosages, gene_ids : optional
            Gene tokens' inputs (see :meth:`embed_inputs`).
        cache : transformers Cache, optional
        use_cache : bool
        logits_to_keep : int
            Keep only the last this many positions' logits (0 = all).
        loss_logits_only : bool
            With ``labels``: compute logits only for the tail of the sequence
            that holds the answers (left padding puts every answer at the end).
            Training uses it: at paper length with a 152k vocabulary the full
            logits would be the largest tensor of the step (~2,700 x 152k per sample).
        **kwargs
            Passed to the LLM (e.g. ``output_attentions``); unused collator keys (``n_visual``) are dropped.

        Returns
        -------
        transformers CausalLMOutputWithPast
            ``loss`` (paper eq. 11, when ``labels``), ``logits`` float[B, T', V], ``cache``.
        """
        kwargs.pop("n_visual", None)
        if labels is not None and loss_logits_only and logits_to_keep == 0:
            labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
            # One extra position: the token before the first answer token predicts it.
            logits_to_keep = int(labels.shape[1] - labelled.min()) + 1 if len(labelled) else 1
        embeds = self.embed_inputs(input_ids, visual_tokens, gene_dosages, gene_ids)
        out = self.causal_lm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs)
        if labels is not None:
            out.loss = answer_nll(out.logits, labels[:, labels.shape[1] - out.logits.shape[1]:]).mean()
        return out


def answer_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample summed NLL of the labelled tokens (paper eq. 11 before the batch mean).

    Parameters
    ----------
    logits : float[B, T, V]
    labels : int64[B, T]
        :data:`IGNORE_INDEX` where not scored; token t is predicted from position t - 1.

    Returns
    -------
    float32[B]
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    nll = nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                      ignore_index=IGNORE_INDEX, reduction="none")
    return nll.view(shift_labels.shape).sum(dim=1)


def merge_lora(llm_sd: dict, scaling: float) -> dict:
    """Fold peft LoRA weights into the base weights: W = W0 + scaling * B @ A.

    Parameters
    ----------
    llm_sd : dict
        State dict of a peft-wrapped causal LM (``base_model.model.`` prefix,
        ``.base_layer.`` and ``.lora_A.default`` / ``.lora_B.default`` entries).
    scaling : float
        ``lora_alpha / r``.

    Returns
    -------
    dict
        The plain model's state dict (keys as ``save_pretrained`` writes them).
    """
    prefix = "base_model.model."
    out = {}
    for key, value in llm_sd.items():
        if ".lora_" in key:
            continue
        name = key[len(prefix):] if key.startswith(prefix) else key
        if ".base_layer." in name:
            owner = key.split(".base_layer.")[0]
            name = name.replace(".base_layer.", ".")
            a, b = llm_sd.get(f"{owner}.lora_A.default.weight"), llm_sd.get(f"{owner}.lora_B.default.weight")
            if a is not None and key.endswith(".weight"):
                value = (value.float() + scaling * (b.float() @ a.float())).to(value.dtype)
        out[name] = value
    return out
