"""Attention dumps with known signal, for tests and benchmarks (no model involved)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rgenima_lib.attribution.dump_format import AttentionDump
from rgenima_lib.synthetic.clinical import stage_counts
from rgenima_lib.vocabulary import STAGES


def synthetic_dump(n_subjects: int, genes: Sequence[str], rois: Sequence[str], *, planted_genes=(),
                   planted_rois: dict | None = None, planted_pairs=(), effect: float = 0.5, seed: int = 0,
                   note: str = "synthetic dump (tests, benchmarks)") -> AttentionDump:
    """A dump with known signal, for tests and benchmarks (no model involved).

    Baseline shares are log-normal around 1 / (number of items); planted genes
    get ``effect`` / (number of items) more importance in every subject, planted
    ROIs of a stage (``planted_rois[stage]``) and planted pairs
    ``(roi, gene, stages)`` likewise in that stage's subjects only. Stages follow the paper's
    proportions (644 / 100 / 916 / 338).

    Returns
    -------
    AttentionDump
    """
    rng = np.random.default_rng(seed)
    g, r = len(genes), len(rois)
    counts = stage_counts(n_subjects)
    labels = np.repeat(np.array(STAGES), [counts[s] for s in STAGES])
    rng.shuffle(labels)
    gi = rng.lognormal(0.0, 0.3, (n_subjects, g)) / g
    ri = rng.lognormal(0.0, 0.3, (n_subjects, r)) / r
    rg = rng.lognormal(0.0, 0.3, (n_subjects, r, g)) / g  # each ROI row shares ~1 over the genes
    gidx = {x: i for i, x in enumerate(genes)}
    ridx = {x: i for i, x in enumerate(rois)}
    # Additive effects: eq. 17's stability is scale-free, so a multiplicative one would not change it.
    gi[:, [gidx[x] for x in planted_genes]] += effect / g
    for stage, names in (planted_rois or {}).items():
        ri[np.ix_(labels == stage, [ridx[x] for x in names])] += effect / r
    for roi, gene, stages in planted_pairs:
        rg[np.isin(labels, list(stages)), ridx[roi], gidx[gene]] += effect / g
    probs = rng.dirichlet(np.ones(len(STAGES)), n_subjects)
    return AttentionDump(
        subjects=np.array([f"S{i:05d}" for i in range(n_subjects)]), genes=np.array(list(genes)),
        rois=np.array(list(rois)), gene_importance=gi.astype(np.float16), roi_importance=ri.astype(np.float16),
        roi_gene=rg.astype(np.float16), label=labels, predicted=np.array(STAGES)[probs.argmax(1)],
        probabilities=probs.astype(np.float16), sink_share=rng.uniform(0, 0.5, n_subjects).astype(np.float16),
        roi_presence=np.ones((n_subjects, r), np.uint8), gene_tokens=np.full((n_subjects, g), 10, np.uint16),
        fold=(np.arange(n_subjects) % 3).astype(np.int16), meta={"note": note, "model": "synthetic"})
