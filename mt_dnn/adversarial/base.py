"""What every regularizer shares: its step output, its random generator, its counters.

A regularizer owns one micro-batch's forward and backward::

    out = regularizer.step(model, batch, task_def, backward)

``backward(loss)`` is the trainer's callable (loss scaling, accumulation, DDP);
a regularizer calls it the number of times its method card states and never
touches the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from data_utils.task_def import TaskDef
from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.losses import task_loss

Backward = Callable[[Tensor], Any]


@dataclass
class StepOutput:
    loss: float  # total loss of the step (task + weighted adversarial term)
    task_loss: float  # loss of the clean forward
    adv_loss: float  # the adversarial term before weighting by adv_alpha (0.0 for none)
    logits: Tensor  # detached clean logits, for training metrics
    delta_norm_ratio: float | None = None  # ||delta|| / ||embeddings|| over real tokens
    skipped: bool = False  # adversarial term skipped: non-finite perturbation gradient


@dataclass
class Clean:
    """The clean forward of a batch and the geometry its perturbations live in."""

    embeds: Tensor  # word embeddings, in the graph (parameter gradients flow)
    logits: Tensor
    loss: Tensor
    mask: Tensor  # [B, T, 1]

    @property
    def x(self) -> Tensor:
        """Detached embeddings: inner steps take gradients w.r.t. delta only."""
        return self.embeds.detach()


def clean_forward(model, batch: Mapping[str, Tensor], task: TaskDef) -> Clean:
    embeds = model.embed(batch)
    logits = model.forward_embeds(embeds, batch, task.name)
    loss = task_loss(logits, batch["labels"], task)
    return Clean(embeds, logits, loss, AF.token_mask(batch["attention_mask"]))


def finite(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all())


class Regularizer:
    """Plumbing shared by the methods: generator, counters, state; ``step`` is theirs."""

    name = "base"

    def __init__(self, cfg: AdvConfig, task_defs: Mapping[str, TaskDef]):
        self.cfg = cfg
        self.task_defs = dict(task_defs)
        self.steps = 0
        self.skipped_steps = 0
        # Created on the first step, on the device of the embeddings, so noise and
        # targets are drawn where they are used; its state is part of state_dict.
        self._generator: torch.Generator | None = None
        self._pending_generator_state: dict | None = None

    @property
    def backward_calls(self) -> int:
        """How many times ``step`` calls ``backward`` (the method card's count)."""
        return 1

    def step(self, model, batch, task: TaskDef, backward: Backward) -> StepOutput:
        raise NotImplementedError

    def end_epoch(self, epoch: int, out_dir: Path | None, writer) -> dict:
        return {}

    def counters(self) -> dict:
        """Numbers for the training log."""
        return {"adv_steps": self.steps, "adv_skipped_steps": self.skipped_steps}

    # -- randomness -----------------------------------------------------------------

    def generator(self, device: torch.device) -> torch.Generator:
        device = torch.device(device)
        if self._generator is None or self._generator.device.type != device.type:
            gen = torch.Generator(device=device)
            pending = self._pending_generator_state
            if pending is not None and pending["device"] == device.type:
                gen.set_state(torch.tensor(pending["state"], dtype=torch.uint8))
            else:
                gen.manual_seed(self.cfg.adv_seed)
            self._pending_generator_state = None
            self._generator = gen
        return self._generator

    # -- state ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        gen_state: dict | None
        if self._generator is not None:
            gen_state = {
                "device": self._generator.device.type,
                "state": self._generator.get_state().tolist(),
            }
        else:
            gen_state = self._pending_generator_state
        return {
            "name": self.name,
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "generator": gen_state,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("name", self.name) != self.name:
            raise ValueError(f"state of regularizer {state['name']!r} loaded into {self.name!r}")
        self.steps = int(state["steps"])
        self.skipped_steps = int(state["skipped_steps"])
        # A state from another device type (CPU vs CUDA generators differ) cannot be
        # restored; the generator is then reseeded from adv_seed.
        self._generator = None
        self._pending_generator_state = state.get("generator")

    # -- helpers for the methods ------------------------------------------------------

    def plain(self, clean: Clean, backward: Backward, skipped: bool = False) -> StepOutput:
        """Backward on the task loss alone: plain training, or a skipped adversarial step."""
        backward(clean.loss)
        return StepOutput(
            loss=float(clean.loss.detach()),
            task_loss=float(clean.loss.detach()),
            adv_loss=0.0,
            logits=clean.logits.detach(),
            delta_norm_ratio=None,
            skipped=skipped,
        )

    def skip(self, clean: Clean, backward: Backward) -> StepOutput:
        """Non-finite perturbation gradient: train on the task loss alone, count it."""
        self.skipped_steps += 1
        return self.plain(clean, backward, skipped=True)

    def finish(
        self, clean: Clean, adv: Tensor, delta: Tensor | None, backward: Backward
    ) -> StepOutput:
        """loss = task loss + alpha * adv, one backward."""
        loss = clean.loss + self.cfg.adv_alpha * adv
        backward(loss)
        return StepOutput(
            loss=float(loss.detach()),
            task_loss=float(clean.loss.detach()),
            adv_loss=float(adv.detach()),
            logits=clean.logits.detach(),
            delta_norm_ratio=None if delta is None else AF.norm_ratio(delta, clean.x, clean.mask),
        )


def gradient_steps(
    model,
    batch: Mapping[str, Tensor],
    task: TaskDef,
    clean: Clean,
    cfg: AdvConfig,
    generator: torch.Generator,
    inner_loss: Callable[[Tensor], Tensor],
    direction: float,
) -> Tensor | None:
    """SMART/TAT perturbation: Gaussian start, K normalised gradient steps, projection.

    ``delta <- Proj_eps(delta + direction * eta * g / ||g||_p)`` with ``g`` the
    gradient of ``inner_loss(logits of x + delta)`` w.r.t. delta alone
    (``direction`` +1 ascends, -1 descends). Returns the detached delta, or None
    if a gradient was not finite.
    """
    x, mask = clean.x, clean.mask
    p, level = cfg.adv_p_norm, cfg.adv_norm_level
    unit = AF.ball_unit(x, mask, p, level, cfg.adv_scale)
    sigma = math.sqrt(cfg.adv_noise_var) * AF.noise_unit(x, mask, level, cfg.adv_scale)
    delta = AF.normal_noise(x, mask, sigma, generator)
    for _ in range(cfg.adv_k):
        delta.requires_grad_(True)
        logits = model.forward_embeds(x + delta.to(x.dtype), batch, task.name)
        (grad,) = torch.autograd.grad(inner_loss(logits), delta)
        if not finite(grad):
            return None
        step = direction * cfg.adv_step_size * unit * AF.normalize_grad(grad, mask, p, level)
        delta = AF.project(delta.detach() + step, cfg.adv_epsilon * unit, mask, p, level)
    return delta.detach()
