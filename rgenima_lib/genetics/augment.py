"""Gene-order permutation augmentation (paper 4.4.2), stored as seeds.

Paper 4.4.2 keeps the SNPs of each gene as an intact block and permutes the
order of the blocks, expanding 1,998 subjects to 60,000 samples. A sample is
stored here as (subject, permutation seed); its gene order, and so its text,
is rebuilt on the fly by ``gene_order``. Seeds derive from the config seed, the
subject ID and the copy index only, so a subject's k-th permutation is the same
in every fold, data configuration and run.

``CANONICAL`` (-1) is the panel order (no permutation): every subject's first
sample and every test sample under the subject-level protocol.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

CANONICAL = -1
"""perm_seed of the canonical (panel) gene order."""

STREAMS = {"paired": 0, "gene_only": 1, "attribution": 7}  # attribution: the gene orders rule attribute averages over
"""Separate seed streams for a subject's paired and gene-only samples (the mixture uses both)."""


def subject_key(subject: str) -> int:
    """A stable 32-bit integer for a subject ID (CRC-32: unlike ``hash``, the same in every process)."""
    return zlib.crc32(subject.encode("utf-8"))


def permutation_seed(seed: int, subject: str, k: int, stream: int = 0) -> int:
    """The seed of a subject's k-th permuted copy.

    Parameters
    ----------
    seed : int
        The config's seed.
    subject : str
    k : int
        Copy index (>= 1; copy 0 is ``CANONICAL``).
    stream : int
        ``STREAMS`` value: keeps a subject's paired and gene-only copies apart.

    Returns
    -------
    int in [0, 2**32).
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, subject_key(subject), int(stream), int(k)])
    return int(state.generate_state(1, dtype=np.uint32)[0])


def gene_order(n_genes: int, perm_seed: int) -> np.ndarray:
    """int64[n_genes]: the block order of a sample (identity for ``CANONICAL``)."""
    if perm_seed == CANONICAL:
        return np.arange(n_genes)
    if perm_seed < 0:
        raise ValueError(f"perm_seed must be {CANONICAL} or >= 0, got {perm_seed}")
    return np.random.default_rng(perm_seed).permutation(n_genes)


def augmented_copies(subjects, n_copies, seed: int, stream: int = 0, include_canonical: bool = True) -> pd.DataFrame:
    """Samples of gene-order permutations: one row per (subject, copy).

    Parameters
    ----------
    subjects : list of str, length n
    n_copies : int or int[n]
        Samples per subject (the same for all, or one count each), copy 0 in
        canonical order when ``include_canonical``.
    seed : int
    stream : int

    Returns
    -------
    DataFrame subject, copy (int), perm_seed (int64), in subject then copy order.
    """
    subjects = list(subjects)
    counts = np.broadcast_to(np.asarray(n_copies, dtype=np.int64), (len(subjects),))
    rows_subject, rows_copy, rows_seed = [], [], []
    for subject, n in tqdm(zip(subjects, counts), total=len(subjects), desc="permutations", unit="subject",
                           leave=False, disable=None):
        for k in range(int(n)):
            rows_subject.append(subject)
            rows_copy.append(k)
            rows_seed.append(CANONICAL if (k == 0 and include_canonical)
                             else permutation_seed(seed, subject, k, stream))
    return pd.DataFrame({"subject": pd.Series(rows_subject, dtype=object),
                         "copy": np.asarray(rows_copy, dtype=np.int64),
                         "perm_seed": np.asarray(rows_seed, dtype=np.int64)})
