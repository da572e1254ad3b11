"""Subject-level, stage-stratified K-fold splits, made once from the manifest (docs/design.md, "Subject-level splits").

Every later stage (encoder pretraining, imputation, data sets, fine-tuning,
evaluation) reads the same ``folds.tsv``: fold k's test subjects are those with
``fold == k``, its training subjects all others. A subject is in exactly one
test fold.

Stratification is by stage *and* modality availability (genotype, image), so
that each fold holds the paper's class proportions in every data
configuration (gene-only, image-gene, mixture), not only overall. Inside each
stratum the subjects are shuffled (seeded) and dealt to the folds in turn,
continuing where the previous stratum stopped, so fold sizes differ by at most
one overall and within each stratum.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.vocabulary import STAGES

log = logging.getLogger("rgenima")

FOLD_COLUMNS = ["subject", "stage", "has_genotype", "has_image", "fold"]


def deal_folds(strata: pd.Series, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified fold labels by shuffling each stratum and dealing round-robin.

    Parameters
    ----------
    strata : Series, length n
        Stratum label per item (any hashable); strata are visited in sorted order.
    n_folds : int
    rng : numpy.random.Generator

    Returns
    -------
    int64[n] fold per item, in 0 .. n_folds-1.
    """
    folds = np.empty(len(strata), dtype=np.int64)
    labels = strata.to_numpy()
    at = 0
    for value in sorted(pd.unique(labels), key=str):
        idx = np.flatnonzero(labels == value)
        idx = idx[rng.permutation(idx.size)]
        folds[idx] = (at + np.arange(idx.size)) % n_folds
        at += idx.size
    return folds


def make_subject_folds(manifest: pd.DataFrame, n_folds: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Assign every manifest subject to one of ``n_folds`` test folds.

    Parameters
    ----------
    manifest : DataFrame
        ``results/cohort/manifest.tsv`` (subject, stage, has_genotype, has_image).
        ``has_image`` is the manifest's "enters the image-gene configurations"
        flag (ROI patches and whole-brain input both exist, in the run's
        FreeSurfer mode); a subject with only a T1 in precomputed mode has
        ``has_image`` false and is gene-only here.
    n_folds : int
        K (paper: not stated; default 5).
    seed : int
        The config seed.

    Returns
    -------
    folds : DataFrame
        ``FOLD_COLUMNS``, one row per subject in manifest order.
    notes : list of str
        Stages with fewer subjects than folds (some test folds lack them).

    Raises
    ------
    InputDataError
        Fewer subjects than folds, or duplicate subjects.
    """
    if manifest["subject"].duplicated().any():
        raise InputDataError("the manifest lists a subject twice.", path="manifest",
                             fix="rebuild the manifest (rule manifest).")
    if len(manifest) < n_folds:
        raise InputDataError(f"{len(manifest)} subjects cannot fill {n_folds} folds.", path="manifest",
                             fix="lower split.n_folds or add subjects.")
    table = manifest[["subject", "stage", "has_genotype", "has_image"]].copy().reset_index(drop=True)
    table["has_genotype"] = table["has_genotype"].astype(bool)
    table["has_image"] = table["has_image"].astype(bool)
    strata = (table["stage"].map({s: i for i, s in enumerate(STAGES)}).astype(str) + "|"
              + table["has_genotype"].astype(int).astype(str) + table["has_image"].astype(int).astype(str))
    rng = np.random.default_rng([int(seed), 0x5EED5])
    table["fold"] = deal_folds(strata, n_folds, rng)
    counts = table["stage"].value_counts()
    notes = [f"stage {s} has {int(counts.get(s, 0))} subjects for {n_folds} folds: some test folds lack it"
             for s in STAGES if counts.get(s, 0) < n_folds]
    return table[FOLD_COLUMNS], notes


def fold_summary(folds: pd.DataFrame) -> pd.DataFrame:
    """Test subjects per fold and stage, with the modality counts of each data configuration.

    Returns
    -------
    DataFrame fold, stage (stages then 'all'), subjects, with_genotype, with_image, with_both.
    """
    rows = []
    for k in sorted(folds["fold"].unique()):
        f = folds[folds["fold"] == k]
        for stage in [*STAGES, "all"]:
            s = f if stage == "all" else f[f["stage"] == stage]
            rows.append({"fold": int(k), "stage": stage, "subjects": len(s),
                         "with_genotype": int(s["has_genotype"].sum()), "with_image": int(s["has_image"].sum()),
                         "with_both": int((s["has_genotype"] & s["has_image"]).sum())})
    return pd.DataFrame(rows)


def read_folds(path) -> pd.DataFrame:
    """Read ``folds.tsv`` (subject as str, flags as bool)."""
    folds = pd.read_csv(path, sep="\t", dtype={"subject": str, "stage": str})
    for col in ("has_genotype", "has_image"):
        folds[col] = folds[col].astype(str).str.lower().isin(["true", "1"])
    return folds
