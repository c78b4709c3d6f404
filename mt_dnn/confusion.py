"""Confusion matrices: computed from predictions, saved and loaded as JSON, plotted.

Rows are gold labels, columns predicted labels. Classification uses class ids
(argmax of the logits); regression cuts ``task_def.label_range`` into ``n_bins``
equal bins and bins both gold values and predictions with :func:`bin_index`.

TAT reads these files in oracle mode (``--tat_oracle``) and writes one per
epoch; predict.py writes them from dev predictions. The file format::

    {
      "format": "mt-dnn-confusion",
      "version": 1,
      "tasks": {
        "mnli": {"labels": ["entailment", "neutral", "contradiction"],
                 "matrix": [[812, 90, 41], [77, 700, 101], [30, 95, 850]]},
        "stsb": {"labels": ["[0,0.5)", ..., "[4.5,5]"], "matrix": [[...], ...]}
      }
    }

``matrix`` is square, of side ``len(labels)``, with finite non-negative
numbers (counts, or sums of probabilities). No pickle: it is plain JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from data_utils.task_def import TaskDef, TaskType

FORMAT = "mt-dnn-confusion"
VERSION = 1


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().float().cpu().numpy()
    return np.asarray(values)


def bin_index(values, label_range: tuple[float, float], n_bins: int = 10) -> np.ndarray:
    """Bin of each value: ``floor((v - low) / width)``, clipped to [0, n_bins - 1].

    Values outside the range fall in the first or last bin; the upper end of
    the range belongs to the last bin.
    """
    low, high = label_range
    values = _as_numpy(values).astype(np.float64)
    bins = np.floor((values - low) / (high - low) * n_bins)
    return np.clip(np.nan_to_num(bins, nan=0.0), 0, n_bins - 1).astype(np.int64)


def bin_labels(label_range: tuple[float, float], n_bins: int = 10) -> list[str]:
    """Names of the bins: ``[low,high)``, the last one closed."""
    low, high = label_range
    edges = [low + (high - low) * i / n_bins for i in range(n_bins + 1)]
    names = [f"[{edges[i]:g},{edges[i + 1]:g})" for i in range(n_bins)]
    names[-1] = names[-1][:-1] + "]"
    return names


def label_names(task_def: TaskDef, n_bins: int = 10) -> list[str]:
    """Row/column names of a task's confusion matrix."""
    if task_def.task_type is TaskType.REGRESSION:
        return bin_labels(label_range_of(task_def), n_bins)
    return list(task_def.labels or ())


def label_range_of(task_def: TaskDef) -> tuple[float, float]:
    if task_def.label_range is None:
        raise ValueError(
            f"task '{task_def.name}': a regression task needs label_range to be binned"
        )
    return task_def.label_range


def confusion_matrix(task_def: TaskDef, predictions, labels, n_bins: int = 10) -> np.ndarray:
    """Counts [n, n] of (gold row, predicted column).

    Classification: ``predictions`` are logits/probabilities [N, C] (argmax is
    taken) or class ids [N]. Regression: predicted values [N], binned like the
    gold values.
    """
    predictions = _as_numpy(predictions)
    labels = _as_numpy(labels)
    if task_def.task_type is TaskType.REGRESSION:
        label_range = label_range_of(task_def)
        n = n_bins
        pred_ids = bin_index(predictions.reshape(-1), label_range, n_bins)
        gold_ids = bin_index(labels.reshape(-1), label_range, n_bins)
    else:
        n = task_def.n_class
        pred_ids = predictions.argmax(-1) if predictions.ndim == 2 else predictions
        pred_ids = pred_ids.astype(np.int64)
        gold_ids = labels.astype(np.int64).reshape(-1)
    if len(pred_ids) != len(gold_ids):
        raise ValueError(f"{len(pred_ids)} predictions for {len(gold_ids)} labels")
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (gold_ids, pred_ids), 1)
    return matrix


def save_confusion(path: str | Path, matrices: Mapping[str, tuple[Sequence[str], object]]) -> None:
    """Write ``{task: (label_names, matrix)}`` as JSON, atomically (temp file + rename)."""
    tasks = {}
    for task, (names, matrix) in matrices.items():
        matrix = np.asarray(matrix, dtype=np.float64)
        _check(path, task, list(names), matrix)
        as_list = [[_number(v) for v in row] for row in matrix]
        tasks[str(task)] = {"labels": [str(n) for n in names], "matrix": as_list}
    text = json.dumps({"format": FORMAT, "version": VERSION, "tasks": tasks}, indent=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _number(value: float) -> int | float:
    """Counts stay integers in the file; probability sums stay floats."""
    return int(value) if float(value).is_integer() else float(value)


def load_confusion(path: str | Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Read a file written by :func:`save_confusion` into ``{task: (label_names, matrix)}``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: confusion-matrix file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid JSON confusion-matrix file: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a confusion-matrix file (expected format {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {raw.get('version')!r}, expected {VERSION}")
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict):
        raise ValueError(f"{path}: 'tasks' must map task names to {{labels, matrix}}")
    out = {}
    for task, entry in tasks.items():
        if not isinstance(entry, dict) or set(entry) != {"labels", "matrix"}:
            raise ValueError(f"{path}: task '{task}' must have exactly 'labels' and 'matrix'")
        names = entry["labels"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: task '{task}': labels must be a list of strings")
        try:
            matrix = np.asarray(entry["matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}: task '{task}': matrix must be a list of number rows"
            ) from None
        _check(path, task, names, matrix)
        out[task] = (names, matrix)
    return out


def _check(path, task: str, names: list[str], matrix: np.ndarray) -> None:
    n = len(names)
    if matrix.shape != (n, n):
        raise ValueError(
            f"{path}: task '{task}': matrix has shape {list(matrix.shape)}, expected [{n}, {n}] "
            f"for {n} labels"
        )
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError(f"{path}: task '{task}': matrix entries must be finite and >= 0")


def plot_confusion(matrix, label_names: Sequence[str], title: str):
    """A heat map of the row-normalised matrix, counts written in the cells (TAT paper, Fig. 1).

    Returns a matplotlib Figure built without pyplot (no global state), ready for
    ``fig.savefig`` or ``SummaryWriter.add_figure``.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    n = len(label_names)
    rows = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = max(3.0, 0.55 * n + 1.8)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of gold row")
    ax.set_xticks(range(n), labels=list(label_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(label_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    return fig
