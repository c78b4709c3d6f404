"""Adversarial regularizers: small objects that own one micro-batch's forward and backward.

    regularizer = build_regularizer(cfg, task_defs)
    out = regularizer.step(model, batch, task_def, backward)   # every micro-batch
    summary = regularizer.end_epoch(epoch, out_dir, writer)     # every epoch

Each module's docstring is its method card (paper, equations, defaults, cost).
"""

from __future__ import annotations

from collections.abc import Mapping

from data_utils.task_def import TaskDef, TaskType
from mt_dnn.adversarial.base import Regularizer, StepOutput
from mt_dnn.adversarial.freelb import FreeLBRegularizer
from mt_dnn.adversarial.none import NoRegularizer
from mt_dnn.adversarial.r3f import R3FRegularizer
from mt_dnn.adversarial.random_direction import RandomDirectionRegularizer
from mt_dnn.adversarial.smart import SmartRegularizer
from mt_dnn.adversarial.tat import TargetedRegularizer

REGULARIZERS: dict[str, type[Regularizer]] = {
    "none": NoRegularizer,
    "smart": SmartRegularizer,
    "tat": TargetedRegularizer,
    "freelb": FreeLBRegularizer,
    "r3f": R3FRegularizer,
    "random": RandomDirectionRegularizer,
}

from mt_dnn.adversarial.config import AdvConfig  # noqa: E402  (its validation reads REGULARIZERS)


def build_regularizer(cfg: AdvConfig, task_defs: Mapping[str, TaskDef]) -> Regularizer:
    """The regularizer ``cfg.adv`` names, for these tasks."""
    if cfg.adv not in REGULARIZERS:
        raise ValueError(f"adv {cfg.adv!r} is not one of {list(REGULARIZERS)}")
    if cfg.adv != "none":
        for task in task_defs.values():
            # A regression head emits one value per example: only squared error compares two.
            if task.task_type is TaskType.REGRESSION and task.adv_loss != "mse":
                raise ValueError(
                    f"task '{task.name}': adv_loss {task.adv_loss!r} needs class probabilities; "
                    "a regression task must use adv_loss: mse"
                )
    return REGULARIZERS[cfg.adv](cfg, task_defs)


__all__ = [
    "REGULARIZERS",
    "AdvConfig",
    "FreeLBRegularizer",
    "NoRegularizer",
    "R3FRegularizer",
    "RandomDirectionRegularizer",
    "Regularizer",
    "SmartRegularizer",
    "StepOutput",
    "TargetedRegularizer",
    "build_regularizer",
]
