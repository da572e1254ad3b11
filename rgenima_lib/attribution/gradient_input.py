"""Gradient x input (method ``gradient_input``): one backward pass, a simple reference for the other methods.

- ROI r: Σ_d z[r, d] · ∂f/∂z[r, d], z the RiT's patch embedding of ROI r (its ViT input,
  :meth:`~rgenima_lib.models.rit.RiT.embed_patches`), plus v[r] · ∂f/∂v[r] where the RiT reads
  volumes (v its standardised volume input, 0 for a training-average ROI: the evidence of
  atrophy reaches the tokens mostly there, see :mod:`~rgenima_lib.attribution.integrated_gradients`);
- gene g: Σ over gene g's prompt tokens t of Σ_d e[t, d] · ∂f/∂e[t, d], e the LLM's token embedding;

f as in :mod:`~rgenima_lib.attribution.end_to_end`. Signed; not complete (a saturated
softmax makes the sum far from the change in f), which is what integrated gradients fix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rgenima_lib.attribution.batch_result import BatchAttribution
from rgenima_lib.attribution.end_to_end import (ImageInputs, answer_batch, gene_sums, gene_token_counts,
                                                label_logprob, reads_volume, text_embeddings)


def gradient_input_batch(model, image: ImageInputs, samples, spans_list, genes: Sequence[str],
                         predicted: Sequence[str]) -> BatchAttribution:
    """Gradient x input of a batch, each sample's f taken for its predicted stage.

    Parameters
    ----------
    model : RGenIMA
    image : ImageInputs
    samples : sequence of PromptSample, length B
    spans_list : sequence of spans
    genes : sequence of str, length G
    predicted : sequence of str, length B

    Returns
    -------
    BatchAttribution
        gene_importance [B, G], roi_importance [B, R], roi_gene zeros [B, R, G] (not defined
        by this method), sink_share zeros [B], gene_tokens [B, G].
    """
    batch = answer_batch(model, samples, spans_list, genes, predicted)
    x = image.patches([s.subject for s in samples])
    z = image.encoder.embed_patches(x["rois"], x["presence"].bool()).detach().requires_grad_()
    e = text_embeddings(model, batch).detach().requires_grad_()
    presence = x["presence"].bool()
    leaves = [z, e]
    v = None
    if reads_volume(image.encoder):
        v = torch.where(presence, image.encoder.standardized_volume(x["volume"], presence), 0.0).detach()
        v.requires_grad_()
        leaves.append(v)
    tokens = image.encoder.encode_embedded(z, presence, x["volume"], standardized_volume=v)
    f = label_logprob(model, batch, tokens.reshape(-1, tokens.shape[-1]), e)
    grads = torch.autograd.grad(f.sum(), leaves)
    gz, ge = grads[0], grads[1]
    roi = (z * gz).sum(-1)
    if v is not None:
        roi = roi + v * grads[2]
    roi = roi.detach().cpu().numpy()
    per_token = (e * ge).sum(-1).detach().cpu().numpy()
    n_genes, n_rois = len(genes), roi.shape[1]
    return BatchAttribution(gene_sums(per_token, batch, n_genes), roi, np.zeros((len(samples), n_rois, n_genes),
                                                                                np.float32),
                            np.zeros(len(samples), np.float32), gene_token_counts(batch, n_genes))
