"""The data configurations of paper 4.4.3 as sample tables, per fold.

A sample is one row: (subject, view, copy, perm_seed, with_image). Its SNP text
is rebuilt on the fly from the fold's imputed genotypes and the permutation
seed: ``GenomeTexts.from_files("results/genetics/imputed/fold<k>.npz",
"results/genetics/snps.tsv")(subject, perm_seed)`` gives the text and each gene
block's character span. Its image tokens come from the subject's ROIs. Nothing
but the table is stored.

Configurations (paper 4.4.3):

* ``gene_only``: every genotyped subject, SNP text only.
* ``image_gene``: subjects with both genotypes and an image, text + image.
* ``mixture``: 50 % paired (text + image, the subjects with both) and 50 %
  gene-only samples (text only). The gene-only samples are spread evenly over
  all genotyped training subjects, those without an image and the paired ones
  seen without their image; a subject's gene-only copies use their own
  permutation stream. The mixture's test side is the image-gene test side, so
  the two configurations are scored on the same samples.

Protocols (``split.protocol``):

* ``subject`` (default, honest): folds are subject-level (``splits.tsv``).
  The training side holds, per training subject, the canonical order plus K
  gene-order permutations (``datasets.n_permutations``); the test side holds
  one canonical sample per test subject, never an augmented copy.
* ``paper`` (the paper's protocol, leaky): every subject is augmented first,
  then the *samples* are split into stage-stratified folds, so permuted copies
  of one subject land on both sides. Every table it produces is marked leaky;
  ``rgenima_lib.data.audit`` counts the overlap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.data.splits import deal_folds
from rgenima_lib.genetics.augment import CANONICAL, STREAMS, augmented_copies, permutation_seed
from rgenima_lib.vocabulary import STAGES

DATA_CONFIGS = ("gene_only", "image_gene", "mixture")
PROTOCOLS = ("subject", "paper")
LEAKY_PROTOCOLS = frozenset({"paper"})
SAMPLE_COLUMNS = ["sample", "subject", "stage", "label", "view", "copy", "perm_seed", "with_image", "side"]
"""``view``: 'paired' (text + image) or 'gene_only' (text only); ``copy`` 0 is
the canonical gene order (perm_seed = -1); ``side``: 'train' or 'test'."""


def _view_samples(subjects: pd.DataFrame, view: str, n_copies, seed: int) -> pd.DataFrame:
    """Samples of one view for ``subjects`` (rows of folds.tsv), ``n_copies`` each (int or int[n])."""
    copies = augmented_copies(subjects["subject"].tolist(), n_copies, seed, stream=STREAMS[view])
    stage = subjects.set_index("subject")["stage"]
    copies["stage"] = stage.reindex(copies["subject"]).to_numpy()
    copies["label"] = copies["stage"].map({s: i for i, s in enumerate(STAGES)}).astype(np.int64)
    copies["view"] = view
    copies["with_image"] = view == "paired"
    copies["sample"] = copies["subject"] + "/" + view + "/" + copies["copy"].astype(str)
    return copies


def _gene_only_counts(subjects: pd.DataFrame, n_samples: int, seed: int) -> np.ndarray:
    """int64[n]: ``n_samples`` spread evenly over ``subjects``, remainders by a seeded, fold-independent order."""
    n = len(subjects)
    counts = np.full(n, n_samples // max(n, 1), dtype=np.int64)
    rank = np.argsort([permutation_seed(seed, s, 0, STREAMS["gene_only"]) for s in subjects["subject"]],
                      kind="stable")
    counts[rank[: n_samples - counts.sum()]] += 1
    return counts


def augmented_samples(subjects: pd.DataFrame, config: str, n_permutations: int, seed: int,
                      paired_fraction: float = 0.5) -> pd.DataFrame:
    """Training-style samples of a configuration: canonical + ``n_permutations`` copies per subject.

    Parameters
    ----------
    subjects : DataFrame
        Rows of ``folds.tsv`` (subject, stage, has_genotype, has_image); paired
        (image-gene) samples are made for ``has_image`` subjects only, those with
        ROI patches and a whole-brain input (the manifest's definition).
    config : {'gene_only', 'image_gene', 'mixture'}
    n_permutations : int
        K gene-order permutations per subject and view (paper: ~30, from
        1,998 subjects to 60,000 samples).
    seed : int
    paired_fraction : float
        Mixture only: share of paired samples (paper: 0.5).

    Returns
    -------
    DataFrame with ``SAMPLE_COLUMNS`` but ``side``.
    """
    genotyped = subjects[subjects["has_genotype"]]
    paired = genotyped[genotyped["has_image"]]
    n_copies = 1 + int(n_permutations)
    if config == "gene_only":
        parts = [_view_samples(genotyped, "gene_only", n_copies, seed)]
    elif config == "image_gene":
        parts = [_view_samples(paired, "paired", n_copies, seed)]
    elif config == "mixture":
        paired_samples = _view_samples(paired, "paired", n_copies, seed)
        n_gene = int(round(len(paired_samples) * (1 - paired_fraction) / paired_fraction))
        counts = _gene_only_counts(genotyped, n_gene, seed)
        parts = [paired_samples, _view_samples(genotyped, "gene_only", counts, seed)]
    else:
        raise ValueError(f"config must be one of {DATA_CONFIGS}, got {config!r}")
    return pd.concat(parts, ignore_index=True)


def heldout_samples(subjects: pd.DataFrame, config: str, seed: int) -> pd.DataFrame:
    """One canonical sample per test subject (image-gene test side for the mixture)."""
    genotyped = subjects[subjects["has_genotype"]]
    if config == "gene_only":
        return _view_samples(genotyped, "gene_only", 1, seed)
    if config in ("image_gene", "mixture"):
        return _view_samples(genotyped[genotyped["has_image"]], "paired", 1, seed)
    raise ValueError(f"config must be one of {DATA_CONFIGS}, got {config!r}")


def build_dataset(folds: pd.DataFrame, config: str, fold: int, *, protocol: str, n_permutations: int,
                  seed: int, paired_fraction: float = 0.5) -> pd.DataFrame:
    """Train and test samples of one configuration and fold.

    Parameters
    ----------
    folds : DataFrame
        ``folds.tsv`` (subject-level folds).
    config : str
        One of ``DATA_CONFIGS``.
    fold : int
        Test fold k.
    protocol : {'subject', 'paper'}
        See the module docstring; 'paper' is leaky.
    n_permutations, seed, paired_fraction
        See ``augmented_samples``.

    Returns
    -------
    DataFrame ``SAMPLE_COLUMNS``: train rows, then test rows.
    """
    n_folds = int(folds["fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    if protocol == "subject":
        train = augmented_samples(folds[folds["fold"] != fold], config, n_permutations, seed, paired_fraction)
        test = heldout_samples(folds[folds["fold"] == fold], config, seed)
        train["side"], test["side"] = "train", "test"
        samples = pd.concat([train, test], ignore_index=True)
    elif protocol == "paper":
        # Paper 4.4.2-4.4.3: augment every subject, then split the samples (stratified by stage).
        samples = augmented_samples(folds, config, n_permutations, seed, paired_fraction)
        rng = np.random.default_rng([int(seed), DATA_CONFIGS.index(config), 0x9A9E5])
        sample_fold = deal_folds(samples["stage"], n_folds, rng)
        samples["side"] = np.where(sample_fold == fold, "test", "train")
        samples = pd.concat([samples[samples["side"] == "train"], samples[samples["side"] == "test"]],
                            ignore_index=True)
    else:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return samples[SAMPLE_COLUMNS]


def dataset_meta(samples: pd.DataFrame, *, config: str, fold: int, protocol: str, n_permutations: int,
                 seed: int, paired_fraction: float) -> dict:
    """JSON-ready description of a data set: settings, leakiness, sample counts per side, view and stage."""
    counts = {}
    for side in ("train", "test"):
        s = samples[samples["side"] == side]
        counts[side] = {
            "samples": int(len(s)), "subjects": int(s["subject"].nunique()),
            "augmented": int((s["perm_seed"] != CANONICAL).sum()),
            "by_view": {v: int(n) for v, n in s["view"].value_counts().sort_index().items()},
            "by_stage": {st: int((s["stage"] == st).sum()) for st in STAGES},
        }
    return {"config": config, "fold": int(fold), "protocol": protocol, "leaky": protocol in LEAKY_PROTOCOLS,
            "n_permutations": int(n_permutations), "seed": int(seed),
            "paired_fraction": float(paired_fraction) if config == "mixture" else None,
            "text_format": "compact", "counts": counts}


def read_samples(path) -> pd.DataFrame:
    """Read a ``samples.tsv`` with the right types."""
    samples = pd.read_csv(path, sep="\t", dtype={"sample": str, "subject": str, "stage": str, "view": str,
                                                  "side": str})
    samples["with_image"] = samples["with_image"].astype(str).str.lower().isin(["true", "1"])
    return samples
