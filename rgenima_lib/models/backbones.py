"""Which base LLM each configured backbone uses, checked when the workflow is planned.

``llm.backbones`` names the backbones; each one without a ``model_path`` is the
demo LLM, built with the architecture ``llm.demo.arch[<name>]``. A backbone
missing from that map used to end planning with a bare ``KeyError``.
"""

from __future__ import annotations

DEMO_ARCHS = ("qwen2", "llama")


def backbone_config_error(llm: dict) -> str | None:
    """What is wrong with the backbones of an ``llm`` config section, or None.

    Parameters
    ----------
    llm : dict
        The validated ``llm`` section (``backbones``, ``demo.enabled``, ``demo.arch``).

    Returns
    -------
    str or None
        One message naming the key to set and its allowed values.
    """
    demo = llm.get("demo", {})
    arch = demo.get("arch", {})
    unbuilt = [name for name, b in llm.get("backbones", {}).items() if not (b or {}).get("model_path")]
    if not unbuilt or not demo.get("enabled"):
        return None  # every backbone has weights, or the missing model_path is reported by base_llm_path
    unknown = [name for name in unbuilt if name not in arch]
    if unknown:
        # The config's arch map replaces the default one whole, so the example lists every demo backbone.
        example = ", ".join(f"{name}: {arch.get(name, DEMO_ARCHS[0])}" for name in unbuilt)
        return (f"config: backbone(s) {', '.join(unknown)} of llm.backbones have no model_path and no demo "
                f"architecture: set llm.demo.arch.<name> to one of {', '.join(DEMO_ARCHS)} (e.g. "
                f"llm.demo.arch: {{{example}}}), or llm.backbones.{unknown[0]}.model_path to a local "
                "Hugging Face model folder.")
    return None


def demo_arch(llm: dict, backbone: str) -> str:
    """The demo architecture of ``backbone`` (``qwen2`` or ``llama``).

    Raises
    ------
    ValueError
        The backbone has no entry in ``llm.demo.arch`` (message from ``backbone_config_error``).
    """
    arch = llm.get("demo", {}).get("arch", {})
    if backbone not in arch:
        raise ValueError(backbone_config_error({**llm, "demo": {**llm.get("demo", {}), "enabled": True}})
                         or f"config: llm.demo.arch has no entry for backbone {backbone!r}.")
    return arch[backbone]
