"""Task losses, chosen by the ``loss`` field of the task definition.

Losses are computed in fp32 whatever the autocast dtype: the logits of a bf16
forward are cast up before the reduction.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from data_utils.task_def import TaskDef


def _cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), labels.long())


def _mse(predictions: Tensor, labels: Tensor) -> Tensor:
    return F.mse_loss(predictions.float(), labels.float())


LOSSES = {"cross_entropy": _cross_entropy, "mse": _mse}


def task_loss(logits: Tensor, labels: Tensor, task: TaskDef) -> Tensor:
    """Mean loss of a batch of one task."""
    return LOSSES[task.loss](logits, labels)
