"""Faithfulness of an attribution, independent of any planted truth: deletion curves against random deletions.

For each subject and method, the top-k ROIs (or genes) by attribution are removed and the
model scored again; the drop in the true-class probability (answer scoring,
:func:`~rgenima_lib.train.predict.score_answers`) is compared with the drop after removing k
random ROIs (genes) of the same subject (mean over a few seeded draws, shared by the methods).

Removal is the pipeline's own handling of missing data:

- a ROI: its patch set to zeros and its presence flag off, then the subject re-encoded by the
  RiT (whose attention masks it as a key, and whose output row for it is zero) and its LLM
  token excluded from attention, exactly as a ROI missing from the segmentation;
- a gene: its SNPs set to the reference genotype in the text
  (:func:`~rgenima_lib.genetics.serialize.reference_genome_text`).

Per method, ROI/gene and k: the mean drop over subjects with a 95 % t interval, the same for
random removal, and the paired difference (method minus random). A row whose paired mean is not
above 0 (the top-k hurt no more than random ones) reads ``not faithful``; one whose interval lies
above 0 ``faithful``; the rest ``inconclusive``. ``verdict_all_k`` applies the same rule to each
subject's difference averaged over the k's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from rgenima_lib.attribution.end_to_end import ImageInputs
from rgenima_lib.genetics.serialize import reference_genome_text
from rgenima_lib.models.prompting import PromptCollator, PromptSample
from rgenima_lib.train.predict import score_answers
from rgenima_lib.vocabulary import STAGES

KS = (1, 2, 5, 10, 20)


def remove_rois(patches: dict[str, torch.Tensor], removed: Sequence[int]) -> dict[str, torch.Tensor]:
    """One subject's inputs with ROIs removed as missing ROIs are: zero patch, presence off.

    Parameters
    ----------
    patches : dict
        ``rois`` float[1, N, S, S, S], ``presence`` bool[1, N], ``volume`` float[1, N].
    removed : sequence of int
        ROI indices.

    Returns
    -------
    dict
        The same keys, new tensors.
    """
    rois, presence = patches["rois"].clone(), patches["presence"].clone().bool()
    idx = torch.as_tensor(list(removed), dtype=torch.long)
    rois[:, idx] = 0.0
    presence[:, idx] = False
    return {"rois": rois, "presence": presence, "volume": patches["volume"]}


def remove_genes(sample: PromptSample, spans, names) -> PromptSample:
    """The sample with the named genes' genotypes set to the reference: in the SNP text and, for gene
    tokens (``llm.gene_input: tokens``), in the dosages the tokens are made from (all zero)."""
    genes = sample.genes
    if genes is not None:
        order = [g for g, _, _ in spans]  # the dosage rows follow the text's gene order
        keep = np.array([g not in names for g in order], np.float32)[:, None]
        genes = replace(genes, dosages=np.asarray(genes.dosages, np.float32) * keep)
    return replace(sample, genome_text=reference_genome_text(sample.genome_text, spans, names), genes=genes)


def variant_probabilities(model, image: ImageInputs, variants: Sequence[tuple[dict, PromptSample]],
                          chunk: int = 8) -> np.ndarray:
    """Class probabilities float64[V, 4] of variants (ROI inputs, sample with its genome) of one subject, RiT tokens recomputed."""
    collate = PromptCollator(model.tokenizer, with_labels=False)
    out = []
    for start in range(0, len(variants), chunk):
        part = variants[start:start + chunk]
        with torch.no_grad():
            tokens = image.encoder.encode(torch.cat([v[0]["rois"] for v in part]),
                                          torch.cat([v[0]["presence"] for v in part]).bool(),
                                          torch.cat([v[0]["volume"] for v in part])).float().cpu().numpy()
        samples = [replace(genome, visual=tokens[i], presence=v["presence"][0].cpu().numpy().astype(np.uint8))
                   for i, (v, genome) in enumerate(part)]
        out.append(score_answers(model, collate(samples)))
    return np.concatenate(out)


def _top(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return order[:k]


def deletion_drops(model, image: ImageInputs, samples, spans_list, genes: Sequence[str],
                   scores: dict[str, tuple[np.ndarray, np.ndarray]], ks: Sequence[int] = KS, n_random: int = 3,
                   seed: int = 0) -> pd.DataFrame:
    """Drop in the true-class probability after removing each method's top-k ROIs / genes, and k random ones.

    Parameters
    ----------
    model : RGenIMA
    image : ImageInputs
        RiT and ROI patches.
    samples : sequence of PromptSample, length n
        With true stages.
    spans_list : sequence of spans, length n
    genes : sequence of str, length G
        Column order of the gene scores.
    scores : dict
        Method -> (roi scores float[n, R], gene scores float[n, G]); higher = more important.
    ks : sequence of int
        Removal sizes (capped at the subject's present ROIs / genes in the text).
    n_random : int
        Random draws per subject and k.
    seed : int

    Returns
    -------
    DataFrame
        One row per subject, method (``random`` included: mean over its draws), what
        (``roi`` / ``gene``) and k: ``p_full``, ``p_removed``, ``drop``.
    """
    rng = np.random.default_rng(seed)
    gene_index = {g: i for i, g in enumerate(genes)}
    rows = []
    for i, (sample, spans) in enumerate(zip(samples, spans_list)):
        patches = image.patches([sample.subject])
        true = STAGES.index(sample.stage)
        rois = np.flatnonzero(patches["presence"][0].cpu().numpy())
        in_text = np.array(sorted(gene_index[g] for g, _, _ in spans if g in gene_index))
        variants, keys = [(patches, sample)], [None]
        for what, candidates in (("roi", rois), ("gene", in_text)):
            for k in sorted({min(k, len(candidates)) for k in ks}):
                picks = {m: [_top(s[0 if what == "roi" else 1][i], candidates, k)] for m, s in scores.items()}
                picks["random"] = [rng.choice(candidates, k, replace=False) for _ in range(n_random)]
                for method, sets in picks.items():
                    for chosen in sets:
                        if what == "roi":
                            variants.append((remove_rois(patches, chosen), sample))
                        else:
                            variants.append((patches, remove_genes(sample, spans, {genes[j] for j in chosen})))
                        keys.append((method, what, k))
        p = variant_probabilities(model, image, variants)[:, true]
        frame = pd.DataFrame([dict(zip(("method", "what", "k"), key)) | {"p_removed": q}
                              for key, q in zip(keys[1:], p[1:])])
        frame = frame.groupby(["method", "what", "k"], as_index=False)["p_removed"].mean()
        frame.insert(0, "subject", sample.subject)
        frame["p_full"] = p[0]
        frame["drop"] = frame["p_full"] - frame["p_removed"]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t interval of float[n] (NaN interval for n < 2)."""
    from scipy import stats

    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    if values.std() == 0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def verdict(mean: float, low: float) -> str:
    """'not faithful' when the paired difference is not above 0, 'faithful' when its interval is, else 'inconclusive'."""
    if not mean > 0:
        return "not faithful"
    return "faithful" if low > 0 else "inconclusive"


def faithfulness_table(drops: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`deletion_drops` per method, what and k (see the module docstring for the columns' rule).

    Returns
    -------
    DataFrame
        method, what, k, n_subjects, drop, drop_low, drop_high, random_drop, random_low, random_high,
        difference, difference_low, difference_high, verdict, verdict_all_k.
    """
    random = drops[drops["method"] == "random"].set_index(["subject", "what", "k"])["drop"]
    out = []
    for (method, what), part in drops[drops["method"] != "random"].groupby(["method", "what"], sort=False):
        diffs = part.set_index(["subject", "what", "k"])["drop"] - random
        per_subject = diffs.groupby(level="subject").mean().to_numpy()
        overall = verdict(*_mean_ci(per_subject)[:2])
        for k, at_k in part.groupby("k"):
            d = at_k["drop"].to_numpy()
            r = random.xs((what, k), level=("what", "k")).reindex(at_k["subject"]).to_numpy()
            diff = _mean_ci(d - r)
            out.append({"method": method, "what": what, "k": int(k), "n_subjects": len(d),
                        **dict(zip(("drop", "drop_low", "drop_high"), _mean_ci(d))),
                        **dict(zip(("random_drop", "random_low", "random_high"), _mean_ci(r))),
                        **dict(zip(("difference", "difference_low", "difference_high"), diff)),
                        "verdict": verdict(*diff[:2]), "verdict_all_k": overall})
    return pd.DataFrame(out)
