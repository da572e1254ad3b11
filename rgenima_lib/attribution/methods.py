"""The attribution methods a dump can hold, by name (config ``attribution.method``; docs/interpretability.md).

No torch here: the parser, the dump readers and the tables name methods without loading a model.
"""

from __future__ import annotations

#: Method name -> how tables and figures label it.
METHOD_LABELS = {
    "rollout": "end-to-end rollout (LLM rollout x RiT rollout onto the ROI inputs)",
    "rollout_tokens": "token-level rollout (the paper's, onto LLM token positions)",
    "integrated_gradients": "integrated gradients onto the ROI patches and gene genotypes",
    "gradient_attention": "gradient-weighted attention relevance (Chefer et al. 2021), LLM x RiT",
    "gradient_input": "gradient x input on the RiT patch embeddings and gene token embeddings",
}
METHODS = tuple(METHOD_LABELS)
#: The methods that run the fold's RiT on the ROI patches (the rollouts read cached tokens and the RiT rollout).
ENCODER_METHODS = ("integrated_gradients", "gradient_attention", "gradient_input")
#: What a dump written before methods existed holds.
LEGACY_METHOD = "rollout_tokens"


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else ValueError."""
    if method not in METHOD_LABELS:
        raise ValueError(f"attribution method must be one of {METHODS}, not {method!r}")
    return method
