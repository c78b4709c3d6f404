"""Scoring datasets with a multi-task model.

Which head scores a dataset is a fact of the task definitions, not of code:
the task's own head when the model has one, else the head named by
``predict_with`` (AX -> MNLI), else a head named in ``zero_shot`` whose labels
are mapped onto the task's labels (MNLI -> RTE/SciTail/HANS: neutral and
contradiction -> not entailment), as in the TAT paper's Table 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from data_utils.dataset import TaskDataset, collate
from data_utils.task_def import TaskDef, TaskType
from mt_dnn import distributed
from mt_dnn.distributed import unwrap
from mt_dnn.metrics import compute_metrics
from mt_dnn.model import MultiTaskModel
from mt_dnn.submission import format_regression


class NonFiniteOutputs(ValueError):
    """The model produced NaN or infinite outputs: nothing derived from them is trustworthy."""


@dataclass(frozen=True)
class HeadChoice:
    head: str  # name of the head that scores the dataset
    label_map: np.ndarray | None  # head class id -> task class id, for zero-shot heads


def choose_head(task: TaskDef, heads: Mapping[str, TaskDef]) -> HeadChoice:
    if task.name in heads:
        return HeadChoice(task.name, None)
    if task.predict_with and task.predict_with in heads:
        head = heads[task.predict_with]
        if head.labels != task.labels:
            raise ValueError(
                f"task '{task.name}' is predicted with '{head.name}' but their labels differ"
            )
        return HeadChoice(head.name, None)
    for head_name, mapping in task.zero_shot.items():
        if head_name in heads:
            head = heads[head_name]
            missing = [label for label in head.labels or () if label not in mapping]
            if missing:
                raise ValueError(
                    f"task '{task.name}': zero_shot[{head_name}] does not map {missing}"
                )
            ids = [task.label_to_id(mapping[label]) for label in head.labels or ()]
            return HeadChoice(head.name, np.asarray(ids))
    raise ValueError(
        f"no head of this model can score task '{task.name}': the model has heads "
        f"{sorted(heads)}, and the task names no predict_with/zero_shot head among them"
    )


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def batch_to(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def predict_scores(
    model: MultiTaskModel,
    dataset: TaskDataset,
    head: str,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Raw head outputs in dataset order: probabilities [N, C] or regression values [N].

    Under data parallel (a process group is active) each rank scores every
    ``world_size``-th batch-sized block of the length-sorted rows and the
    scores are gathered, so every rank returns all of them.
    """
    model = unwrap(model)  # scoring needs no DDP hooks
    was_training = model.training
    model.eval()
    order = np.argsort(dataset.lengths, kind="stable")  # similar lengths -> little padding
    rank, world = distributed.rank(), distributed.world_size()
    blocks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    mine = [int(i) for block in blocks[rank::world] for i in block]
    outputs: list[np.ndarray] = []
    starts = range(0, len(mine), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"predict {dataset.task.name}_{dataset.split}", leave=False)
    regression = model.heads[head].regression
    for start in starts:
        rows = [dataset[i] for i in mine[start : start + batch_size]]
        batch = batch_to(collate(rows, model.pad_token_id, dataset.task), device)
        with autocast_context(device, amp_dtype):
            logits = model(batch, head)
        logits = logits.float()
        scores = logits if regression else torch.softmax(logits, dim=-1)
        outputs.append(scores.cpu().numpy())
    model.train(was_training)
    parts = distributed.all_gather_objects((mine, outputs))
    rows_scored = np.asarray([i for part, _ in parts for i in part], dtype=np.int64)
    chunks = [chunk for _, part in parts for chunk in part]
    stacked = np.concatenate(chunks) if chunks else np.zeros((0,))
    result = np.empty_like(stacked)
    result[rows_scored] = stacked
    return result


def scores_to_predictions(task: TaskDef, choice: HeadChoice, scores: np.ndarray) -> np.ndarray:
    """Class ids of the task (mapped for zero-shot heads) or clipped regression values."""
    if task.task_type is TaskType.REGRESSION:
        if task.label_range is None:
            return scores
        return np.clip(scores, *task.label_range)
    predictions = scores.argmax(axis=-1)
    if choice.label_map is not None:
        predictions = choice.label_map[predictions]
    return predictions


def labels_of(dataset: TaskDataset) -> np.ndarray | None:
    if not dataset.has_labels:
        return None
    return np.asarray([row["label"] for row in dataset.rows])


def evaluate(
    model: MultiTaskModel,
    dataset: TaskDataset,
    heads: Mapping[str, TaskDef],
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> dict:
    """Predictions and, when the data are labelled, the task's metrics.

    Non-finite model outputs (diverged weights) are refused, never turned into
    predictions: NaN logits would otherwise argmax to class 0.
    """
    choice = choose_head(dataset.task, heads)
    scores = predict_scores(model, dataset, choice.head, batch_size, device, amp_dtype, progress)
    bad = ~np.isfinite(scores.reshape(len(scores), -1)).all(axis=1) if len(scores) else []
    if np.any(bad):
        first = dataset.uids[int(np.flatnonzero(bad)[0])]
        raise NonFiniteOutputs(
            f"{dataset.task.name}_{dataset.split}: the model's outputs are not finite on "
            f"{int(np.sum(bad))} of {len(scores)} rows (first: uid {first}); its weights have "
            "diverged, so no prediction or metric is written"
        )
    predictions = scores_to_predictions(dataset.task, choice, scores)
    labels = labels_of(dataset)
    metrics = compute_metrics(dataset.task, predictions, labels) if labels is not None else {}
    return {
        "head": choice.head,
        "scores": scores,
        "predictions": predictions,
        "labels": labels,
        "metrics": metrics,
    }


def prediction_strings(task: TaskDef, predictions: np.ndarray) -> list[str]:
    """Label strings, or regression values as GLUE takes them (clipped, 3 decimals)."""
    if task.task_type is TaskType.REGRESSION:
        if task.label_range is not None:
            return format_regression(predictions, task.label_range)
        return [f"{float(v):.3f}" for v in predictions]
    assert task.labels is not None
    return [task.labels[int(i)] for i in predictions]
