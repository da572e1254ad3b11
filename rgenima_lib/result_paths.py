"""Where every result of the pipeline lives: one path builder for the workflow, the tests and the docs.

Each output has one name and one template below, relative to the results folder.
``result_path(name, **wildcards)`` fills the wildcards it is given and leaves the
others as ``{wildcard}`` patterns, so the same call gives a rule's output pattern
(``result_path("roi_patches")`` -> ``results/imaging/rois/{subject}.npy``) and one
concrete file (``result_path("roi_patches", subject="011_S_0002")``).
"""

from __future__ import annotations

import re

RESULTS = "results"

TEMPLATES: dict[str, str] = {
    # cohort
    "manifest": "cohort/manifest.tsv",
    "manifest_summary": "cohort/manifest_summary.tsv",
    "manifest_excluded": "cohort/manifest_excluded.tsv",
    # genetics
    "panel_trio": "genetics/panel/panel",  # PLINK prefix
    "panel_variants": "genetics/panel/panel_variants.tsv",
    "panel_summary": "genetics/panel/extract_summary.json",
    "qc_trio": "genetics/qc/qc",  # PLINK prefix
    "qc_report": "genetics/qc_report.tsv",
    "qc_variants": "genetics/qc/qc_variants.tsv",
    "genotypes": "genetics/genotypes.npz",
    "snps": "genetics/snps.tsv",
    "genes": "genetics/genes.tsv",
    "imputed": "genetics/imputed/fold{k}.npz",
    "snp_text_tokens": "genetics/snp_text_tokens.tsv",
    # splits and data sets
    "folds": "splits/folds.tsv",
    "folds_summary": "splits/folds_summary.tsv",
    "samples": "datasets/{dconfig}/fold{k}/samples.tsv",
    "samples_meta": "datasets/{dconfig}/fold{k}/meta.json",
    "leakage_audit": "datasets/leakage_audit.tsv",
    "leakage_audit_md": "datasets/leakage_audit.md",
    # imaging
    "freesurfer_check": "imaging/freesurfer_check.json",
    "roi_patches": "imaging/rois/{subject}.npy",
    "roi_sidecar": "imaging/rois/{subject}.json",
    "wholebrain": "imaging/wholebrain/{subject}.npy",
    "roi_index": "imaging/roi_index.tsv",
    "wholebrain_index": "imaging/wholebrain_index.tsv",
    "roi_voxel_counts": "imaging/qc/roi_voxel_counts.tsv",
    "imaging_qc": "imaging/qc/imaging_qc.tsv",
    "roi_voxels_by_stage": "imaging/qc/roi_voxels_by_stage.tsv",
    "planted_atrophy": "imaging/qc/planted_atrophy.tsv",
    "roi_montage": "imaging/qc/roi_montage.png",
    # encoders and baselines
    "encoder_checkpoint": "encoders/{encoder}/fold{k}/checkpoint.safetensors",
    "encoder_history": "encoders/{encoder}/fold{k}/history.tsv",
    "encoder_curve": "encoders/{encoder}/fold{k}/curve.png",
    "encoder_predictions": "encoders/{encoder}/fold{k}/predictions.tsv",
    "embeddings": "embeddings/{encoder}/fold{k}.safetensors",
    "gene_tokens": "baselines/gene_tokens/fold{k}.safetensors",
    "baseline_predictions": "baselines/{model}/{dconfig}/fold{k}/predictions.tsv",
    "baseline_checkpoint": "baselines/{model}/{dconfig}/fold{k}/checkpoint.safetensors",
    "baseline_history": "baselines/{model}/{dconfig}/fold{k}/history.tsv",
    # LLM models
    "demo_llm": "llm/base/{backbone}",
    "llm_resource_plan": "llm/plan/{backbone}.json",
    "llm_resource_plan_table": "llm/plan/{backbone}.tsv",
    "llm_checkpoint": "llm/{model}/{dconfig}/fold{k}/checkpoint",
    "llm_history": "llm/{model}/{dconfig}/fold{k}/history.tsv",
    "llm_finetune_summary": "llm/{model}/{dconfig}/fold{k}/finetune.json",
    "llm_predictions": "llm/{model}/{dconfig}/fold{k}/predictions.tsv",
    "llm_predict_summary": "llm/{model}/{dconfig}/fold{k}/predict.json",
    # evaluation
    "metrics_summary": "tables/metrics_summary.tsv",
    "metrics_folds": "tables/metrics_folds.tsv",
    "table": "tables/{name}.{ext}",
    "paper_vs_ours": "tables/paper_vs_ours.md",
    "confusion_dir": "tables/confusion",
    # interpretability
    "attention_dump": "attribution/{model}/{dconfig}/fold{k}/dump.npz",
    "attention_summary": "attribution/{model}/{dconfig}/fold{k}/summary.json",
    "stable_genes": "attribution/{model}/{dconfig}/genes.tsv",
    "stable_rois": "attribution/{model}/{dconfig}/rois.tsv",
    "roi_gene": "attribution/{model}/{dconfig}/roi_gene.tsv",
    "roi_gene_top": "attribution/{model}/{dconfig}/roi_gene_top.tsv",
    "enrichment": "attribution/{model}/{dconfig}/enrichment.tsv",
    "enrichment_md": "attribution/{model}/{dconfig}/enrichment.md",
    "recovery": "attribution/{model}/{dconfig}/recovery.tsv",
    "recovery_md": "attribution/{model}/{dconfig}/recovery.md",
    "selection": "attribution/{model}/{dconfig}/selection.tsv",
    "pair_association": "attribution/pair_association/pairs.tsv",
    "pair_association_top": "attribution/pair_association/top.tsv",
    "null_control_rows": "attribution/null_control/seeds.tsv",
    "null_control": "attribution/null_control/false_positives.tsv",
    "null_control_md": "attribution/null_control/false_positives.md",
    "power": "attribution/power/power.tsv",
    "power_md": "attribution/power/power.md",
    "power_figure": "attribution/power/power.{ext}",
    "power_llm_check": "attribution/{model}/{dconfig}/power_llm_check.tsv",
    "power_llm_check_md": "attribution/{model}/{dconfig}/power_llm_check.md",
    "method_dump": "attribution/{model}/{dconfig}/methods/{method}/fold{k}/dump.npz",
    "method_summary": "attribution/{model}/{dconfig}/methods/{method}/fold{k}/summary.json",
    "method_recovery": "attribution/{model}/{dconfig}/methods/recovery.tsv",
    "method_recovery_md": "attribution/{model}/{dconfig}/methods/recovery.md",
    "faithfulness": "attribution/{model}/{dconfig}/faithfulness.tsv",
    "faithfulness_md": "attribution/{model}/{dconfig}/faithfulness.md",
    # figures
    "figure": "figures/{model}/{dconfig}/figure{n}.{ext}",
    # the report
    "report": "report.html",
}

_WILDCARD = re.compile(r"\{(\w+)\}")


def result_path(name: str, /, **wildcards) -> str:
    """The path of result ``name``, with the given wildcards filled and the others left as ``{wildcard}``.

    Parameters
    ----------
    name : str
        A key of ``TEMPLATES``.
    **wildcards
        Values for some or all of the template's wildcards.

    Returns
    -------
    str
        ``results/<template>``.

    Raises
    ------
    KeyError
        An unknown name, or a wildcard the template does not have.
    """
    template = TEMPLATES[name]
    unknown = set(wildcards) - set(_WILDCARD.findall(template))
    if unknown:
        raise KeyError(f"result {name!r} ({template}) has no wildcard {sorted(unknown)}")
    filled = _WILDCARD.sub(lambda m: str(wildcards[m.group(1)]) if m.group(1) in wildcards else m.group(0), template)
    return f"{RESULTS}/{filled}"


def log_path(family: str, name: str) -> str:
    """``results/logs/<family>/<name>.log`` (``name`` may hold wildcards)."""
    return f"{RESULTS}/logs/{family}/{name}.log" if family else f"{RESULTS}/logs/{name}.log"


def benchmark_path(family: str, name: str) -> str:
    """``results/benchmarks/<family>/<name>.tsv``: Snakemake's time and memory record of one job."""
    return f"{RESULTS}/benchmarks/{family}/{name}.tsv" if family else f"{RESULTS}/benchmarks/{name}.tsv"
