"""The one supervised training loop: stage-1 encoders (RiT, Med3D) and every Table 1 baseline.

A model is any ``nn.Module`` whose ``forward(**inputs)`` returns logits ``float[B, K]``; a
dataset yields dicts of tensors, one of them ``label`` (int64, index into ``STAGES``). The
loop adds what every model here needs and none had better do alone:

- class balance: SMC is 5% of ADNI subjects (paper 4.4.1), so an unweighted loss learns to
  never say SMC; ``balance="loss"`` weights the cross-entropy by n / (K · n_k) on the
  training labels, ``"sampler"`` draws batches with probability ∝ 1 / n_k instead;
- early stopping on a validation part that the caller cut from the *training* subjects
  (never the test fold: docs/design.md, "Subject-level splits"), keeping the best epoch's weights;
- determinism on CPU: one seed fixes the initial weights (when the caller seeds before
  building the model, :func:`seed_everything`), dropout, shuffling and sampling; the same
  seed and thread count give bit-identical weights.

Paper 4.5.2 gives only the stage-2 LLM settings; the optimiser (AdamW), learning rates,
patience and batch sizes here are ours and live in the config.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm import tqdm

from rgenima_lib.settings import check_section

log = logging.getLogger("rgenima")

BALANCE = ("loss", "sampler", "none")


@dataclass
class FitConfig:
    """Settings of :func:`fit_classifier`.

    Parameters
    ----------
    epochs : int
        Upper bound; early stopping usually ends sooner.
    batch_size : int
    lr, weight_decay : float
        AdamW.
    patience : int
        Epochs without improvement of the monitored value before stopping.
    balance : {"loss", "sampler", "none"}
    monitor : {"loss", "balanced_accuracy"}
        Validation quantity that picks the best epoch (class-weighted loss by default:
        smoother than accuracy on small validation sets).
    grad_clip : float or None
        Max global gradient norm.
    warmup_epochs : int
        Linear learning-rate warm-up, then cosine decay to 0 over ``epochs``.
    seed : int
    eval_batch_size : int
    """

    epochs: int = 50
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.05
    patience: int = 8
    balance: str = "loss"
    monitor: str = "loss"
    grad_clip: float | None = 1.0
    warmup_epochs: int = 1
    seed: int = 0
    eval_batch_size: int = 32

    def __post_init__(self):
        if self.balance not in BALANCE:
            raise ValueError(f"balance must be one of {BALANCE}, not {self.balance!r}")
        if self.monitor not in ("loss", "balanced_accuracy"):
            raise ValueError(f"monitor must be 'loss' or 'balanced_accuracy', not {self.monitor!r}")

    @classmethod
    def from_dict(cls, d: dict | None, what: str = "train") -> "FitConfig":
        """From a config section plus the seed: every field, no other key (:func:`check_section`).

        The field defaults serve direct construction (tests, benchmarks); the workflow's
        values come from the config schema alone.
        """
        return cls(**check_section(d, cls.__dataclass_fields__, what))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    """What :func:`fit_classifier` did.

    Attributes
    ----------
    history : list of dict
        One row per epoch: epoch, lr, train_loss, val_loss, val_accuracy, val_balanced_accuracy.
    best_epoch : int
        1-based epoch whose weights the model holds at the end.
    stopped_early : bool
    class_weights : list of float
        Loss weights per class (all 1 unless ``balance="loss"``).
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    class_weights: list[float] = field(default_factory=list)


class TensorDataset(Dataset):
    """An in-memory dataset of equally long tensors, yielding one dict per row.

    Parameters
    ----------
    **tensors : Tensor or array
        Each of length n along its first axis (``label`` among them for training).
    """

    def __init__(self, **tensors):
        self.tensors = {k: torch.as_tensor(v) for k, v in tensors.items()}
        lengths = {len(v) for v in self.tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors differ in length: { {k: len(v) for k, v in self.tensors.items()} }")
        self.n = lengths.pop()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.tensors.items()}


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch; optionally fix torch's CPU thread count.

    Results are bit-identical only at the same thread count: a GEMM split across more
    threads sums in another order.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced class weights n / (K · n_k); 0 for a class absent from ``labels``.

    Parameters
    ----------
    labels : int[n]
    n_classes : int

    Returns
    -------
    float64[n_classes]
    """
    counts = np.bincount(np.asarray(labels, int), minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (fit, validation), stratified by class.

    Each class with at least 2 members gives round(fraction · n_k) ≥ 1 members to validation;
    a class with a single member stays in the fit part (it cannot be both learned and checked).

    Parameters
    ----------
    labels : int[n]
    fraction : float
        Validation share, 0 <= fraction < 1 (0: no validation part).
    seed : int

    Returns
    -------
    fit_idx, val_idx : int64 arrays, sorted
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if fraction <= 0:
        return np.arange(labels.size), np.zeros(0, dtype=np.int64)
    val = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        if idx.size < 2:
            continue
        n_val = min(idx.size - 1, max(1, int(round(fraction * idx.size))))
        val.extend(rng.choice(idx, n_val, replace=False).tolist())
    val = np.sort(np.asarray(val, dtype=np.int64))
    fit = np.setdiff1d(np.arange(labels.size), val)
    return fit, val


def _inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "label"}


def _labels_of(dataset: Dataset) -> np.ndarray:
    if isinstance(dataset, TensorDataset):
        return dataset.tensors["label"].numpy()
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return np.asarray(labels)
    return np.array([int(dataset[i]["label"]) for i in range(len(dataset))])


@torch.no_grad()
def predict_proba(model: nn.Module, dataset: Dataset, batch_size: int = 32, desc: str = "predict") -> np.ndarray:
    """Class probabilities for every row of ``dataset``, in order.

    Parameters
    ----------
    model : nn.Module
        ``forward(**inputs) -> float[B, K]`` logits.
    dataset : Dataset of dicts (``label`` optional, ignored)
    batch_size : int

    Returns
    -------
    float64[n, K]
    """
    was_training = model.training
    model.eval()
    out = []
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc=desc, disable=None, leave=False):
        out.append(torch.softmax(model(**_inputs(batch)).float(), dim=1).double().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))


def _evaluate(model, dataset, weight, batch_size) -> dict:
    model.eval()
    losses, preds, labels = [], [], []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            logits = model(**_inputs(batch)).float()
            y = batch["label"].long()
            # reduction="none" already multiplies each row by weight[y].
            losses.append(F.cross_entropy(logits, y, weight=weight, reduction="none"))
            preds.append(logits.argmax(1))
            labels.append(y)
    y, p = torch.cat(labels).numpy(), torch.cat(preds).numpy()
    # Weighted-mean loss: the same normalisation F.cross_entropy uses with class weights.
    loss = float(torch.cat(losses).sum() / weight[torch.cat(labels)].sum().clamp(min=1e-12))
    recalls = [np.mean(p[y == k] == k) for k in np.unique(y)]
    return {"val_loss": loss, "val_accuracy": float(np.mean(p == y)), "val_balanced_accuracy": float(np.mean(recalls))}


def _lr_factor(epoch_float: float, epochs: int, warmup: int) -> float:
    if warmup and epoch_float < warmup:
        return (epoch_float + 1e-3) / warmup
    span = max(epochs - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (epoch_float - warmup) / span)))


def make_optimizer(model: nn.Module, config: FitConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay on biases, norms and position tables.

    ``foreach=False`` updates one tensor at a time: the multi-tensor path allocates
    temporaries the size of all parameters, which for RiT's 679M-weight Conv3D at S = 96 is
    ~5 GB more peak memory for no gain on CPU. AdamW keeps its moments in the parameters'
    dtype (bf16 moments for a bf16 patch kernel).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2 and p.shape[0] != 1]
    no_decay = [p for p in params if not (p.dim() >= 2 and p.shape[0] != 1)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, foreach=False)


def fit_classifier(model: nn.Module, train: Dataset, val: Dataset | None, config: FitConfig,
                   n_classes: int = 4, desc: str = "train") -> FitResult:
    """Train ``model`` in place with AdamW and cross-entropy; keep the best validation epoch.

    Parameters
    ----------
    model : nn.Module
        ``forward(**inputs) -> float[B, n_classes]``. Only parameters with
        ``requires_grad`` are optimised (frozen encoders stay frozen).
    train : Dataset of dicts with ``label``
        Training rows (the fit part of the fold's training subjects).
    val : Dataset of dicts with ``label``, or None
        Validation rows cut from the training subjects; None trains all epochs and keeps
        the last.
    config : FitConfig
    n_classes : int
    desc : str
        Progress-bar label.

    Returns
    -------
    FitResult
        The model ends holding the best epoch's weights.
    """
    torch.manual_seed(config.seed)
    labels = _labels_of(train)
    cw = class_weights(labels, n_classes) if config.balance == "loss" else np.ones(n_classes)
    weight = torch.tensor(cw, dtype=torch.float32)
    gen = torch.Generator().manual_seed(config.seed)
    if config.balance == "sampler":
        per_row = class_weights(labels, n_classes)[labels]
        sampler = WeightedRandomSampler(torch.tensor(per_row, dtype=torch.double), num_samples=len(labels),
                                        replacement=True, generator=gen)
        loader = DataLoader(train, batch_size=config.batch_size, sampler=sampler)
    else:
        loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, generator=gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(model, config)
    result = FitResult(class_weights=cw.tolist())
    best_score, best_state, bad = math.inf, None, 0
    steps = max(len(loader), 1)
    for epoch in tqdm(range(1, config.epochs + 1), desc=desc, disable=None):
        model.train()
        total, count = 0.0, 0
        for i, batch in enumerate(tqdm(loader, desc=f"epoch {epoch}", disable=None, leave=False)):
            lr = config.lr * _lr_factor(epoch - 1 + i / steps, config.epochs, config.warmup_epochs)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(**_inputs(batch)).float()
            y = batch["label"].long()
            loss = F.cross_entropy(logits, y, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        row = {"epoch": epoch, "lr": lr, "train_loss": total / max(count, 1)}
        if val is not None and len(val):
            row.update(_evaluate(model, val, weight, config.eval_batch_size))
            score = row["val_loss"] if config.monitor == "loss" else -row["val_balanced_accuracy"]
        else:
            score = -epoch  # no validation: the last epoch is the best
        result.history.append(row)
        log.debug("%s epoch %d: %s", desc, epoch, row)
        if score < best_score - 1e-9:
            best_score, bad, result.best_epoch = score, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= config.patience:
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
