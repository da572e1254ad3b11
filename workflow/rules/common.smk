# Everything the other .smk files share, in one place. The config's sections and what follows from them, the model
# runs of Table 1, the input / params functions of every stage and get_final_output() all live here; the Snakefile
# constrains every wildcard once. The other files hold workflow steps only, define no globals, and read only what
# this file defines. Result paths come from one path builder, rgenima_lib.result_paths.result_path (R below).
import json
from pathlib import Path

from snakemake.logging import logger

from rgenima_lib.attribution.methods import ENCODER_METHODS, METHODS as ATTRIBUTION_METHODS
from rgenima_lib.cohort.layout import CohortLayout, bids_t1w_path
from rgenima_lib.imaging.freesurfer import recon_all_command
from rgenima_lib.imaging.layout import freesurfer_file, freesurfer_job_inputs, imaging_subjects
from rgenima_lib.models.backbones import backbone_config_error, demo_arch
from rgenima_lib.model_ids import ENCODERS, llm_model_id, llm_model_parts, model_wildcard, visual_encoder
from rgenima_lib.result_paths import benchmark_path, log_path
from rgenima_lib.result_paths import result_path as R
from rgenima_lib.train.resource_plan import ModelShape, PlanSettings, check_plan, make_plan

# --- Inputs --------------------------------------------------------------------------------------------------


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


def freesurfer_subjects_dir():
    """SUBJECTS_DIR the imaging rules read: the user's (precomputed) or the one recon_all writes."""
    if config["freesurfer"]["mode"] == "precomputed":
        if not DATA.get("freesurfer_subjects_dir"):
            raise WorkflowError(
                "config: freesurfer.mode is 'precomputed' but data.freesurfer_subjects_dir is not set. Point it at "
                "your SUBJECTS_DIR (one folder per PTID), or set freesurfer.mode: recon_all with data.bids_dir."
            )
        return DATA["freesurfer_subjects_dir"]
    if not DATA.get("bids_dir"):
        raise WorkflowError(
            "config: freesurfer.mode is 'recon_all' but data.bids_dir (the T1 images) is not set. Set it, or use "
            "freesurfer.mode: precomputed with data.freesurfer_subjects_dir."
        )
    return config["freesurfer"]["subjects_dir"]


DATA = resolved_data_paths()
SYNTHETIC = config["synthetic"]["enabled"]
TRUTH = str(CohortLayout(Path(config["synthetic"]["out_dir"])).truth)
# Fold indices 0..K-1 of the subject-level splits; every per-fold output uses them.
FOLDS = list(range(config["split"]["n_folds"]))

GEN = config["genetics"]
PLINK = GEN["plink"]
DS = config["datasets"]
SPLIT = config["split"]
IMG = config["imaging"]
FS_MODE = config["freesurfer"]["mode"]
SUBJECTS_DIR = freesurfer_subjects_dir()
LLM = config["llm"]
if backbone_config_error(LLM):
    raise WorkflowError(backbone_config_error(LLM))
ATTR = config["attribution"]


def train_settings(dconfig=None):
    """The ``train`` section for the fine-tuning runs of one data configuration (``train.by_data_config``)."""
    section = {k: v for k, v in config["train"].items() if k != "by_data_config"}
    return {**section, **config["train"]["by_data_config"].get(dconfig, {})} if dconfig else section


def check_resource_plans():
    """Refuse, before any job starts, fine-tuning that cannot fit its GPUs (backbones with local weights).

    Rule resource_plan repeats the check as a job and writes the figures; this one stops the workflow while it
    is planned, so a GPU cluster gets no jobs at all (demo LLMs are built by the workflow: the rule checks them).
    """
    if not LLM["gpus_per_finetune"]:
        return
    for name, backbone in LLM["backbones"].items():
        config_json = Path(backbone.get("model_path") or "") / "config.json"
        if backbone.get("model_path") and config_json.is_file():
            settings = PlanSettings.from_sections(train_settings(), LLM["plan"], gpus=LLM["gpus_per_finetune"],
                                                  attn_implementation=LLM["attn_implementation"])
            try:
                check_plan(make_plan(ModelShape.from_model_folder(config_json), settings, model=name),
                           path=config_json)
            except ValueError as exc:
                raise WorkflowError(f"config: {exc}") from exc


check_resource_plans()


def conda_env(family):
    """The env file of a rule family (used under --sdm conda; envs/ sits beside workflow/)."""
    return f"../../envs/{family}.yaml"


def settings_json(obj):
    """A config section as one JSON argument (key-sorted, so the same config gives the same command line).

    Shell directives quote it with ``{params.settings:q}``, like every other placeholder.
    """
    return json.dumps(obj, sort_keys=True)


# --- Imaging (imaging.smk) -----------------------------------------------------------------------------------


def imaged_subjects(wildcards):
    """The manifest's subjects with an image usable in this FreeSurfer mode (after the manifest checkpoint)."""
    return imaging_subjects(checkpoints.manifest.get().output.manifest, FS_MODE)


# --- Encoders and baselines (encoders.smk) ------------------------------------------------------------------
# Settings: config sections `encoders` and `baselines`, every default in the config schema.

ENC = config["encoders"]
BASE = config["baselines"]
# The imaging index each stage-1 encoder reads.
ENCODER_INDEX = {"rit": R("roi_index"), "med3d": R("wholebrain_index")}
# (model, data configuration) of every baseline run, in Table 1 order (the schema fills in a configuration the
# config leaves out after those it gives).
BASELINE_RUNS = [(m, d) for d in ("gene_only", "image_gene") for m in BASE["runs"][d]]


def baseline_inputs(w):
    """Input files of one baseline run: samples, plus imputed genotypes (MLP) or gene tokens, plus embeddings."""
    inputs = {"samples": R("samples", dconfig=w.dconfig, k=w.k)}
    if w.model == "mlp":
        inputs["imputed"] = R("imputed", k=w.k)
    else:
        inputs["gene_tokens"] = R("gene_tokens", k=w.k)
    encoder = visual_encoder(w.model)
    if encoder:
        inputs["embeddings"] = R("embeddings", encoder=encoder, k=w.k)
    return inputs


def baseline_args(w, input):
    """The command-line options of the optional baseline inputs that this run has, one list item per word."""
    names = {"imputed": "--imputed", "gene_tokens": "--gene-tokens", "embeddings": "--embeddings"}
    return [word for key, flag in names.items() if key in input.keys() for word in (flag, getattr(input, key))]


def gene_token_samples(w):
    """The sample tables of fold k whose texts the BERT baselines read."""
    return sorted({R("samples", dconfig=d, k=w.k) for m, d in BASELINE_RUNS if m != "mlp"})


# --- LLM models (llm.smk) -----------------------------------------------------------------------------------

# Which LLM variants run on which data configuration follows the paper's Table 1.
TABLE1_LLM_VARIANTS = {"gene_only": ["snp"], "image_gene": ["med3d", "rit"], "mixture": ["med3d", "rit"]}


def llm_models(dconfig):
    """The LLM models of Table 1 trained on a data configuration."""
    return [llm_model_id(b, v) for v in TABLE1_LLM_VARIANTS.get(dconfig, []) for b in LLM["backbones"]]


LLM_RUNS = [(m, d) for d in DS["configs"] for m in llm_models(d)]


def base_llm_path(backbone):
    """The backbone's local weights, or the demo LLM this workflow builds."""
    if backbone not in LLM["backbones"]:
        raise WorkflowError(f"config: no backbone {backbone!r} in llm.backbones (known: {', '.join(LLM['backbones'])}).")
    path = LLM["backbones"][backbone].get("model_path")
    if path:
        return path
    if not LLM["demo"]["enabled"]:
        raise WorkflowError(
            f"config: llm.backbones.{backbone}.model_path is not set. Point it at a local folder of the "
            "model's weights (nothing is downloaded), or set llm.demo.enabled: true for a random-init demo LLM."
        )
    return R("demo_llm", backbone=backbone)


def embeddings_input(wildcards):
    """The visual encoder's embeddings of the fold as a named input, or nothing for SNP-only models."""
    encoder = visual_encoder(wildcards.model)
    return {} if encoder is None else {"embeddings": R("embeddings", encoder=encoder, k=wildcards.k)}


def embeddings_arg(wildcards, input):
    """The --embeddings option when the job has an embeddings input, else nothing."""
    return ["--embeddings", input.embeddings] if "embeddings" in input.keys() else []


# --- Evaluation (evaluate.smk) ------------------------------------------------------------------------------

TABLE_NAMES = ["table1", "table2", "table3", "table4", "table5"]


def table1_predictions():
    """(data configuration, model ID, fold, path) of every prediction table that feeds Tables 1-5."""
    runs = [("image_only", e, k, R("encoder_predictions", encoder=e, k=k)) for e in ENCODER_INDEX for k in FOLDS]
    runs += [(d, m, k, R("baseline_predictions", model=m, dconfig=d, k=k)) for m, d in BASELINE_RUNS for k in FOLDS]
    runs += [(d, m, k, R("llm_predictions", model=m, dconfig=d, k=k)) for m, d in LLM_RUNS for k in FOLDS]
    return runs


def evaluation_note():
    """The note the tables carry: synthetic cohort and / or demo LLM rows; empty on ADNI with real LLMs."""
    parts = []
    if SYNTHETIC:
        parts.append("synthetic cohort (planted truth), not ADNI")
    if LLM["demo"]["enabled"] and not all(b.get("model_path") for b in LLM["backbones"].values()):
        parts.append("LLM rows: demo model, random init")
    return "; ".join(parts)


# --- Interpretability and figures (attribution.smk, figures.smk) --------------------------------------------

# R-GenIMA models (LLM + RiT) to attribute: the config's list, or every backbone's.
ATTR_MODELS = ATTR["models"] if ATTR["models"] is not None else [llm_model_id(b, "rit") for b in LLM["backbones"]]
ATTR_DCONFIG = ATTR["dconfig"]


def gene_attribution_model(model):
    """(model, data configuration) whose dumps give ``model``'s genes in the recovery (attribution.genes_from).

    The R-GenIMA itself, or its backbone's gene-only LLM on gene_only: there the genes are the model's only input,
    so a model that predicts well must read them (the positive control, docs/validation.md).
    """
    if ATTR["genes_from"] == "gene_only":
        return llm_model_id(llm_model_parts(model)[0], "snp"), "gene_only"
    return model, ATTR_DCONFIG


def gene_recovery_input(name):
    """An input function: output ``name`` (stable_genes, selection) of the model that gives the recovery's genes."""

    def inputs(wildcards):
        model, dconfig = gene_attribution_model(wildcards.model)
        return R(name, model=model, dconfig=dconfig)

    return inputs


def attribution_dumps(wildcards):
    """The dumps of every fold of one model: the test subjects of all folds, each once."""
    return [R("attention_dump", model=wildcards.model, dconfig=wildcards.dconfig, k=k) for k in FOLDS]


def gene_attribution_dumps(wildcards):
    """The dumps of every fold of the model that gives the recovery's genes (:func:`gene_attribution_model`)."""
    model, dconfig = gene_attribution_model(wildcards.model)
    return [R("attention_dump", model=model, dconfig=dconfig, k=k) for k in FOLDS]


def attribution_method(wildcards):
    """The method of an attribution job: its ``method`` wildcard (rule attribute_method), else attribution.method."""
    return wildcards.get("method", ATTR["method"])


def attribution_encoder_input(wildcards):
    """The fold's RiT checkpoint and the ROI index: what the gradient methods run on a model that reads ROI tokens."""
    if attribution_method(wildcards) not in ENCODER_METHODS or visual_encoder(wildcards.model) is None:
        return {}
    return {"rit_checkpoint": R("encoder_checkpoint", encoder="rit", k=wildcards.k), "roi_index": R("roi_index")}


def method_dumps(wildcards):
    """Every compared method's dumps of one model, fold by fold, method by method (rule method_recovery).

    attribution.method's own are the pipeline's dumps (rule attribute), not a second run of the same attribution.
    """
    return [R("attention_dump", model=wildcards.model, dconfig=wildcards.dconfig, k=k) if m == ATTR["method"] else
            R("method_dump", model=wildcards.model, dconfig=wildcards.dconfig, method=m, k=k)
            for m in ATTR["compare_methods"] for k in FOLDS]


def attribution_encoder_arg(wildcards, input):
    """--rit-checkpoint / --roi-index when the job has them as inputs, else nothing."""
    if "rit_checkpoint" not in input.keys():
        return []
    return ["--rit-checkpoint", input.rit_checkpoint, "--roi-index", input.roi_index]


def bootstrap_args():
    """Options shared by the three bootstrap rules."""
    draw = ["--n-draw", ATTR["bootstrap_draw"]] if ATTR["bootstrap_draw"] else []
    return ["--n-boot", ATTR["n_bootstrap"], *draw, "--seed", config["seed"]]


def figure_caption():
    """One line under each figure's title: the bootstrap settings."""
    return (f"B = {ATTR['n_bootstrap']} resamples, top {ATTR['top_rois']} ROIs per resample ({ATTR['roi_score']}), "
            f"stable if selected in > {ATTR['stable_frequency']:.0%}; sink {ATTR['sink']}")


def attribution_upstream():
    """What the attention dumps need from the LLM and encoder rules: the fine-tuned checkpoints, the RiT tokens."""
    return [R("llm_checkpoint", model=m, dconfig=d, k=0)
            for model in ATTR_MODELS for m, d in sorted({(model, ATTR_DCONFIG), gene_attribution_model(model)})] + [
        R("embeddings", encoder="rit", k=0)
    ]


# --- The final outputs ----------------------------------------------------------------------------------------


def produced_by_workflow(path):
    """True if a rule of the workflow makes ``path``."""
    return any(rule.is_producer(path) for rule in workflow.rules)


def get_final_output(wildcards=None):
    """Every final output of the pipeline, stage by stage: what `rule all` asks for."""
    targets = [R("manifest"), R("manifest_summary")]
    targets += [R(name) for name in ("qc_report", "snps", "genes", "snp_text_tokens")]
    targets += [R("imputed", k=k) for k in FOLDS]
    targets += [R("folds"), *[R("samples", dconfig=d, k=k) for d in DS["configs"] for k in FOLDS], R("leakage_audit")]
    targets += [R(name) for name in ("roi_index", "wholebrain_index", "imaging_qc", "roi_montage")]
    targets += [R("embeddings", encoder=e, k=k) for e in ENCODERS for k in FOLDS]
    targets += [R("encoder_curve", encoder=e, k=k) for e in ENCODERS for k in FOLDS]
    targets += [R("baseline_predictions", model=m, dconfig=d, k=k) for m, d in BASELINE_RUNS for k in FOLDS]
    targets += [R("llm_predictions", model=m, dconfig=d, k=k) for m, d in LLM_RUNS for k in FOLDS]
    targets += [R("table", name=name, ext="md") for name in TABLE_NAMES] + [R("paper_vs_ours")]
    # The dumps need the fine-tuned checkpoints and the RiT embeddings; while no rule makes them (a model or data
    # configuration left out of the runs) the attribution outputs stay out of `all`, and a warning says so.
    missing = [p for p in attribution_upstream() if not produced_by_workflow(p)]
    if missing:
        logger.warning(f"attribution: no rule makes {' / '.join(missing)}; the attribution tables and Figures 1-2 "
                       "are left out of `all`.")
        return targets
    # The null control and the power simulation are targets of their own (rules null_control, power): minutes each.
    targets.append(R("pair_association_top"))
    for model in ATTR_MODELS:
        tables = ["stable_genes", "stable_rois", "roi_gene_top", "enrichment", "enrichment_md", "selection",
                  "faithfulness_md"]
        tables += ["recovery_md"] if SYNTHETIC else []
        targets += [R(name, model=model, dconfig=ATTR_DCONFIG) for name in tables]
        targets += [R("figure", model=model, dconfig=ATTR_DCONFIG, n=n, ext=ext) for n in (1, 2) for ext in ("png", "pdf")]
    return targets


def validation_targets(wildcards=None):
    """What the positive control checks (target validate, config/validate.yaml): each attributed model's recovery."""
    names = ("recovery", "recovery_md") + (("method_recovery", "method_recovery_md") if ATTR["compare_methods"] else ())
    targets = [R(name, model=m, dconfig=ATTR_DCONFIG) for m in ATTR_MODELS for name in names]
    # the power model's ranking checked against the LLM that gives the genes, at the cohort's N
    return targets + [R(name, model=model, dconfig=dconfig) for model, dconfig in
                      sorted({gene_attribution_model(m) for m in ATTR_MODELS})
                      for name in ("power_llm_check", "power_llm_check_md")]
