"""Stage-1 encoder pretraining and token caching (paper 4.5.2).

Design: docs/design.md, "Data flow", "Subject-level splits" and "Model notes".

"First, the vision encoders—Med3D and the proposed RiT—are trained on a four-way brain MRI
classification task (NC, SMC, MCI, AD). After convergence, the encoder weights are frozen."
Here, per encoder and fold:

1. :func:`pretrain_encoder`: 4-way training on the fold's *training* subjects only (the test
   fold is never seen by the encoder: the paper does not say, and an encoder trained on test
   subjects would leak their labels into every stage-2 model); a stratified validation part
   of those training subjects drives early stopping ("after convergence"); class-balanced
   loss or sampling; the shared loop of :mod:`rgenima_lib.train.classifier`.
2. :func:`save_checkpoint` (safetensors, config and provenance in the metadata) and
   :func:`plot_training_curve` (PNG).
3. :func:`embed_subjects`: the frozen encoder's tokens for every subject of the cohort
   (train and test: a frozen, train-only encoder is a fixed function), written with
   :func:`rgenima_lib.models.embedding_cache.save_embeddings`.

Subjects are read lazily, one at a time, through a ``load(subject) -> dict of arrays``
function: at S = 96 one subject's ROIs are 385 MB in float32, so a cohort never fits in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from rgenima_lib.vocabulary import STAGES
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.qc import read_roi_info
from rgenima_lib.imaging.roi_extract import open_roi_patches
from rgenima_lib.imaging.wholebrain import open_wholebrain
from rgenima_lib.io import atomic_output, save_figure
from rgenima_lib.models.med3d import Med3D, Med3DConfig, load_medicalnet_weights
from rgenima_lib.models.rit import RiT, RiTConfig, keep_attention, relative_log_volume, rollout_matrix
from rgenima_lib.train.classifier import (FitConfig, FitResult, fit_classifier, predict_proba, seed_everything,
                                          stratified_holdout)
from rgenima_lib.settings import check_section

log = logging.getLogger("rgenima")

CHECKPOINT_FORMAT = "rgenima-checkpoint/1"

Loader = Callable[[str], dict]
"""``load(subject) -> {"rois": float[N, S, S, S], "presence": bool[N]}`` (RiT) or ``{"volume": float[D, H, W]}`` (Med3D)."""


class SubjectDataset(Dataset):
    """Subjects read on demand through ``load``; yields ``load(subject)`` as tensors plus ``label``.

    Parameters
    ----------
    subjects : list of str
    labels : int[n] or None
        Class indices (``STAGES`` order); None for unlabelled use (label -1).
    load : callable
        ``load(subject) -> dict of arrays``.
    """

    def __init__(self, subjects: list[str], labels: np.ndarray | None, load: Loader):
        self.subjects = list(subjects)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.load = load

    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, i: int) -> dict:
        item = {k: torch.as_tensor(np.asarray(v)) for k, v in self.load(self.subjects[i]).items()}
        for k, v in item.items():
            if v.is_floating_point():
                item[k] = v.float()
        item["label"] = torch.tensor(-1 if self.labels is None else int(self.labels[i]))
        return item


def fit_input_normalization(subjects: list[str], load: Loader) -> tuple[np.ndarray, np.ndarray]:
    """Per-ROI mean patch and sd over ``subjects`` (the fit part of a fold's training subjects).

    Streams subjects one at a time (Welford-free two-pass is not needed: sums in float64).

    Parameters
    ----------
    subjects : list of str
    load : callable
        ``load(subject) -> {"rois": float[N, S, S, S] in [0, 1] or stored uint8, "presence": bool[N]}``.

    Returns
    -------
    mean : float32[N, S, S, S]
        Over the subjects where the ROI is present (zero if none).
    scale : float32[N]
        sd of (patch - mean) over those subjects and all voxels (1 if undefined).
    """
    total = total_sq = count = None
    for subject in tqdm(subjects, desc="input normalisation", disable=None, leave=False):
        item = load(subject)
        x = unit_patches(item["rois"]).astype(np.float64)
        p = np.asarray(item["presence"], dtype=bool)
        if total is None:
            total, total_sq, count = np.zeros_like(x), np.zeros(x.shape[0]), np.zeros(x.shape[0])
        total[p] += x[p]
        count[p] += 1
    mean = total / np.maximum(count, 1)[:, None, None, None]
    for subject in subjects:
        item = load(subject)
        x = unit_patches(item["rois"]).astype(np.float64)
        p = np.asarray(item["presence"], dtype=bool)
        total_sq[p] += ((x[p] - mean[p]) ** 2).reshape(int(p.sum()), -1).mean(1)
    var = total_sq / np.maximum(count, 1)
    scale = np.where(var > 0, np.sqrt(var), 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


@dataclass
class PretrainResult:
    """What :func:`pretrain_encoder` did: the loop's result and who was fitted / validated on."""

    fit: FitResult
    fit_subjects: list[str]
    val_subjects: list[str]


def pretrain_encoder(model: nn.Module, subjects: list[str], labels: np.ndarray, load: Loader,
                     config: FitConfig, val_fraction: float = 0.2, desc: str = "pretrain") -> PretrainResult:
    """Stage-1 4-way training of an encoder on one fold's training subjects.

    Parameters
    ----------
    model : RiT or Med3D
        ``forward(**load(subject)) -> logits``; trained in place, ends with the best epoch's weights.
    subjects : list of str
        The fold's *training* subjects only (with an image).
    labels : int[n]
        Their stages as indices into ``STAGES``.
    load : callable
        See :class:`SubjectDataset`.
    config : FitConfig
    val_fraction : float
        Share of the training subjects held out, stratified by stage, for early stopping.

    Returns
    -------
    PretrainResult
    """
    labels = np.asarray(labels, dtype=np.int64)
    subjects = list(subjects)
    fit_idx, val_idx = stratified_holdout(labels, val_fraction, config.seed)
    fit_subjects = [subjects[i] for i in fit_idx]
    val_subjects = [subjects[i] for i in val_idx]
    log.info("%s: %d subjects to fit, %d to validate (stratified by stage)", desc, len(fit_idx), len(val_idx))
    if hasattr(model, "set_input_normalization"):
        # From the fit subjects only: the validation part is held out as strictly as the test fold.
        model.set_input_normalization(*map(torch.from_numpy, fit_input_normalization(fit_subjects, load)))
    if getattr(getattr(model, "config", None), "roi_volume", False):
        pres = np.stack([np.asarray(load(s)["presence"], dtype=bool) for s in fit_subjects])
        vols = relative_log_volume(torch.from_numpy(np.stack([np.asarray(load(s)["volume"], dtype=np.float64)
                                                              for s in fit_subjects])),
                                   torch.from_numpy(pres)).double().numpy()
        n = np.maximum(pres.sum(0), 1)
        mean = (vols * pres).sum(0) / n
        sd = np.sqrt((((vols - mean) ** 2) * pres).sum(0) / n)
        model.set_volume_normalization(torch.from_numpy(mean), torch.from_numpy(np.where(sd > 0, sd, 1.0)))
    result = fit_classifier(model, SubjectDataset(fit_subjects, labels[fit_idx], load),
                            SubjectDataset(val_subjects, labels[val_idx], load) if len(val_idx) else None,
                            config, desc=desc)
    return PretrainResult(result, fit_subjects, val_subjects)


@torch.no_grad()
def embed_subjects(model: nn.Module, subjects: list[str], load: Loader, batch_size: int = 4
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Frozen-encoder tokens for every subject, and the RiT's own attention rollout.

    Parameters
    ----------
    model : RiT or Med3D
        ``encode(**inputs) -> float[B, T, d]``.
    subjects : list of str
    load : callable
    batch_size : int

    Returns
    -------
    tokens : float16[n, T, d]
    presence : uint8[n, T]
        From the inputs' ``presence`` (RiT), else all ones (Med3D: one token).
    rollout : float16[n, T, T] or None
        RiT: :func:`~rgenima_lib.models.rit.rollout_matrix` of the same pass; None for Med3D.
    """
    model.eval()
    tokens, presence, rollout = [], [], []
    is_rit = isinstance(model, RiT)
    loader = DataLoader(SubjectDataset(subjects, None, load), batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="embed", disable=None):
        inputs = {k: v for k, v in batch.items() if k != "label"}
        with torch.no_grad(), (keep_attention(model) if is_rit else contextlib.nullcontext()) as blocks:
            t = model.encode(**inputs).float()
            if is_rit:
                rollout.append(rollout_matrix([b.attention for b in blocks]).half().numpy())
        p = inputs.get("presence")
        p = torch.ones(t.shape[:2], dtype=torch.bool) if p is None else p.bool()
        tokens.append(t.half().numpy())
        presence.append(p.to(torch.uint8).numpy())
    return np.concatenate(tokens), np.concatenate(presence), np.concatenate(rollout) if is_rit else None


def build_encoder(info: dict) -> nn.Module:
    """A fresh encoder from a checkpoint's ``info`` (``{"encoder": "rit" | "med3d", "config": {...}}``)."""
    if info["encoder"] == "rit":
        return RiT(RiTConfig(**info["config"]))
    if info["encoder"] == "med3d":
        return Med3D(Med3DConfig(**info["config"]))
    raise ValueError(f"unknown encoder {info['encoder']!r}")


def unit_patches(arr: np.ndarray) -> np.ndarray:
    """Stored uint8 patches (value / 255) -> a new float32 array in [0, 1]; float input is copied as float32."""
    out = np.array(arr, dtype=np.float32)
    if np.asarray(arr).dtype == np.uint8:
        np.divide(out, 255.0, out=out)  # in place: one float32 copy of the subject, not two
    return out


def roi_loader(index: pd.DataFrame, in_memory: bool = False, *, stored: bool = False) -> Loader:
    """``load(subject)`` over the imaging stage's ROI arrays (``results/imaging/roi_index.tsv``).

    Parameters
    ----------
    index : DataFrame
        Columns ``subject``, ``rois`` (``uint8[N, S, S, S]`` .npy, value / 255) and ``info``
        (the JSON sidecar with the ``presence`` vector).
    in_memory : bool
        Keep every subject's uint8 array after its first read (3.6 MB per subject at S = 32;
        leave off at S = 96, where arrays are read memory-mapped each time).
    stored : bool
        Return the patches as stored (uint8, value / 255) instead of float32 in [0, 1]. The RiT reads
        either; uint8 batches are a quarter of the memory traffic (training and embedding use them).

    Returns
    -------
    callable
        ``load(subject) -> {"rois": float32[N, S, S, S] in [0, 1] (uint8 when ``stored``), "presence": bool[N],
        "volume": float32[N]}`` (volume: voxels per ROI before resampling, from the sidecar;
        used only by a RiT built with ``roi_volume=True``).
    """
    paths = {str(r.subject): (r.rois, r.info) for r in index.itertuples()}
    cache: dict[str, tuple] = {}

    def patches(arr: np.ndarray) -> np.ndarray:
        return np.array(arr) if stored else unit_patches(arr)

    def load(subject: str) -> dict:
        if subject not in cache:
            npy, info = paths[subject]
            meta = read_roi_info(info)
            presence = np.asarray(meta["presence"], dtype=bool)
            volume = np.asarray(meta["voxel_counts"], dtype=np.float32)
            arr = open_roi_patches(npy, subject=subject)
            if not in_memory:
                return {"rois": patches(arr), "presence": presence, "volume": volume}
            cache[subject] = (np.array(arr), presence, volume)
        arr, presence, volume = cache[subject]
        return {"rois": patches(arr), "presence": presence, "volume": volume}

    return load


def standardize_volume(volume: np.ndarray) -> np.ndarray:
    """MedicalNet's input normalisation: zero-mean, unit-sd over the brain (non-zero) voxels, 0 outside."""
    volume = np.asarray(volume, dtype=np.float32)
    brain = volume > 0
    if not brain.any():
        return volume
    mean, sd = volume[brain].mean(), volume[brain].std()
    return np.where(brain, (volume - mean) / max(float(sd), 1e-6), 0.0).astype(np.float32)


def volume_loader(index: pd.DataFrame, input_size: int | None = None) -> Loader:
    """``load(subject)`` over the whole-brain arrays (``results/imaging/wholebrain_index.tsv``).

    Parameters
    ----------
    index : DataFrame
        Columns ``subject`` and ``wholebrain`` (``uint8[D, H, W]`` .npy).
    input_size : int, optional
        Resize (trilinear) to input_size³ before the network; None keeps the stored shape.

    Returns
    -------
    callable
        ``load(subject) -> {"volume": float32[D, H, W]}``, standardised (:func:`standardize_volume`).
    """
    paths = {str(r.subject): r.wholebrain for r in index.itertuples()}

    def load(subject: str) -> dict:
        volume = np.asarray(open_wholebrain(paths[subject], subject=subject), dtype=np.float32) / 255.0
        if input_size and volume.shape != (input_size,) * 3:
            volume = F.interpolate(torch.from_numpy(volume)[None, None], size=(input_size,) * 3, mode="trilinear",
                                   align_corners=True)[0, 0].numpy()
        return {"volume": standardize_volume(volume)}

    return load


def subject_loader(encoder: str, index: pd.DataFrame, *, in_memory: bool = False,
                   input_size: int | None = None) -> Loader:
    """The loader an encoder reads: :func:`roi_loader` for ``"rit"``, :func:`volume_loader` for ``"med3d"``.

    ``in_memory`` applies to RiT's ROI arrays, ``input_size`` to Med3D's volumes. RiT patches come as
    stored (uint8): the encoder scales them itself, after its patch projection.
    """
    if encoder == "rit":
        return roi_loader(index, in_memory=in_memory, stored=True)
    return volume_loader(index, input_size)


# ----------------------------------------------------------------------------- one fold's stage-1 run
@dataclass(frozen=True)
class EncoderSettings:
    """The config's ``encoders.<encoder>`` section as ``pretrain-encoder`` reads it (defaults: the config schema).

    Attributes
    ----------
    model : dict
        :class:`~rgenima_lib.models.rit.RiTConfig` fields (n_rois and roi_size come from the data) or
        :class:`~rgenima_lib.models.med3d.Med3DConfig` fields plus ``weights`` and ``input_size``.
    train : dict
        :class:`~rgenima_lib.train.classifier.FitConfig` fields but the seed.
    val_fraction : float
        Share of the training subjects held out, stratified by stage, for early stopping.
    in_memory : bool
        Keep every subject's uint8 ROI arrays in memory (RiT).
    embed_batch_size : int
        Subjects per batch when predicting (the section's top-level ``encoders.embed_batch_size``).
    """

    model: dict
    train: dict
    val_fraction: float
    in_memory: bool
    embed_batch_size: int

    @classmethod
    def from_dict(cls, d: dict | None, encoder: str = "encoder") -> "EncoderSettings":
        """From the section's keys; a missing or unknown key is an error naming it."""
        return cls(**check_section(d, cls.__dataclass_fields__, f"encoders.{encoder}"))

    def fit_config(self, seed: int) -> FitConfig:
        return FitConfig.from_dict({**self.train, "seed": seed}, "encoders.train")


def stage1_encoder(encoder: str, model_settings: dict, index: pd.DataFrame, load: Loader) -> tuple[dict, nn.Module]:
    """A fresh stage-1 encoder and its checkpoint info; MedicalNet weights loaded when configured.

    Parameters
    ----------
    encoder : {"rit", "med3d"}
    model_settings : dict
        :attr:`EncoderSettings.model`.
    index : DataFrame
        The imaging index (RiT reads its ROI count and size from the first subject).
    load : callable

    Returns
    -------
    info : dict
        encoder, config, init_source (and input_size for Med3D).
    model : RiT or Med3D
    """
    model_settings = dict(model_settings)
    if encoder == "rit":
        first = load(str(index["subject"].iloc[0]))["rois"]
        cfg = RiTConfig(**{**model_settings, "n_rois": first.shape[0], "roi_size": first.shape[1]})
        return {"encoder": "rit", "config": cfg.to_dict(), "init_source": "random init"}, RiT(cfg)
    weights = model_settings.pop("weights", None)
    input_size = model_settings.pop("input_size", None)
    cfg = Med3DConfig(**model_settings)
    model = Med3D(cfg)
    if weights:
        report = load_medicalnet_weights(model, weights)
        log.info("MedicalNet weights: %d tensors loaded, %d ignored (%s), %d missing",
                 len(report.loaded), len(report.ignored), ", ".join(sorted({k.split(".")[0] for k in report.ignored})),
                 len(report.missing))
    else:
        log.warning("Med3D: no med3d weights configured: RANDOM INIT (stated in the checkpoint and cache)")
    return {"encoder": "med3d", "config": cfg.to_dict(), "init_source": model.init_source,
            "input_size": input_size}, model


@dataclass
class FoldPretraining:
    """What :func:`pretrain_fold` did.

    Attributes
    ----------
    model : RiT or Med3D
        Holds the best epoch's weights.
    info : dict
        Checkpoint info (:func:`save_checkpoint`): encoder, config, init source, fold, seed, training.
    result : PretrainResult
    subjects, stages : list of str, length n_test
        The fold's imaged test subjects, in folds-table order.
    probabilities : float32[n_test, 4]
        The stage-1 classifier's class probabilities (``STAGES`` order).
    """

    model: nn.Module
    info: dict
    result: PretrainResult
    subjects: list[str]
    stages: list[str]
    probabilities: np.ndarray


def pretrain_fold(encoder: str, folds: pd.DataFrame, index: pd.DataFrame, load: Loader, fold: int,
                  settings: EncoderSettings, seed: int, threads: int | None = None,
                  index_path: str | Path = "") -> FoldPretraining:
    """Stage-1 pretraining of one encoder on fold ``fold``'s imaged training subjects; predict its test subjects.

    Parameters
    ----------
    encoder : {"rit", "med3d"}
    folds : DataFrame
        ``folds.tsv`` (subject, fold, stage).
    index : DataFrame
        The imaging index the encoder reads (only its subjects take part).
    load : callable
        :func:`subject_loader` over ``index``.
    fold : int
        Test fold k: trained on every other fold.
    settings : EncoderSettings
    seed : int
    threads : int, optional
        torch CPU threads.
    index_path : path, optional
        Named in the error when the fold has no imaged training subject.

    Returns
    -------
    FoldPretraining
    """
    imaged = set(index["subject"])
    train = folds[(folds["fold"] != fold) & folds["subject"].isin(imaged)]
    test = folds[(folds["fold"] == fold) & folds["subject"].isin(imaged)]
    if train.empty:
        raise InputDataError(f"fold {fold} has no imaged training subject.", path=index_path,
                             fix="check the imaging index and folds.tsv.")
    seed_everything(seed, threads)
    info, model = stage1_encoder(encoder, settings.model, index, load)
    fit_cfg = settings.fit_config(seed)
    log.info("pretrain %s fold %d: %d training subjects (%s), %d test subjects; %s", encoder, fold,
             len(train), train["stage"].value_counts().to_dict(), len(test), info["init_source"])
    labels = np.array([STAGES.index(s) for s in train["stage"]], dtype=np.int64)
    result = pretrain_encoder(model, train["subject"].tolist(), labels, load, fit_cfg,
                              val_fraction=settings.val_fraction, desc=f"pretrain {encoder} fold {fold}")
    info.update({"fold": fold, "seed": seed, "train": fit_cfg.to_dict(), "best_epoch": result.fit.best_epoch,
                 "stopped_early": result.fit.stopped_early, "n_fit": len(result.fit_subjects),
                 "n_val": len(result.val_subjects), "class_weights": result.fit.class_weights,
                 "trained_on": "fold training subjects only (subject-level split)"})
    prob = predict_proba(model, SubjectDataset(test["subject"].tolist(), None, load),
                         batch_size=settings.embed_batch_size)
    return FoldPretraining(model, info, result, test["subject"].tolist(), test["stage"].tolist(),
                           prob.reshape(len(test), -1))


def save_checkpoint(model: nn.Module, path: str | Path, info: dict) -> None:
    """Write a model's state dict as safetensors, atomically, with ``info`` (JSON) in the metadata.

    Parameters
    ----------
    model : nn.Module
    path : str or Path
    info : dict
        Model kind, its config, init source, fold, training history summary: enough to
        rebuild the model with :func:`load_checkpoint`.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "info": json.dumps(info, sort_keys=True)})


def checkpoint_info(path: str | Path) -> dict:
    """The ``info`` dict stored by :func:`save_checkpoint`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an {CHECKPOINT_FORMAT} file")
    return json.loads(meta["info"])


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (strict); return its ``info``."""
    from safetensors.torch import load_file

    info = checkpoint_info(path)
    model.load_state_dict(load_file(str(path)), strict=True)
    return info


def plot_training_curve(history: list[dict], path: str | Path, title: str, best_epoch: int | None = None) -> None:
    """Training curve PNG: train / validation loss and validation (balanced) accuracy per epoch.

    Parameters
    ----------
    history : list of dict
        :attr:`FitResult.history`.
    path : str or Path
    title : str
    best_epoch : int, optional
        Marked with a vertical line (the weights that were kept).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    if history and "val_loss" in history[0]:
        ax1.plot(epochs, [h["val_loss"] for h in history], label="validation")
        ax2.plot(epochs, [h["val_accuracy"] for h in history], label="accuracy")
        ax2.plot(epochs, [h["val_balanced_accuracy"] for h in history], label="balanced accuracy")
        ax2.axhline(0.25, color="grey", lw=0.8, ls=":", label="chance (4 classes)")
    ax1.set(xlabel="epoch", ylabel="class-weighted cross-entropy", title="loss")
    ax2.set(xlabel="epoch", ylabel="validation", ylim=(0, 1.02), title="validation accuracy")
    for ax in (ax1, ax2):
        if best_epoch:
            ax.axvline(best_epoch, color="k", lw=0.8, ls="--")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
