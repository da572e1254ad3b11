"""End-to-end rollout (method ``rollout``): the LLM rollout onto the ROI token positions, carried through the RiT.

Each ROI token the LLM reads is the RiT's output for that slot, and the RiT's self-attention
has mixed every present ROI into it. The RiT's own rollout E (float[N, N], rule ``embed``;
:func:`~rgenima_lib.models.rit.rollout_matrix`: row r is the share of each input ROI in token r)
carries the LLM's shares from token positions to input ROIs:

    roi_input[s]     = Σ_r roi_token[r] · E[r, s]
    roi_gene_input[s, g] = Σ_r E[r, s] · roi_gene_token[r, g]

Rows of E sum to 1, so the ROIs' total share is unchanged; gene importances are the LLM's.
"""

from __future__ import annotations

import numpy as np

from rgenima_lib.attribution.batch_result import BatchAttribution


def compose_encoder_rollout(tokens: BatchAttribution, encoder_rollout: np.ndarray) -> BatchAttribution:
    """Carry a token-level rollout (method ``rollout_tokens``) onto the RiT's input ROIs.

    Parameters
    ----------
    tokens : BatchAttribution
        roi_importance [B, R] and roi_gene [B, R, G] at the ROI token positions.
    encoder_rollout : float[B, R, R]
        E per subject.

    Returns
    -------
    BatchAttribution
        roi_importance [B, R] and roi_gene [B, R, G] per input ROI; the rest unchanged.
    """
    e = np.asarray(encoder_rollout, np.float32)
    return BatchAttribution(tokens.gene_importance, np.einsum("br,brs->bs", tokens.roi_importance, e),
                            np.einsum("brs,brg->bsg", e, tokens.roi_gene), tokens.sink_share, tokens.gene_tokens)
