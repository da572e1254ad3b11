"""Leak check of the synthetic cohort: does any never-planted ROI tell a stage from NC?

The attributions are judged against ``truth.json``: finding a ROI the truth
does not list counts as a false positive. That judgement is only fair if the
ROIs the truth leaves out really carry no stage signal in the data. A
generator fault (lost tissue relabelled into a ROI of its own, an effect the
truth forgets) would make such a ROI separate the stages, and a model that
finds it would be blamed for being right.

:func:`leak_check` takes the ROI volume table the imaging stage already
writes (``imaging/qc/roi_voxel_counts.tsv``: one row per subject, one column
per ROI) and, for every stage against NC, the AUC of each ROI that the truth
lists neither for that stage nor for NC. It reports the best of them, in
either direction (max(AUC, 1 - AUC)), beside the 99th percentile of that best
AUC under shuffled stage labels (how high the best of so many ROIs goes by
chance at these group sizes). A stage is flagged when its best exceeds both
the stated bound (the size of effect that counts as a leak) and that chance
level (so that small groups, where the best of ~95 null ROIs easily reaches
0.7, are not flagged for noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from rgenima_lib.vocabulary import STAGES

LEAK_COLUMNS = ["stage", "n_stage", "n_nc", "n_never_planted", "best_roi", "best_auc", "direction",
                "chance_best_auc", "bound", "leak"]


def planted_rois(truth: dict, stage: str) -> set[str]:
    """ROIs whose expected volume ``truth.json`` says changes in ``stage`` (``stage_rois`` and its ROI-gene pairs)."""
    listed = {entry["roi"] for entry in truth.get("stage_rois", {}).get(stage, [])}
    paired = {p["roi"] for p in truth.get("roi_gene_pairs", []) if stage in p["stages"]}
    return listed | paired


def separation_auc(volumes: np.ndarray, in_stage: np.ndarray) -> np.ndarray:
    """AUC of "smaller volume means the stage", per ROI (Mann-Whitney, ties counted half).

    Parameters
    ----------
    volumes : float[n_subjects, n_rois]
    in_stage : bool[n_subjects]
        True for the stage, False for NC; both groups non-empty.

    Returns
    -------
    float64[n_rois]
        0.5 = no separation; 1 = every stage subject smaller than every NC subject.
    """
    ranks = rankdata(-volumes, axis=0)
    n_stage = int(in_stage.sum())
    n_nc = in_stage.size - n_stage
    return (ranks[in_stage].sum(axis=0) - n_stage * (n_stage + 1) / 2) / (n_stage * n_nc)


def _best_two_sided(auc: np.ndarray) -> int:
    """Index of the ROI furthest from 0.5."""
    return int(np.argmax(np.abs(auc - 0.5)))


def chance_best_auc(volumes: np.ndarray, in_stage: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """99th percentile of the best two-sided AUC over ROIs when the stage labels are shuffled.

    Parameters
    ----------
    volumes : float[n_subjects, n_rois]
    in_stage : bool[n_subjects]
    n_perm : int
    rng : numpy.random.Generator

    Returns
    -------
    float
    """
    best = np.empty(n_perm)
    for k in range(n_perm):
        auc = separation_auc(volumes, rng.permutation(in_stage))
        best[k] = 0.5 + np.abs(auc - 0.5).max()
    # 99 %: three stages share one NC group, so a 95 % level would flag noise in about one cohort in seven.
    return float(np.quantile(best, 0.99))


def leak_check(volumes: pd.DataFrame, stages: pd.Series, truth: dict, bound: float, *,
               n_perm: int = 200, seed: int = 0) -> pd.DataFrame:
    """Best never-planted ROI AUC of every stage against NC.

    Parameters
    ----------
    volumes : DataFrame
        One row per subject: ``subject``, then one column per ROI name (voxel
        counts or mm^3; ``imaging/qc/roi_voxel_counts.tsv``). Every column but
        ``subject`` and ``voxel_volume_mm3`` is taken as a ROI.
    stages : Series
        subject -> stage (NC / SMC / MCI / AD); subjects without a stage are left out.
    truth : dict
        ``truth.json``.
    bound : float
        A stage is flagged when its best never-planted AUC (two-sided) exceeds
        this and its chance level.
    n_perm : int
        Label shuffles for ``chance_best_auc``.
    seed : int

    Returns
    -------
    DataFrame
        :data:`LEAK_COLUMNS`, one row per stage with subjects (SMC, MCI, AD order);
        ``direction`` is "smaller" or "larger" (the stage's volume against NC's).
    """
    roi_names = [c for c in volumes.columns if c not in ("subject", "voxel_volume_mm3")]
    stage = volumes["subject"].map(stages).to_numpy()
    rng = np.random.default_rng(seed)
    nc_planted = planted_rois(truth, "NC")
    rows = []
    for name in STAGES[1:]:
        keep = (stage == name) | (stage == "NC")
        in_stage = stage[keep] == name
        if in_stage.all() or not in_stage.any():
            continue
        never = [r for r in roi_names if r not in planted_rois(truth, name) | nc_planted]
        values = volumes.loc[keep, never].to_numpy(np.float64)
        auc = separation_auc(values, in_stage)
        best = _best_two_sided(auc)
        best_auc = 0.5 + abs(float(auc[best]) - 0.5)
        chance = chance_best_auc(values, in_stage, n_perm, rng)
        rows.append({"stage": name, "n_stage": int(in_stage.sum()), "n_nc": int((~in_stage).sum()),
                     "n_never_planted": len(never), "best_roi": never[best], "best_auc": round(best_auc, 4),
                     "direction": "smaller" if auc[best] >= 0.5 else "larger",
                     "chance_best_auc": round(chance, 4), "bound": bound,
                     "leak": bool(best_auc > bound and best_auc > chance)})
    return pd.DataFrame(rows, columns=LEAK_COLUMNS)
