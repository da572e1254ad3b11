# Helpers shared by all rules/*.smk files, which hold workflow steps only (every Python function lives here):
# resolved data paths, small config lookups, and the input / params functions of each stage, grouped below by
# stage. The stage helpers read that stage's constants (LLM, ENCODER_INDEX, ATTR, ...), which its own .smk file
# defines; they are looked up when a helper is called, i.e. after that file has been included.
import copy
import json
import os
from pathlib import Path

from rgenima_lib.cohort.layout import CohortLayout


def resolved_data_paths():
    """The cohort's input paths: the synthetic cohort's when enabled, else the user's `data` section."""
    if config["synthetic"]["enabled"]:
        layout = CohortLayout(Path(config["synthetic"]["out_dir"]))
        return {
            "clinical": str(layout.clinical),
            "genotypes": str(layout.genotypes),
            "bids_dir": str(layout.bids_dir),
            "freesurfer_subjects_dir": str(layout.freesurfer_dir),
        }
    data = config["data"]
    missing = [key for key in ("clinical", "genotypes") if not data.get(key)]
    if missing:
        raise WorkflowError(
            f"config: data.{missing[0]} is not set. Point data.clinical / data.genotypes / "
            "data.bids_dir / data.freesurfer_subjects_dir at your ADNI export in config/config.yaml, "
            "or run the synthetic demo with --configfile config/demo.yaml."
        )
    if not data.get("bids_dir") and not data.get("freesurfer_subjects_dir"):
        raise WorkflowError("config: set data.bids_dir (T1 images) or data.freesurfer_subjects_dir (precomputed FreeSurfer).")
    return dict(data)


DATA = resolved_data_paths()

# Fold indices 0..K-1 of the subject-level splits; every per-fold output uses them.
FOLDS = list(range(config["split"]["n_folds"]))


def conda_env(family):
    """The env file of a rule family (used under --sdm conda; envs/ sits beside workflow/)."""
    return f"../../envs/{family}.yaml"


# Final outputs of each stage family; `rule all` asks for all of them.
ALL_TARGETS = []


def settings_json(obj):
    """A config section as one JSON argument (key-sorted, so the same config gives the same command line).

    Shell directives quote it with ``{params.settings:q}``, like every other placeholder.
    """
    return json.dumps(obj, sort_keys=True)


# --- Encoders and baselines (encoders.smk) ------------------------------------------------------------------


def _merged(defaults, given):
    """defaults with the config's values laid over them, one level of dicts deep at a time."""
    out = copy.deepcopy(defaults)
    for key, value in (given or {}).items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _baseline_image_encoder(model):
    """The image encoder ("rit" / "med3d") a baseline model ID uses, or None for the gene-only baselines."""
    return "rit" if "_rit_" in model else "med3d" if "_med3d_" in model else None


def _baseline_inputs(w):
    """Input files of one baseline run: samples, plus imputed genotypes (MLP) or gene tokens, plus embeddings."""
    inputs = {"samples": f"results/datasets/{w.dconfig}/fold{w.k}/samples.tsv"}
    if w.model == "mlp":
        inputs["imputed"] = f"results/genetics/imputed/fold{w.k}.npz"
    else:
        inputs["gene_tokens"] = f"results/baselines/gene_tokens/fold{w.k}.safetensors"
    encoder = _baseline_image_encoder(w.model)
    if encoder:
        inputs["embeddings"] = f"results/embeddings/{encoder}/fold{w.k}.safetensors"
    return inputs


def _baseline_args(w, input):
    """The command-line options of the optional baseline inputs that this run has, one list item per word."""
    names = {"imputed": "--imputed", "gene_tokens": "--gene-tokens", "embeddings": "--embeddings"}
    return [word for key, flag in names.items() if key in input.keys() for word in (flag, getattr(input, key))]


# --- LLM models (llm.smk; reads LLM, LLM_DIR, TABLE1_LLM_VARIANTS) ------------------------------------------


def llm_model_id(backbone, variant):
    """The model ID of a backbone and variant ("snp", "med3d" or "rit")."""
    return {"snp": backbone, "med3d": f"{backbone}_med3d", "rit": f"rgenima_{backbone}"}[variant]


def llm_model_parts(model):
    """(backbone, visual encoder or None) of a model ID."""
    if model.startswith("rgenima_"):
        return model[len("rgenima_"):], "rit"
    if model.endswith("_med3d"):
        return model[: -len("_med3d")], "med3d"
    return model, None


def llm_models(dconfig):
    """The LLM models of Table 1 trained on a data configuration."""
    return [llm_model_id(b, v) for v in TABLE1_LLM_VARIANTS.get(dconfig, []) for b in LLM["backbones"]]


def base_llm_path(backbone):
    """The backbone's local weights, or the demo LLM this workflow builds."""
    path = LLM["backbones"][backbone].get("model_path")
    if path:
        return path
    if not LLM["demo"]["enabled"]:
        raise WorkflowError(
            f"config: llm.backbones.{backbone}.model_path is not set. Point it at a local folder of the "
            "model's weights (nothing is downloaded), or set llm.demo.enabled: true for a random-init demo LLM."
        )
    return f"{LLM_DIR}/base/{backbone}"


def embeddings_input(wildcards):
    """The visual encoder's embeddings of the fold as a named input, or nothing for SNP-only models."""
    encoder = llm_model_parts(wildcards.model)[1]
    return {} if encoder is None else {"embeddings": f"results/embeddings/{encoder}/fold{wildcards.k}.safetensors"}


def embeddings_arg(wildcards, input):
    """The --embeddings option when the job has an embeddings input, else nothing."""
    return ["--embeddings", input.embeddings] if "embeddings" in input.keys() else []


# --- Evaluation (evaluate.smk; reads ENCODER_INDEX, BASELINE_RUNS, LLM_DIR, LLM_RUNS, LLM) ------------------


def table1_predictions():
    """(data configuration, model ID, fold, path) of every prediction table that feeds Tables 1-5."""
    runs = [("image_only", e, k, f"results/encoders/{e}/fold{k}/predictions.tsv") for e in ENCODER_INDEX for k in FOLDS]
    runs += [(d, m, k, f"results/baselines/{m}/{d}/fold{k}/predictions.tsv") for m, d in BASELINE_RUNS for k in FOLDS]
    runs += [(d, m, k, f"{LLM_DIR}/{m}/{d}/fold{k}/predictions.tsv") for m, d in LLM_RUNS for k in FOLDS]
    return runs


def evaluation_note():
    """The note the tables carry: synthetic cohort and / or demo LLM rows; empty on ADNI with real LLMs."""
    parts = []
    if config["synthetic"]["enabled"]:
        parts.append("synthetic cohort (planted truth), not ADNI")
    if LLM["demo"]["enabled"] and not all(b.get("model_path") for b in LLM["backbones"].values()):
        parts.append("LLM rows: demo model, random init")
    return "; ".join(parts)


# --- Interpretability (attribution.smk; reads ATTR, ATTRIBUTION) --------------------------------------------


def attribution_dumps(wildcards):
    """The dumps of every fold of one model: the test subjects of all folds, each once."""
    return expand(f"{ATTRIBUTION}/{{model}}/{{dconfig}}/fold{{k}}/dump.npz", model=wildcards.model,
                  dconfig=wildcards.dconfig, k=FOLDS)


def bootstrap_args():
    """Options shared by the three bootstrap rules."""
    draw = ["--n-draw", ATTR["bootstrap_draw"]] if ATTR["bootstrap_draw"] else []
    return ["--n-boot", ATTR["n_bootstrap"], *draw, "--seed", config["seed"]]


def produced_by_workflow(path):
    """True if a rule included so far makes ``path``."""
    return any(rule.is_producer(path) for rule in workflow.rules)


# --- Figures (figures.smk; reads ATTR, ATTR_MODELS) ---------------------------------------------------------


def figure_caption():
    """One line under each figure's title: the bootstrap settings."""
    return (f"B = {ATTR['n_bootstrap']} resamples, top {ATTR['top_rois']} ROIs per resample ({ATTR['roi_score']}), "
            f"stable if selected in > {ATTR['stable_frequency']:.0%}; sink {ATTR['sink']}")

