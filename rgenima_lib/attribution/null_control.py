"""Null control: how often the attribution pipeline reports a finding that is not there.

Null data are the attention dumps of models that have learnt nothing: random-init demo
LLMs (one per seed, a new connector each) run through the real attribution pass on the
real test prompts, with the stage labels then permuted across subjects. Every test the
pipeline applies afterwards then has no true finding to make:

- the GWAS enrichment test of the stable genes (a P < 0.05 rate above 0.05 is a false
  "enrichment");
- the permutation test of each stage's ROIs against NC with BH (expected: at most 5 % of
  the 109 ROIs, and usually none);
- the overlap of the stable genes with the GWAS flags and with a random "planted" set of
  the same size as the synthetic cohort's (expected: n_stable · set size / 105);
- the genes the significance and stability selections keep (expected: about none).

Why an untrained model stands for a model trained on permuted labels: the artefacts
that make a finding out of nothing (a token's rollout share falls with its position; a
gene with more SNPs has more tokens; the panel lists the GWAS genes first) belong to the
architecture and the prompt, not to training, so they are there at initialisation. A
random-init model does read the images, whose content differs by stage; permuting the
labels by subject removes that link too, as retraining on permuted labels would.

Each dump is scored twice, side by side: the paper's scoring (canonical gene order,
``gene_score: sum``, ``roi_score: mean``) and the de-confounded one (K gene orders,
``per_token``, ``contrast``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.attribution.bootstrap import TARGET_STAGES, bootstrap_genes, bootstrap_rois
from rgenima_lib.attribution.enrichment import gwas_enrichment
from rgenima_lib.attribution.permutation import stage_permutation_tests
from rgenima_lib.attribution.selection import select_genes

SCORINGS: dict[str, dict[str, str]] = {
    "paper": {"gene_score": "sum", "roi_score": "mean"},
    "deconfounded": {"gene_score": "per_token", "roi_score": "contrast"},
}
"""The two scorings compared; the gene order (canonical vs K permutations) is the dump's."""


def permuted_labels(labels, seed: int) -> np.ndarray:
    """str[N]: the labels shuffled across subjects (stage sizes kept), on the ``[seed, 30]`` stream."""
    return np.random.default_rng([seed, 30]).permutation(np.asarray(labels))


def null_findings(dump, gwas: np.ndarray, planted: np.ndarray, *, scoring: str, seed: int = 0, n_boot: int = 200,
                  n_perm: int = 2000, top_genes: int = 45, top_rois: int = 10, threshold: float = 0.5,
                  alpha: float = 0.05) -> dict:
    """What the pipeline reports on one null dump, with its labels permuted.

    Parameters
    ----------
    dump : AttentionDump
        Attributions of a model that has learnt nothing.
    gwas : bool[G]
        GWAS flag of each of the dump's genes.
    planted : bool[G]
        A random "planted" set.
    scoring : {"paper", "deconfounded"}
        Gene and ROI score (:data:`SCORINGS`).
    seed : int
        Label permutation and resampling.
    n_boot, n_perm, top_genes, top_rois, threshold, alpha
        As the bootstrap, the permutation test and BH.

    Returns
    -------
    dict
        scoring, seed, n_subjects, n_stable, enrichment_p, stable_gwas, expected_gwas, stable_planted,
        expected_planted, bh_rois_<stage> (BH-significant ROIs per stage), bh_rois_mean, stable_rois_mean,
        significance_genes, stability_genes, significance_gwas.
    """
    score = SCORINGS[scoring]
    labels = permuted_labels(dump.label, seed)
    genes = bootstrap_genes(dump.gene_importance, dump.genes, n_boot=n_boot, top_k=top_genes, threshold=threshold,
                            seed=seed, tokens=dump.gene_tokens, score=score["gene_score"])
    stable = genes.set_index("gene").loc[list(dump.genes), "stable"].to_numpy(bool)
    enrich = gwas_enrichment(dump.genes, stable, gwas)
    perm = stage_permutation_tests(dump.roi_importance, labels, dump.rois, n_perm=n_perm, alpha=alpha, seed=seed)
    bh = perm.groupby("stage")["significant"].sum()
    rois = bootstrap_rois(dump.roi_importance, labels, dump.rois, n_boot=n_boot, top_k=top_rois,
                          threshold=threshold, score=score["roi_score"], seed=seed)
    chosen = select_genes(dump.gene_importance, dump.genes, tokens=dump.gene_tokens, score=score["gene_score"],
                          seed=seed, alpha=alpha)
    by_method = {m: t["selected"].to_numpy(bool) for m, t in chosen.groupby("selection")}
    n_genes = len(dump.genes)
    row = {"scoring": scoring, "seed": seed, "n_subjects": dump.n_subjects, "n_stable": int(stable.sum()),
           "enrichment_p": enrich.p_value, "stable_gwas": enrich.stable_gwas,
           "expected_gwas": stable.sum() * gwas.sum() / n_genes, "stable_planted": int((stable & planted).sum()),
           "expected_planted": stable.sum() * planted.sum() / n_genes}
    row.update({f"bh_rois_{s}": int(bh.get(s, 0)) for s in TARGET_STAGES})
    row["bh_rois_mean"] = float(np.mean([row[f"bh_rois_{s}"] for s in TARGET_STAGES]))
    row["stable_rois_mean"] = float(rois.groupby("stage")["stable"].sum().mean())
    row["significance_genes"] = int(by_method["significance"].sum())
    row["stability_genes"] = int(by_method["stability"].sum())
    row["significance_gwas"] = int((by_method["significance"] & gwas).sum())
    return row


def random_gene_set(n_genes: int, size: int, seed: int) -> np.ndarray:
    """bool[n_genes]: ``size`` genes drawn at random (the stand-in "planted" set), stream ``[seed, 31]``."""
    flags = np.zeros(n_genes, bool)
    flags[np.random.default_rng([seed, 31]).choice(n_genes, size=min(size, n_genes), replace=False)] = True
    return flags


def false_positive_summary(rows: pd.DataFrame, n_rois: int, alpha: float = 0.05) -> pd.DataFrame:
    """One column per scoring: the rates and means over seeds, with what a null would give.

    Parameters
    ----------
    rows : DataFrame
        :func:`null_findings` rows.
    n_rois : int
        ROIs tested per stage (for the share of BH-significant ROIs).
    alpha : float

    Returns
    -------
    DataFrame
        measure, expected under the null, then one column per scoring.
    """
    def measures(t: pd.DataFrame) -> dict:
        return {
            "seeds": len(t),
            f"enrichment P < {alpha:g} (rate)": float((t["enrichment_p"] < alpha).mean()),
            "enrichment P (median)": float(t["enrichment_p"].median()),
            "stable genes (mean)": float(t["n_stable"].mean()),
            "stable GWAS genes: observed / expected": f"{t['stable_gwas'].mean():.1f} / {t['expected_gwas'].mean():.1f}",
            "stable random-set genes: observed / expected":
                f"{t['stable_planted'].mean():.1f} / {t['expected_planted'].mean():.1f}",
            "BH-significant stage ROIs (mean per stage)": float(t["bh_rois_mean"].mean()),
            "BH-significant stage ROIs (share of ROIs)": float(t["bh_rois_mean"].mean() / n_rois),
            "stage ROIs stable, top-k (mean per stage)": float(t["stable_rois_mean"].mean()),
            "genes kept by significance (mean)": float(t["significance_genes"].mean()),
            "genes kept by stability (mean)": float(t["stability_genes"].mean()),
        }

    expected = {"seeds": "", f"enrichment P < {alpha:g} (rate)": f"<= {alpha:g}", "enrichment P (median)": "about 0.5",
                "stable genes (mean)": "about k", "stable GWAS genes: observed / expected": "equal",
                "stable random-set genes: observed / expected": "equal",
                "BH-significant stage ROIs (mean per stage)": f"<= {alpha * n_rois:.1f}, usually 0",
                "BH-significant stage ROIs (share of ROIs)": f"<= {alpha:g}",
                "stage ROIs stable, top-k (mean per stage)": "about k (no test)",
                "genes kept by significance (mean)": "about 0", "genes kept by stability (mean)": "<= 1 (E[V] bound)"}
    cols = {s: measures(t) for s, t in rows.groupby("scoring", sort=False)}
    table = pd.DataFrame({"measure": list(expected), "null": list(expected.values())})
    for scoring, m in cols.items():
        table[scoring] = [m[k] for k in expected]
    return table


def random_model(base_llm, genes, visual_dim: int, *, seed: int, **llm_options):
    """One random-init R-GenIMA: the seed's demo LLM and a new connector.

    Parameters
    ----------
    base_llm : path
        Folder to build the seed's demo LLM in (:func:`~rgenima_lib.models.demo_llm.build_demo_llm`).
    genes : sequence of str
        Panel genes (the demo tokenizer's corpus).
    visual_dim : int
        Width of the cached RiT tokens.
    seed : int
        Weights of the LLM and of the connector.
    **llm_options
        Size of the demo LLM (hidden_size, n_layers, n_heads, n_kv_heads, intermediate_size).

    Returns
    -------
    RGenIMA
        In eval mode, eager attention (the rollout reads the weights).
    """
    import torch

    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.models.mllm import MLLMConfig, RGenIMA

    path = build_demo_llm(base_llm, seed=seed, gene_names=list(genes), **llm_options)
    torch.manual_seed(seed)
    return RGenIMA.from_base(path, MLLMConfig(visual_dim=visual_dim, attn_implementation="eager"), seed=seed).eval()


def null_prompts(model, samples_tsv, imputed, snps, embeddings, *, separator: str, packing: str,
                 limit: int | None = None, gene_orders: int = 1, seed: int = 0):
    """The real test prompts of one null model, written as rule ``attribute`` writes them for a model.

    The SNP text follows the pipeline's settings (``genetics.snp_separator``, ``genetics.snp_packing``),
    resolved for ``model``'s own tokenizer: a null model that read another text than the trained
    models would measure the artefacts of another prompt.

    Parameters
    ----------
    model : RGenIMA
        A :func:`random_model`.
    samples_tsv, imputed, snps, embeddings : path
        As :func:`~rgenima_lib.data.prompt_samples.load_attribution_prompts`.
    separator, packing : str
        The settings, as the rules pass them ('auto' allowed).
    limit, gene_orders, seed
        As :func:`~rgenima_lib.data.prompt_samples.load_attribution_prompts`.

    Returns
    -------
    AttributionPrompts
    """
    from rgenima_lib.data.prompt_samples import load_attribution_prompts

    return load_attribution_prompts(samples_tsv, imputed, snps, embeddings, limit, gene_orders=gene_orders, seed=seed,
                                    gene_input=model.mllm_config.gene_input, separator=separator,
                                    tokenizer=model.tokenizer, packing=packing)


def random_model_dumps(model, prompts, genes, rois, *, seed: int, gene_orders: int = 1):
    """Dumps of one random-init R-GenIMA on real prompts: canonical order, and (``gene_orders`` > 1) K orders.

    Parameters
    ----------
    model : RGenIMA
        A :func:`random_model`.
    prompts : AttributionPrompts
        Its :func:`null_prompts` (with the K orders).
    genes, rois : sequence of str
    seed : int
        The model's seed (recorded in the dumps).
    gene_orders : int

    Returns
    -------
    dict scoring -> AttentionDump
        ``paper`` (canonical order) and, when ``gene_orders`` > 1, ``deconfounded`` (mean over the K orders).
    """
    from rgenima_lib.attribution.attribute import attribute_samples

    meta = {"model": f"random init, seed {seed}", "note": "random-init model (null control)"}
    out = {"paper": attribute_samples(model, prompts.samples, prompts.spans, genes, rois, meta=meta)}
    if gene_orders > 1:
        out["deconfounded"] = attribute_samples(model, prompts.samples, prompts.spans, genes, rois,
                                                extra_orders=prompts.extra_orders, meta=meta)
    return out
