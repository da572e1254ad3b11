# Helpers shared by all rule files: resolved data paths and small config lookups.
import json
import shlex
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


def shell_json(obj):
    """A config value as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(obj, sort_keys=True))
