"""GLUE metrics as pure numpy functions of (predictions, labels).

Every metric returns a Python float scaled to a percentage (x100), as mt-dnn
reports them: accuracy 87.5, not 0.875.

- ``accuracy``: share of predicted class ids equal to the labels.
- ``f1``: binary F1 of class 1 (GLUE's MRPC and QQP); 0 when class 1 is never
  predicted nor present.
- ``mcc``: Matthews correlation (GLUE's CoLA), multiclass form as scikit-learn.
- ``pearson`` / ``spearman``: correlation of regression outputs (STS-B);
  Spearman is Pearson on ranks, ties averaged.

Degenerate inputs give 0, not NaN and not a warning: a constant prediction has
no correlation with anything (MCC, Pearson and Spearman are 0), which is what a
model that collapsed to one output deserves in a results table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from data_utils.task_def import TaskDef

__all__ = ["METRICS", "compute_metrics"]


def _check(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"predictions and labels must be 1-D, got shapes {predictions.shape} and "
            f"{labels.shape} (pass class ids, not logits)"
        )
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no examples to score")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    return float(np.mean(predictions == labels) * 100.0)


def f1(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    pred_pos, true_pos = predictions == 1, labels == 1
    tp = np.sum(pred_pos & true_pos)
    denominator = np.sum(pred_pos) + np.sum(true_pos)  # = 2tp + fp + fn
    return float(2.0 * tp / denominator * 100.0) if denominator else 0.0


def mcc(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    classes, encoded = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    n = len(labels)
    true_ids, pred_ids = encoded[:n], encoded[n:]
    k = len(classes)
    t_sum = np.bincount(true_ids, minlength=k).astype(np.float64)
    p_sum = np.bincount(pred_ids, minlength=k).astype(np.float64)
    correct = float(np.sum(true_ids == pred_ids))
    # Floats: n**2 overflows nothing, and QQP-sized inputs stay exact enough.
    cov_tp = correct * n - t_sum @ p_sum
    cov_pp = float(n) ** 2 - p_sum @ p_sum
    cov_tt = float(n) ** 2 - t_sum @ t_sum
    if cov_pp == 0 or cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp) * 100.0)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean()
    y = y.astype(np.float64) - y.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if denominator == 0:
        return 0.0
    # Clip: rounding can push |r| a hair past 1 for (anti-)identical inputs.
    return float(np.clip(np.dot(x, y) / denominator, -1.0, 1.0) * 100.0)


def pearson(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    return _correlation(predictions, labels)


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged (scipy.stats.rankdata's default), in numpy only.

    The training runtime needs no scipy; the tests compare against scipy.
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, and the mean 1-based rank of each run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    return _correlation(rankdata(predictions), rankdata(labels))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(task_def: TaskDef, predictions, labels) -> dict[str, float]:
    """``{metric: value}`` for every metric in ``task_def.metrics``, in that order."""
    unknown = [name for name in task_def.metrics if name not in METRICS]
    if unknown:
        raise ValueError(
            f"task '{task_def.name}': unknown metric(s) {unknown}; valid: {list(METRICS)}"
        )
    predictions, labels = _check(predictions, labels)
    return {name: METRICS[name](predictions, labels) for name in task_def.metrics}
