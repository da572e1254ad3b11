"""What every attribution method returns for a batch of subjects, before the dump's float16."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BatchAttribution:
    """Attribution of one batch (float32 arrays).

    Attributes
    ----------
    gene_importance : float[B, G]
    roi_importance : float[B, R]
    roi_gene : float[B, R, G]
    sink_share : float[B]
    gene_tokens : float[B, G]
        Prompt tokens of each gene block.
    completeness : float[B, 2], optional
        Methods with a baseline: (sum of all attributions, f(input) - f(baseline)); the
        dispatch fills NaN for the others.
    """

    gene_importance: np.ndarray
    roi_importance: np.ndarray
    roi_gene: np.ndarray
    sink_share: np.ndarray
    gene_tokens: np.ndarray
    completeness: np.ndarray | None = None
