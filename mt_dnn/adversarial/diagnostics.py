"""Does a perturbation attack? Measurements shared by the tests and experiments/.

:func:`measure_attack` runs SMART's or TAT's perturbation on one batch, as the
regularizer would (its space, update, noise, dropout replay), and reports

- ``agreement``: the fraction of real components where delta has the sign of the
  first step's signed gradient (+g for SMART's ascent, -g for TAT's descent);
  0.5 is chance, i.e. a random direction;
- ``before`` / ``after``: SMART's divergence at the initial noise and at the
  final delta; TAT's mean probability of the sampled target at x and at x + delta;
- ``norm_ratio``: ||delta|| / ||x|| over real tokens (x in the perturbed space).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from data_utils.task_def import TaskDef, TaskType
from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import clean_forward, perturbation
from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.adversarial.smart import SmartRegularizer
from mt_dnn.adversarial.tat import TargetedRegularizer


@dataclass
class AttackReport:
    agreement: float
    before: float
    after: float
    norm_ratio: float


def measure_attack(
    model, batch: Mapping[str, Tensor], task: TaskDef, cfg: AdvConfig
) -> AttackReport:
    """SMART's (``cfg.adv == "smart"``) or TAT's perturbation of ``batch``, measured."""
    from mt_dnn.adversarial import build_regularizer

    if cfg.adv not in ("smart", "tat"):
        raise ValueError(f"measure_attack measures smart or tat, not {cfg.adv!r}")
    reg = build_regularizer(cfg, {task.name: task})
    device = batch["input_ids"].device
    generator = torch.Generator(device=device).manual_seed(cfg.adv_seed)
    masks = reg.masks(device)
    masks.clean()
    clean = clean_forward(model, batch, task, reg.space)
    target_logits = clean.logits.detach()
    assert isinstance(reg, (SmartRegularizer, TargetedRegularizer))
    goal = reg.objective(task, clean, batch["labels"], generator)
    trace: dict = {}
    delta, ok = perturbation(
        model,
        batch,
        task,
        clean,
        cfg,
        generator,
        goal.loss,
        goal.direction,
        reg.space,
        masks,
        trace,
    )
    if not bool(ok):
        raise ValueError("the perturbation gradient was not finite")
    with torch.no_grad():
        masks.perturbed()
        after_logits = reg.space.forward(model, batch, task, delta)
        if cfg.adv == "smart":
            masks.perturbed()
            start_logits = reg.space.forward(model, batch, task, trace["starts"][0])
            before = float(AF.divergence(start_logits, target_logits, task.adv_loss))
            after = float(AF.divergence(after_logits, target_logits, task.adv_loss))
        else:
            targets = goal.targets
            assert targets is not None
            before = _target_score(task, target_logits, targets)
            after = _target_score(task, after_logits, targets)
    agreement = AF.sign_agreement(delta, goal.direction * trace["grads"][0], clean.mask)
    return AttackReport(agreement, before, after, float(AF.norm_ratio(delta, clean.x, clean.mask)))


def _target_score(task: TaskDef, logits: Tensor, targets: Tensor) -> float:
    """Classification: mean probability of the target; regression: minus the mean distance."""
    if task.task_type is TaskType.REGRESSION:
        return -float((logits.float() - targets).abs().mean())
    probs = logits.float().softmax(-1)
    return float(probs.gather(1, targets[:, None]).mean())
