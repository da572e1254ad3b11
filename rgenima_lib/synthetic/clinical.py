"""The synthetic cohort's clinical side: stage counts, ADNI-style IDs, an ADNIMERGE-style table.

Subjects are drawn in the proportions, ages and sex ratios the paper reports
for its 1,998 ADNI subjects (section 4.1), and written the way ADNIMERGE (the
ADNI merged clinical table) is: one baseline row per subject, ``DX_bl`` in
CN / SMC / EMCI / LMCI / AD. :mod:`rgenima_lib.cohort.clinical` reads such
tables back, as it reads a user's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.vocabulary import STAGES

# Paper section 4.1: 1,998 ADNI subjects with age mean ± sd and number of women per stage.
PAPER_STAGE_COUNTS = {"NC": 644, "SMC": 100, "MCI": 916, "AD": 338}
PAPER_AGE = {"NC": (73.29, 6.16), "SMC": (72.33, 5.67), "MCI": (73.06, 7.57), "AD": (74.99, 7.92)}
PAPER_FEMALE = {"NC": 349, "SMC": 59, "MCI": 370, "AD": 149}


def stage_counts(n_subjects: int, proportions: dict[str, int] | None = None,
                 min_per_stage: int = 1) -> dict[str, int]:
    """Split ``n_subjects`` over the stages in the paper's proportions.

    Largest-remainder rounding, with at least ``min_per_stage`` subjects per
    stage (at most ``n_subjects // 4``) so that every class exists even in a
    tiny demo, and small classes (SMC is 5 % in the paper) keep enough
    subjects to be learnt and checked.

    Parameters
    ----------
    n_subjects : int
        Cohort size.
    proportions : dict, optional
        Stage -> weight; defaults to the paper's 644 / 100 / 916 / 338.
    min_per_stage : int
        Floor per stage; the subjects it adds are taken from the largest stages.

    Returns
    -------
    dict
        Stage -> count, summing to ``n_subjects``.
    """
    weights = np.array([(proportions or PAPER_STAGE_COUNTS)[s] for s in STAGES], float)
    exact = n_subjects * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_subjects - counts.sum()]] += 1
    floor = min(max(min_per_stage, 1), n_subjects // len(STAGES))
    if floor > 0:
        while (counts < floor).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    return dict(zip(STAGES, counts.tolist()))


def make_ptids(n_subjects: int, rng: np.random.Generator) -> list[str]:
    """ADNI-style subject IDs ``SSS_S_RRRR`` (site, roster ID), unique and sorted by RID.

    Parameters
    ----------
    n_subjects : int
    rng : numpy.random.Generator

    Returns
    -------
    list of str, length ``n_subjects``.
    """
    sites = rng.choice(np.arange(2, 942), size=min(60, n_subjects), replace=False)
    rids = np.sort(rng.choice(np.arange(2, 10000), size=n_subjects, replace=False))
    return [f"{sites[i % len(sites)]:03d}_S_{rid:04d}" for i, rid in enumerate(rids)]


def make_clinical_table(ptids: list[str], stages: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """An ADNIMERGE-style baseline table for synthetic subjects.

    Parameters
    ----------
    ptids : list of str, length n
    stages : str[n]
        NC / SMC / MCI / AD per subject.
    rng : numpy.random.Generator

    Returns
    -------
    DataFrame with columns RID, PTID, VISCODE ('bl'), DX_bl (CN / SMC / EMCI /
    LMCI / AD, MCI split evenly into EMCI and LMCI), AGE, PTGENDER, drawn per
    stage from the paper's age and sex figures.
    """
    stages = np.asarray(stages)
    n = len(ptids)
    age = np.empty(n)
    female = np.empty(n, bool)
    dx = np.empty(n, object)
    for stage in STAGES:
        idx = np.flatnonzero(stages == stage)
        mean, sd = PAPER_AGE[stage]
        age[idx] = np.clip(rng.normal(mean, sd, idx.size), 55.0, 92.0)
        female[idx] = rng.random(idx.size) < PAPER_FEMALE[stage] / PAPER_STAGE_COUNTS[stage]
        if stage == "MCI":
            dx[idx] = np.where(rng.random(idx.size) < 0.5, "EMCI", "LMCI")
        else:
            dx[idx] = {"NC": "CN", "SMC": "SMC", "AD": "AD"}[stage]
    return pd.DataFrame({
        "RID": [int(p.split("_")[-1]) for p in ptids],
        "PTID": ptids,
        "VISCODE": "bl",
        "DX_bl": dx,
        "AGE": np.round(age, 1),
        "PTGENDER": np.where(female, "Female", "Male"),
    })
