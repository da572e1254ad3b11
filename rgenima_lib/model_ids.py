"""The model-ID grammar: how the workflow, the tables and the attribution name every model.

* Stage-1 encoders: ``rit``, ``med3d``.
* Table 1 baselines: ``mlp``, ``bert``, ``bert_<encoder>_<fusion>`` (fusion ``concat`` † or ``cross`` ‡).
* LLM models of backbone ``<b>``: ``<b>`` (SNP-only), ``<b>_med3d`` (LLM + Med3D) and ``rgenima_<b>``
  (R-GenIMA: LLM + RiT). ``<b>_snp`` and ``<b>_rit`` are read as ``<b>`` and ``rgenima_<b>``.
"""

from __future__ import annotations

import re

ENCODERS: tuple[str, ...] = ("rit", "med3d")

BASELINES: tuple[str, ...] = ("mlp", "bert", "bert_med3d_concat", "bert_med3d_cross", "bert_rit_concat",
                              "bert_rit_cross")

LLM_VARIANTS: tuple[str, ...] = ("snp", "med3d", "rit")
"""What an LLM model reads besides the SNP text: nothing, the Med3D token, or the RiT's ROI tokens."""

BACKBONE_PATTERN = r"[A-Za-z0-9]+"
"""A backbone name: letters and digits only, so that ``_`` separates the parts of a model ID."""


def llm_model_id(backbone: str, variant: str) -> str:
    """The model ID of an LLM backbone and variant (``snp``, ``med3d`` or ``rit``)."""
    if not re.fullmatch(BACKBONE_PATTERN, backbone):
        raise ValueError(f"backbone name {backbone!r}: use letters and digits only")
    return {"snp": backbone, "med3d": f"{backbone}_med3d", "rit": f"rgenima_{backbone}"}[variant]


def llm_model_parts(model: str) -> tuple[str, str]:
    """(backbone, variant) of an LLM model ID; ``<b>_snp`` and ``<b>_rit`` are accepted spellings."""
    if model.startswith("rgenima_"):
        return model[len("rgenima_"):], "rit"
    for suffix, variant in (("_snp", "snp"), ("_med3d", "med3d"), ("_rit", "rit")):
        if model.endswith(suffix):
            return model[: -len(suffix)], variant
    return model, "snp"


def visual_encoder(model: str) -> str | None:
    """The frozen image encoder (``rit`` / ``med3d``) a baseline or LLM model reads, or None."""
    if model in BASELINES:
        return "rit" if "_rit_" in model else "med3d" if "_med3d_" in model else None
    variant = llm_model_parts(model)[1]
    return {"snp": None, "med3d": "med3d", "rit": "rit"}[variant]


def canonical_model(model: str) -> str:
    """A model ID in its one spelling (LLM IDs as ``<b>``, ``<b>_med3d``, ``rgenima_<b>``)."""
    if model in BASELINES or model in ENCODERS:
        return model
    return llm_model_id(*llm_model_parts(model))


def model_wildcard(backbones) -> str:
    """A regular expression matching every model ID of these backbones (the workflow's ``model`` wildcard)."""
    llm = [llm_model_id(b, v) for b in backbones for v in LLM_VARIANTS]
    return "|".join(sorted({*BASELINES, *llm}, key=lambda m: (-len(m), m)))
