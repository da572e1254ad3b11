"""Classification metrics of paper Tables 1–5, plus balanced accuracy, AUC and uncertainty.

Table 1 reports accuracy and macro-F1; Tables 2–5 per-class precision, recall, F1 and
specificity for NC, SMC, MCI and AD (paper 2.1). We add balanced accuracy and one-vs-rest
AUC (the paper's accuracy is dominated by MCI, 46% of subjects), the mean ± sd over folds,
and a percentile bootstrap 95% CI over subjects of the pooled out-of-fold predictions. The
paper reports single numbers without uncertainty.

Conventions (identical to scikit-learn's, tested against it):

- a prediction may be "unparseable" (a generated answer that names no stage: index -1);
  it is wrong for its true class and counts as no class's positive;
- precision / recall / F1 with no denominator are 0 (``zero_division=0``);
- macro-F1 averages over the stages present in the truth or the predictions;
- balanced accuracy averages recall over the stages present in the truth;
- specificity of class k is TN / (TN + FP) (NaN without negatives);
- AUC of class k is one-vs-rest from ``prob[:, k]`` (NaN when class k is absent or is
  everything); the macro AUC averages the defined ones.

Everything is computed from confusion counts ``int[..., K, K+1]`` (last column:
unparseable), vectorised over any leading axes, so a 1,000-replicate bootstrap is one
array operation.
"""

from __future__ import annotations

import numpy as np

from rgenima_lib.vocabulary import STAGES

PER_CLASS = ("precision", "recall", "f1", "specificity", "auc", "support")
OVERALL = ("accuracy", "macro_f1", "balanced_accuracy", "auc_macro", "unparsed_rate")


def label_indices(values, labels=STAGES) -> np.ndarray:
    """Stage names -> indices into ``labels``; anything else ('' or unknown) -> -1.

    Parameters
    ----------
    values : sequence of str
    labels : sequence of str

    Returns
    -------
    int64[n]
    """
    index = {s: i for i, s in enumerate(labels)}
    return np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(STAGES)) -> np.ndarray:
    """Confusion counts with an extra column for unparseable predictions.

    Parameters
    ----------
    y_true : int[n]
        True class indices (0..K-1).
    y_pred : int[n]
        Predicted indices, -1 for unparseable.
    n_classes : int

    Returns
    -------
    int64[K, K + 1]
        Rows: true class; columns: predicted class, last = unparseable.
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    if y_true.size and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise ValueError("y_true holds an index outside 0..K-1")
    col = np.where(y_pred < 0, n_classes, y_pred)
    return np.bincount(y_true * (n_classes + 1) + col, minlength=n_classes * (n_classes + 1)).reshape(
        n_classes, n_classes + 1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(STAGES)) -> np.ndarray:
    """int64[K, K]: rows true, columns predicted (unparseable predictions left out)."""
    return confusion_counts(y_true, y_pred, n_classes)[:, :n_classes]


def _div(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, empty, float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def metrics_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """All count-based metrics from confusion counts.

    Parameters
    ----------
    counts : int[..., K, K + 1]

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``balanced_accuracy``, ``unparsed_rate``: float[...];
        ``precision``, ``recall``, ``f1``, ``specificity``, ``support``: float[..., K].
    """
    counts = np.asarray(counts, float)
    k = counts.shape[-2]
    tp = np.diagonal(counts[..., :k], axis1=-2, axis2=-1)
    pred = counts[..., :k].sum(-2)
    true = counts.sum(-1)
    n = true.sum(-1)
    fp = pred - tp
    tn = n[..., None] - true - fp
    precision = _div(tp, pred, 0.0)
    recall = _div(tp, true, 0.0)
    f1 = _div(2 * tp, pred + true, 0.0)
    in_use = (true + pred) > 0
    has_true = true > 0
    return {
        "accuracy": _div(tp.sum(-1), n, np.nan),
        "macro_f1": _div((f1 * in_use).sum(-1), in_use.sum(-1), np.nan),
        "balanced_accuracy": _div((recall * has_true).sum(-1), has_true.sum(-1), np.nan),
        "unparsed_rate": _div(counts[..., k].sum(-1), n, np.nan),
        "precision": precision, "recall": recall, "f1": f1,
        "specificity": _div(tn, tn + fp, np.nan),
        "support": true,
    }


def auc_one_vs_rest(y_true: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-class one-vs-rest ROC AUC (Mann–Whitney U with tied ranks averaged).

    Parameters
    ----------
    y_true : int[n]
    prob : float[n, K]

    Returns
    -------
    float64[K]
        NaN for a class with no positive or no negative.
    """
    # scipy.stats takes about a second to import: only here, not for every job that writes a predictions table.
    from scipy.stats import rankdata

    y_true = np.asarray(y_true)
    prob = np.asarray(prob, float)
    out = np.full(prob.shape[1], np.nan)
    for c in range(prob.shape[1]):
        pos = y_true == c
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos and n_neg:
            ranks = rankdata(prob[:, c])
            out[c] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, prob: np.ndarray | None = None,
                           labels=STAGES) -> dict[str, float]:
    """Every metric of one set of predictions, flat.

    Parameters
    ----------
    y_true : int[n]
    y_pred : int[n]
        -1 = unparseable.
    prob : float[n, K], optional
        Class probabilities (for AUC).
    labels : sequence of str
        Class names, for the per-class keys.

    Returns
    -------
    dict
        ``n``, the :data:`OVERALL` keys, and ``<metric>_<label>`` for the :data:`PER_CLASS`
        metrics (``auc_*`` NaN without ``prob``).
    """
    m = metrics_from_counts(confusion_counts(y_true, y_pred, len(labels)))
    auc = auc_one_vs_rest(y_true, prob) if prob is not None else np.full(len(labels), np.nan)
    out = {"n": int(len(y_true))}
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "unparsed_rate"):
        out[key] = float(m[key])
    out["auc_macro"] = float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")
    for i, label in enumerate(labels):
        for key in ("precision", "recall", "f1", "specificity", "support"):
            out[f"{key}_{label}"] = float(m[key][i])
        out[f"auc_{label}"] = float(auc[i])
    return out


def summarize_folds(per_fold: list[dict[str, float]]) -> dict[str, tuple[float, float, int]]:
    """Mean and sample sd (ddof 1) of each metric over folds, ignoring NaN folds.

    Parameters
    ----------
    per_fold : list of dict
        :func:`classification_metrics` of each fold.

    Returns
    -------
    dict
        metric -> (mean, sd, number of folds with a value); sd is NaN with fewer than 2.
    """
    out = {}
    for key in per_fold[0]:
        v = np.array([f[key] for f in per_fold], float)
        v = v[np.isfinite(v)]
        out[key] = (float(v.mean()) if v.size else float("nan"),
                    float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size))
    return out


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, prob: np.ndarray | None = None, labels=STAGES,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of every metric, resampling subjects with replacement.

    Parameters
    ----------
    y_true, y_pred : int[n]
    prob : float[n, K], optional
    labels : sequence of str
    n_boot : int
        Replicates (1,000, as the paper's other bootstrap analyses).
    seed : int
    level : float
        Coverage (0.95: the 2.5th and 97.5th percentiles).

    Returns
    -------
    dict
        metric key (as in :func:`classification_metrics`) -> (low, high).
    """
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    n, k = y_true.size, len(labels)
    idx = rng.integers(0, n, size=(n_boot, n))
    col = np.where(y_pred < 0, k, y_pred)
    codes = (y_true * (k + 1) + col)[idx] + (np.arange(n_boot) * k * (k + 1))[:, None]
    counts = np.bincount(codes.ravel(), minlength=n_boot * k * (k + 1)).reshape(n_boot, k, k + 1)
    m = metrics_from_counts(counts)
    reps: dict[str, np.ndarray] = {key: m[key] for key in ("accuracy", "macro_f1", "balanced_accuracy", "unparsed_rate")}
    for i, label in enumerate(labels):
        for key in ("precision", "recall", "f1", "specificity", "support"):
            reps[f"{key}_{label}"] = m[key][:, i]
    if prob is not None:
        auc = np.array([auc_one_vs_rest(y_true[r], np.asarray(prob)[r]) for r in idx])
        with np.errstate(all="ignore"):
            defined = np.isfinite(auc)
            reps["auc_macro"] = np.where(defined.any(1), np.nansum(auc, 1) / np.maximum(defined.sum(1), 1), np.nan)
        for i, label in enumerate(labels):
            reps[f"auc_{label}"] = auc[:, i]
    alpha = (1 - level) / 2
    out = {}
    for key, v in reps.items():
        v = v[np.isfinite(v)]
        out[key] = ((float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))) if v.size
                    else (float("nan"), float("nan")))
    return out
