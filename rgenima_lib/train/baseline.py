"""Training the Table 1 baselines (paper 4.5.1) on one fold, and the frozen gene tokens they read.

:func:`train_baseline` takes the fold's sample table and the caches its model reads (the
imputed dosage for ``mlp``; the gene-token cache for the BERT models; the image-token
cache for the fusion models), holds out validation subjects for early stopping, fits with
the shared loop of :mod:`rgenima_lib.train.classifier` and predicts the test side.
:func:`gene_token_cache` computes the gene-token cache: one frozen-BERT token per gene block
of every sample text the BERT baselines read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from rgenima_lib.errors import InputDataError
from rgenima_lib.genetics.serialize import GenomeTexts
from rgenima_lib.models.baselines import (TextEncoder, build_baseline, n_parameters, pool_gene_tokens,
                                          tokenize_genomes)
from rgenima_lib.models.embedding_cache import select_subjects
from rgenima_lib.train.classifier import (FitConfig, FitResult, TensorDataset, fit_classifier, predict_proba,
                                          seed_everything, stratified_holdout)
from rgenima_lib.settings import check_section

log = logging.getLogger("rgenima")


@dataclass(frozen=True)
class BaselineSettings:
    """The config's ``baselines`` section as ``train-baseline`` reads it (defaults: the config schema).

    Attributes
    ----------
    model : dict
        Sizes for :func:`~rgenima_lib.models.baselines.build_baseline` (hidden, heads, dropout, mlp_hidden).
    train : dict
        :class:`~rgenima_lib.train.classifier.FitConfig` fields but the seed.
    val_fraction : float
        Share of the training subjects held out, stratified by stage, for early stopping.
    max_copies : int
        Gene-order copies per training subject the text baselines read (-1: all).
    """

    model: dict
    train: dict
    val_fraction: float
    max_copies: int

    @classmethod
    def from_dict(cls, d: dict | None) -> "BaselineSettings":
        """From the section's ``model``, ``train``, ``val_fraction`` and ``max_copies``; any other key is an error."""
        return cls(**check_section(d, cls.__dataclass_fields__, "baselines"))

    def fit_config(self, seed: int) -> FitConfig:
        return FitConfig.from_dict({**self.train, "seed": seed}, "baselines.train")


def text_key(subject: str, perm_seed) -> str:
    """Row key of the gene-token cache: one text per (subject, gene-order seed)."""
    return f"{subject}|{int(perm_seed)}"


def text_rows(samples: pd.DataFrame, max_copies: int | None) -> pd.DataFrame:
    """Sample rows whose text a baseline uses: every test row, train rows up to ``max_copies`` gene orders.

    ``max_copies`` None or negative keeps every training copy.
    """
    keep = samples["side"].eq("test")
    if max_copies is None or max_copies < 0:
        keep |= samples["side"].eq("train")
    else:
        keep |= samples["side"].eq("train") & (samples["copy"] <= max_copies)
    return samples[keep]


def gene_token_cache(samples: Sequence[pd.DataFrame], texts: GenomeTexts, tokenizer, backbone,
                     max_copies: int | None, max_length: int = 512, batch_size: int = 8
                     ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Frozen-BERT gene tokens of every distinct sample text the BERT baselines read.

    Parameters
    ----------
    samples : sequence of DataFrame
        Sample tables of one fold (``data.datasets.read_samples``), one per data configuration.
    texts : GenomeTexts
        The fold's SNP texts.
    tokenizer, backbone : transformers objects
        From :func:`~rgenima_lib.models.baselines.load_text_backbone`.
    max_copies : int or None
        As :func:`text_rows`.
    max_length : int
        Tokens per text window.
    batch_size : int
        Texts per forward pass.

    Returns
    -------
    keys : list of str, length n
        :func:`text_key` of each text, sorted by (subject, perm_seed).
    tokens : float16[n, G, h]
        One token per gene (mean of its token states), canonical gene order.
    presence : uint8[n, G]
        1 where the gene had at least one token.
    """
    rows = pd.concat([text_rows(table, max_copies) for table in samples], ignore_index=True)
    pairs = rows[["subject", "perm_seed"]].drop_duplicates().sort_values(["subject", "perm_seed"], kind="stable")
    genes = list(texts.layout.genes)
    encoder = TextEncoder(backbone, trainable=False)
    keys, out_t, out_p = [], [], []
    items = list(pairs.itertuples(index=False))
    with torch.no_grad():
        for i in tqdm(range(0, len(items), batch_size), desc="gene tokens", disable=None):
            chunk = items[i:i + batch_size]
            genomes = [texts(r.subject, r.perm_seed) for r in chunk]
            ids, mask, gene_index = tokenize_genomes(tokenizer, genomes, genes, max_length)
            states, _ = encoder(ids, mask)
            pooled, present = pool_gene_tokens(states, gene_index.view(len(chunk), -1), len(genes))
            out_t.append(pooled.half().numpy())
            out_p.append(present.numpy().astype(np.uint8))
            keys += [text_key(r.subject, r.perm_seed) for r in chunk]
    return keys, np.concatenate(out_t), np.concatenate(out_p)


@dataclass
class BaselineInputs:
    """The caches one baseline reads, as loaded (None where the model does not read it).

    Attributes
    ----------
    dosage : (list of str, float32[n_subjects, n_snps]) or None
        Subjects and imputed dosage (``mlp``).
    text_tokens : (list of str, float16[n, G, h], uint8[n, G]) or None
        The gene-token cache (BERT models): keys, tokens, presence.
    image_tokens : (list of str, float16[n, T, d], uint8[n, T]) or None
        The image-token cache (fusion models only): subjects, tokens, presence.
    dosage_path, text_tokens_path : str
        Where they were read, for error messages.
    """

    dosage: tuple | None = None
    text_tokens: tuple | None = None
    image_tokens: tuple | None = None
    dosage_path: str = ""
    text_tokens_path: str = ""


def baseline_tensors(model_id: str, rows: pd.DataFrame, inputs: BaselineInputs) -> dict[str, torch.Tensor]:
    """Tensors of one side's rows for a baseline.

    Parameters
    ----------
    model_id : str
    rows : DataFrame
        Sample rows (subject, perm_seed, label, with_image).
    inputs : BaselineInputs

    Returns
    -------
    dict
        ``label`` int64[n]; ``dosage`` float32[n, n_snps] (mlp), or ``text_tokens`` float32[n, G, h] and
        ``text_mask`` bool[n, G], plus ``image_tokens`` float32[n, T, d] and ``image_presence`` bool[n, T]
        for the fusion models.

    Raises
    ------
    InputDataError
        A subject without a genotype row, or a sample text missing from the gene-token cache.
    """
    data = {"label": torch.tensor(rows["label"].to_numpy(np.int64))}
    if model_id == "mlp":
        subjects, matrix = inputs.dosage
        row = {s: i for i, s in enumerate(subjects)}
        missing = [s for s in rows["subject"] if s not in row]
        if missing:
            raise InputDataError("subject has no genotype row.", path=inputs.dosage_path, subject=missing[0],
                                 fix="rebuild the imputed genotypes for this fold.")
        data["dosage"] = torch.tensor(matrix[[row[s] for s in rows["subject"]]], dtype=torch.float32)
        return data
    keys_all, tokens, presence = inputs.text_tokens
    want = [text_key(s, p) for s, p in zip(rows["subject"], rows["perm_seed"])]
    t, p = select_subjects(keys_all, tokens, presence, want)
    lost = [k for k, ok in zip(want, p.any(1)) if not ok]
    if lost:
        raise InputDataError(f"{len(lost)} sample text(s) missing from the gene-token cache (e.g. {lost[0]}).",
                             path=inputs.text_tokens_path,
                             fix="rerun gene_tokens with the same samples and max_copies.")
    data["text_tokens"], data["text_mask"] = torch.tensor(t.astype(np.float32)), torch.tensor(p.astype(bool))
    if inputs.image_tokens is not None:
        subjects, itok, ipres = inputs.image_tokens
        ti, pi = select_subjects(subjects, itok, ipres, rows["subject"].tolist())
        pi = pi * rows["with_image"].to_numpy()[:, None].astype(np.uint8)  # gene-only samples see no image
        data["image_tokens"], data["image_presence"] = torch.tensor(ti.astype(np.float32)), torch.tensor(pi.astype(bool))
    return data


@dataclass
class BaselineRun:
    """What :func:`train_baseline` did.

    Attributes
    ----------
    model : nn.Module
        Holds the best epoch's weights.
    fit : FitResult
    subjects, stages : list of str, length n_test
        The test rows, in sample-table order.
    probabilities : float32[n_test, 4]
        Class probabilities in ``STAGES`` order.
    info : dict
        Checkpoint provenance: model, dims, model_settings, train, best_epoch.
    """

    model: torch.nn.Module
    fit: FitResult
    subjects: list[str]
    stages: list[str]
    probabilities: np.ndarray
    info: dict


def train_baseline(model_id: str, samples: pd.DataFrame, inputs: BaselineInputs, settings: BaselineSettings,
                   seed: int, threads: int | None = None) -> BaselineRun:
    """Fit one Table 1 baseline on a fold's train side and predict its test subjects.

    Parameters
    ----------
    model_id : str
        ``mlp``, ``bert`` or a fusion model (``bert_{med3d,rit}_{concat,cross}``).
    samples : DataFrame
        The fold's sample table (``data.datasets.read_samples``).
    inputs : BaselineInputs
        The caches ``model_id`` reads.
    settings : BaselineSettings
    seed : int
        Validation split, weight init, batch order.
    threads : int, optional
        torch CPU threads.

    Returns
    -------
    BaselineRun
    """
    if model_id == "mlp":
        # The dosage vector does not change with gene order: one row per subject (copies would only reweight).
        rows = samples.drop_duplicates(["subject", "side"])
    else:
        rows = text_rows(samples, settings.max_copies)
    with_image = inputs.image_tokens is not None
    train_rows = rows[rows["side"] == "train"].reset_index(drop=True)
    test_rows = rows[rows["side"] == "test"].reset_index(drop=True)
    # Early-stopping validation by *subject*: augmented copies of one subject never sit on both sides.
    subj = train_rows.drop_duplicates("subject")
    fit_idx, val_idx = stratified_holdout(subj["label"].to_numpy(), settings.val_fraction, seed)
    val_subjects = set(subj["subject"].iloc[val_idx])
    is_val = train_rows["subject"].isin(val_subjects).to_numpy()
    train_data = baseline_tensors(model_id, train_rows, inputs)
    test_data = baseline_tensors(model_id, test_rows, inputs)
    fit_ds = TensorDataset(**{k: v[~is_val] for k, v in train_data.items()})
    val_ds = TensorDataset(**{k: v[is_val] for k, v in train_data.items()}) if is_val.any() else None

    seed_everything(seed, threads)
    dims = {"n_snps": train_data["dosage"].shape[1]} if model_id == "mlp" else {"text_dim": train_data["text_tokens"].shape[-1]}
    if with_image:
        dims["image_dim"] = train_data["image_tokens"].shape[-1]
    model_kwargs = {k: (tuple(v) if k == "mlp_hidden" else v) for k, v in settings.model.items()}
    model = build_baseline(model_id, **dims, **model_kwargs)
    fit_cfg = settings.fit_config(seed)
    log.info("%s: %d fit rows / %d validation rows (%d subjects), %d test subjects; %d trainable parameters",
             model_id, len(fit_ds), 0 if val_ds is None else len(val_ds), len(val_subjects), len(test_rows),
             n_parameters(model))
    result = fit_classifier(model, fit_ds, val_ds, fit_cfg, desc=model_id)
    prob = predict_proba(model, TensorDataset(**{k: v for k, v in test_data.items() if k != "label"}))
    info = {"model": model_id, "dims": dims, "model_settings": settings.model, "train": fit_cfg.to_dict(),
            "best_epoch": result.best_epoch}
    return BaselineRun(model, result, test_rows["subject"].tolist(), test_rows["stage"].tolist(),
                       prob.reshape(len(test_rows), -1), info)
