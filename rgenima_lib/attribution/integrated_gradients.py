"""Integrated gradients (Sundararajan et al. 2017), method ``integrated_gradients``: end to end, complete.

Inputs and baseline, moved together along the straight path x(α) = x' + α (x - x'):

- the ROI patches (LLM -> connector -> RiT -> patches); baseline x': each present ROI's
  training-subject mean patch, the RiT's own input centring (``RiT.input_mean``; the
  standardised input is then 0: an average brain). Missing ROIs stay zero patches with their
  presence flag off on the whole path, so they get 0;
- the ROI volumes, where the RiT reads them (``roi_volume``): its standardised relative log
  volume per ROI (:meth:`~rgenima_lib.models.rit.RiT.standardized_volume`); baseline 0, the
  training subjects' average relative volume. Cropping each ROI to its box and stretching it
  to S³ removes most of its size from the patch, so atrophy reaches the tokens mostly through
  this input: holding it fixed along the path would leave the evidence a volume-reading model
  uses unattributed (and completeness would fail by exactly that share). A ROI's attribution is
  its patch voxels' plus its volume's;
- the gene genotypes, as the LLM's token embeddings of the SNP text; baseline: the embeddings of
  the reference-genotype text (every symbol ``0``,
  :func:`~rgenima_lib.genetics.serialize.reference_genome_text`), which tokenizes to the same
  positions, so only the genotype digits move.

The patch embedding (standardisation, then the S³ kernel) is affine in the patch, so the
straight path in patch space maps onto the straight path between the two patch embeddings z and
z' and, by the chain rule, Σ over a ROI's voxels of (x - x')·∂f/∂x = Σ_d (z - z')·∂f/∂z: the path
runs in embedding space, which gives the same per-ROI attributions without the patch kernel and
its gradient at every path point (per voxel maps are not kept).

Attribution of input i: (x_i - x'_i) · ∫₀¹ ∂f/∂x_i(x(α)) dα, by Gauss–Legendre quadrature with
``steps`` points on [0, 1] (the path is steep near the baseline, where every standardised patch
is 0 and the RiT's tokens are little more than their position embeddings; Gauss–Legendre puts
points closer to the ends than the midpoint rule); summed over a ROI's voxels, and over a
gene's tokens and embedding dimensions. Completeness: Σ_i attribution_i = f(x) - f(x') up to
the quadrature error, which the dump's meta reports (``completeness``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from rgenima_lib.attribution.batch_result import BatchAttribution
from rgenima_lib.attribution.end_to_end import (ImageInputs, answer_batch, encode_tokens, gene_sums,
                                                gene_token_counts, label_logprob, reads_volume, text_embeddings)
from rgenima_lib.genetics.serialize import reference_genome_text
from rgenima_lib.models.prompting import PromptSample


def reference_sample(sample: PromptSample, spans) -> PromptSample:
    """The same sample with every genotype of its SNP text set to the reference.

    Gene tokens (``llm.gene_input: tokens``) keep their dosages: they are spliced from the dosages, not from
    the text embeddings the path moves, so both ends of the path read the same genes and the genes get 0.
    """
    return replace(sample, genome_text=reference_genome_text(sample.genome_text, spans))


def path_points(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre points α float64[steps] on [0, 1] and their weights (summing to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


def _path_gradients(model, encoder, batch_of, presence, volume, z, z0, e, e0, v, alphas, weights, chunk):
    """∫₀¹ of ∂f/∂(patch embeddings) float[N, d], ∂f/∂embeddings float[T, hidden] and ∂f/∂volume float[N].

    ``batch_of(n)``: the sample's AnswerBatch repeated n times; z, z0: the patch embeddings of the
    patches and of their baseline, float[1, N, d]; e, e0: float[1, T, hidden]; presence bool[1, N],
    volume float[1, N]; v: the standardised volume float[1, N] (baseline 0) or None where the RiT
    reads no volume; alphas, weights float[steps].
    """
    gz, ge = torch.zeros_like(z[0]), torch.zeros_like(e[0])
    gv = torch.zeros_like(v[0]) if v is not None else None
    for start in range(0, len(alphas), chunk):
        a, w = alphas[start:start + chunk], weights[start:start + chunk]
        n = len(a)
        za = (z0 + a.view(-1, 1, 1) * (z - z0)).detach().requires_grad_()
        ea = (e0 + a.view(-1, 1, 1) * (e - e0)).detach().requires_grad_()
        leaves = [za, ea]
        va = None
        if v is not None:
            va = (a.view(-1, 1) * v).detach().requires_grad_()
            leaves.append(va)
        tokens = encoder.encode_embedded(za, presence.expand(n, -1), volume.expand(n, -1), standardized_volume=va)
        f = label_logprob(model, batch_of(n), tokens.reshape(-1, tokens.shape[-1]), ea)
        grads = torch.autograd.grad(f.sum(), leaves)
        gz += (w.view(-1, 1, 1) * grads[0]).sum(0)
        ge += (w.view(-1, 1, 1) * grads[1]).sum(0)
        if v is not None:
            gv += (w.view(-1, 1) * grads[2]).sum(0)
    return gz, ge, gv


def integrated_gradients_batch(model, image: ImageInputs, samples, spans_list, genes: Sequence[str],
                               predicted: Sequence[str], steps: int = 32, chunk: int = 8) -> BatchAttribution:
    """Integrated gradients of each sample's f (its predicted stage), one sample at a time.

    Parameters
    ----------
    model : RGenIMA
    image : ImageInputs
    samples : sequence of PromptSample, length B
    spans_list : sequence of spans
    genes : sequence of str, length G
    predicted : sequence of str, length B
    steps : int
        Path points (Gauss–Legendre, :func:`path_points`).
    chunk : int
        Path points per forward/backward pass (memory: chunk x the subject's patches).

    Returns
    -------
    BatchAttribution
        gene_importance [B, G], roi_importance [B, R] (signed, log-prob units), roi_gene zeros
        (not defined by this method), sink_share zeros, gene_tokens [B, G], completeness [B, 2].
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    n_genes = len(genes)
    genes_out, rois_out, complete, counts = [], [], [], []
    for sample, spans, answer in zip(samples, spans_list, predicted):
        batch = answer_batch(model, [sample], [spans], genes, [answer])
        ref = answer_batch(model, [reference_sample(sample, spans)], [spans], genes, [answer])
        if ref.inputs["input_ids"].shape != batch.inputs["input_ids"].shape:
            raise RuntimeError(f"{sample.subject}: the reference-genotype text tokenizes to other positions")
        with torch.no_grad():
            e, e0 = text_embeddings(model, batch), text_embeddings(model, ref)
            patches = image.patches([sample.subject])
            x = patches["rois"]
            present = patches["presence"].bool().view(1, -1, 1, 1, 1)
            x0 = torch.where(present, image.encoder.input_mean.to(x.dtype), x)
            v = None
            if reads_volume(image.encoder):
                # missing ROIs keep their (unread: the token is the missing embedding) volume on the whole path
                v = torch.where(patches["presence"].bool(),
                                image.encoder.standardized_volume(patches["volume"], patches["presence"]), 0.0)
            ends = [label_logprob(model, batch, encode_tokens(image.encoder, p, patches["presence"], patches["volume"],
                                                              standardized_volume=sv), emb)
                    for p, emb, sv in ((x, e, v), (x0, e0, None if v is None else torch.zeros_like(v)))]
        alphas, weights = (torch.as_tensor(t, dtype=x.dtype, device=x.device) for t in path_points(steps))
        repeated = {}

        def batch_of(n, sample=sample, spans=spans, answer=answer):
            if n not in repeated:
                repeated[n] = answer_batch(model, [sample] * n, [spans] * n, genes, [answer] * n)
            return repeated[n]

        with torch.no_grad():
            z, z0 = (image.encoder.embed_patches(p, patches["presence"].bool()) for p in (x, x0))
        gz, ge, gv = _path_gradients(model, image.encoder, batch_of, patches["presence"], patches["volume"], z, z0,
                                     e, e0, v, alphas, weights, chunk)
        roi = ((z[0] - z0[0]) * gz).sum(-1)
        if gv is not None:
            roi = roi + v[0] * gv
        roi = roi.detach().cpu().numpy()
        per_token = ((e - e0)[0] * ge).sum(-1).detach().cpu().numpy()
        gene = gene_sums(per_token[None], batch, n_genes)[0]
        rois_out.append(roi)
        genes_out.append(gene)
        complete.append([float(roi.sum() + per_token.sum()), float(ends[0] - ends[1])])
        counts.append(gene_token_counts(batch, n_genes)[0])
    n_rois = rois_out[0].shape[0]
    return BatchAttribution(np.stack(genes_out), np.stack(rois_out), np.zeros((len(samples), n_rois, n_genes),
                                                                               np.float32),
                            np.zeros(len(samples), np.float32), np.stack(counts),
                            np.asarray(complete, np.float32))
