"""Clinical tables: diagnosis codes, ADNIMERGE-style synthetic tables, and their checks.

ADNIMERGE (the ADNI merged clinical table) carries one row per subject and visit;
the baseline diagnosis ``DX_bl`` uses CN / SMC / EMCI / LMCI / AD. The paper
(section 4.1) stages subjects as NC / SMC / MCI / AD, with EMCI and LMCI pooled
into MCI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError

STAGES: tuple[str, ...] = ("NC", "SMC", "MCI", "AD")
"""The four classes, in the paper's order (also the order of every table)."""

DX_TO_STAGE: dict[str, str] = {
    "CN": "NC", "NC": "NC", "SMC": "SMC",
    "EMCI": "MCI", "LMCI": "MCI", "MCI": "MCI",
    "AD": "AD", "DEMENTIA": "AD",
}
"""ADNIMERGE ``DX_bl`` codes (and the DX spellings of later ADNI phases) to stages."""

# Paper section 4.1: 1,998 ADNI subjects with age mean ± sd and number of women per stage.
PAPER_STAGE_COUNTS = {"NC": 644, "SMC": 100, "MCI": 916, "AD": 338}
PAPER_AGE = {"NC": (73.29, 6.16), "SMC": (72.33, 5.67), "MCI": (73.06, 7.57), "AD": (74.99, 7.92)}
PAPER_FEMALE = {"NC": 349, "SMC": 59, "MCI": 370, "AD": 149}

REQUIRED_CLINICAL_COLUMNS = ("PTID", "DX_bl")


def stage_counts(n_subjects: int, proportions: dict[str, int] | None = None) -> dict[str, int]:
    """Split ``n_subjects`` over the stages in the paper's proportions.

    Largest-remainder rounding, with at least one subject per stage whenever
    ``n_subjects >= 4`` so that every class exists even in a tiny demo.

    Parameters
    ----------
    n_subjects : int
        Cohort size.
    proportions : dict, optional
        Stage -> weight; defaults to the paper's 644 / 100 / 916 / 338.

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
    if n_subjects >= len(STAGES):
        while (counts == 0).any():
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


def baseline_stages(clinical: pd.DataFrame, *, path: str = "clinical table") -> tuple[pd.DataFrame, list[str]]:
    """Baseline rows of a clinical table, with DX_bl mapped to the four stages.

    Parameters
    ----------
    clinical : DataFrame
        ADNIMERGE-style table; needs PTID and DX_bl; VISCODE, when present,
        selects the baseline rows (``bl``).
    path : str
        The table's file name, for error messages.

    Returns
    -------
    table : DataFrame
        One row per subject: subject, dx_bl, stage, and age / sex when present.
    excluded : list of str
        Subjects left out because their DX_bl is blank, one message each.

    Raises
    ------
    InputDataError
        A required column is missing, a subject has two baseline rows, or a
        diagnosis code is not one of ``DX_TO_STAGE``.
    """
    missing = [c for c in REQUIRED_CLINICAL_COLUMNS if c not in clinical.columns]
    if missing:
        raise InputDataError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, clinical.columns))}.",
            path=path, fix="export ADNIMERGE with its PTID and DX_bl columns.")
    table = clinical
    if "VISCODE" in table.columns:
        table = table[table["VISCODE"].astype(str).str.strip() == "bl"]
    table = table.assign(PTID=table["PTID"].astype(str).str.strip())
    dup = table["PTID"][table["PTID"].duplicated()].unique().tolist()
    if dup:
        raise InputDataError(
            f"duplicate subject ID(s) among baseline rows: {', '.join(dup[:10])}.",
            path=path, subject=dup[0], fix="keep one baseline (VISCODE 'bl') row per subject.")
    excluded = []
    stages = []
    keep = []
    for ptid, dx in zip(table["PTID"], table["DX_bl"]):
        if pd.isna(dx) or str(dx).strip() == "":
            excluded.append(f"{ptid}: blank DX_bl, excluded")
            keep.append(False)
            stages.append(None)
            continue
        code = str(dx).strip().upper()
        if code not in DX_TO_STAGE:
            raise InputDataError(
                f"unknown diagnosis code {dx!r} in DX_bl; known codes: {', '.join(sorted(DX_TO_STAGE))}.",
                path=path, subject=ptid,
                fix="correct the code, or extend DX_TO_STAGE in rgenima_lib/cohort/clinical.py if it is a valid ADNI code.")
        keep.append(True)
        stages.append(DX_TO_STAGE[code])
    out = pd.DataFrame({"subject": table["PTID"].to_numpy(), "dx_bl": table["DX_bl"].to_numpy(), "stage": stages})
    if "AGE" in table.columns:
        out["age"] = pd.to_numeric(table["AGE"], errors="coerce").to_numpy()
    if "PTGENDER" in table.columns:
        out["sex"] = table["PTGENDER"].to_numpy()
    return out[np.asarray(keep, bool)].reset_index(drop=True), excluded
