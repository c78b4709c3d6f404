"""What every regularizer shares: its step output, its random generator, its counters.

A regularizer owns one micro-batch's forward and backward::

    out = regularizer.step(model, batch, task_def, backward)

``backward(loss)`` is the trainer's callable (loss scaling, accumulation, DDP);
a regularizer calls it the number of times its method card states and never
touches the optimizer.

Nothing in a step waits for the device: the step's numbers stay on it as
tensors (:class:`StepOutput`), a non-finite perturbation gradient is handled
by ``torch.where`` rather than a Python branch, and counters that depend on
device values are device tensors read only when logged or saved.
"""

from __future__ import annotations

import contextlib
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
    """One step's numbers as detached 0-d fp32 tensors on the step's device.

    ``tensors`` holds ``loss`` (task + weighted adversarial term), ``task_loss``
    (the clean forward's), ``adv_loss`` (the adversarial term before adv_alpha;
    0 for none), ``adv_skipped`` (1 if a non-finite perturbation gradient
    dropped the adversarial term) and, for methods with a perturbation,
    ``delta_norm_ratio`` (||delta|| / ||embeddings|| over real tokens). The
    trainer sums them on the device and reads them once per logging interval;
    the float properties (which wait for the device) are for tests and tools.
    """

    tensors: dict[str, Tensor]
    logits: Tensor  # detached clean logits, for training metrics

    @classmethod
    def of(
        cls,
        logits: Tensor,
        loss: Tensor,
        task_loss: Tensor,
        adv_loss: Tensor | None = None,
        delta_norm_ratio: Tensor | None = None,
        skipped: Tensor | None = None,
    ) -> StepOutput:
        zero = torch.zeros((), device=loss.device)
        values = {
            "loss": loss,
            "task_loss": task_loss,
            "adv_loss": zero if adv_loss is None else adv_loss,
            "adv_skipped": zero if skipped is None else skipped,
        }
        if delta_norm_ratio is not None:
            values["delta_norm_ratio"] = delta_norm_ratio
        tensors = {k: v.detach().float() for k, v in values.items()}
        return cls(tensors, logits.detach())

    @property
    def loss(self) -> float:
        return float(self.tensors["loss"])

    @property
    def task_loss(self) -> float:
        return float(self.tensors["task_loss"])

    @property
    def adv_loss(self) -> float:
        return float(self.tensors["adv_loss"])

    @property
    def delta_norm_ratio(self) -> float | None:
        value = self.tensors.get("delta_norm_ratio")
        return None if value is None else float(value)

    @property
    def skipped(self) -> bool:
        return bool(self.tensors["adv_skipped"])


@dataclass
class Objective:
    """What SMART/TAT's inner steps optimise: a loss of the logits, ascended (+1) or descended (-1)."""

    loss: Callable[[Tensor], Tensor]
    direction: float
    targets: Tensor | None = None  # TAT's sampled targets


class Space:
    """Where a perturbation is added; both forwards go through ``model(...)``.

    ``word``: the word embeddings, the encoder then runs with ``inputs_embeds=``.
    ``hidden``: the embedding block's output (post-LayerNorm), mt-dnn's space;
    the perturbed forward runs the embedding block again and adds delta to its
    output, which goes to the encoder layers directly (mt-dnn instead feeds the
    sum through the embedding block a second time). With the dropout mask
    replayed, the recomputed output equals the clean one.

    ``model`` may be a ``DistributedDataParallel`` wrapper: every forward here is
    its ``forward``, so its gradient hooks see them all.
    """

    def __init__(self, name: str):
        self.name = name

    def clean(self, model, batch: Mapping[str, Tensor], task: TaskDef) -> tuple[Tensor, Tensor]:
        """(the tensor perturbations are added to, in the graph; the clean logits)."""
        logits, x = model(batch, task.name, space=self.name, capture=True)
        return x, logits

    def forward(self, model, batch, task: TaskDef, delta: Tensor) -> Tensor:
        """Logits at ``x + delta`` (parameter gradients flow through every part)."""
        return model(batch, task.name, delta=delta, space=self.name)


SPACES: dict[str, Space] = {name: Space(name) for name in ("word", "hidden")}


def deferred(backward: Backward) -> contextlib.AbstractContextManager:
    """Around a forward and backward that are not the step's last: no gradient all-reduce.

    Under DistributedDataParallel the trainer's ``backward`` has a ``deferred()``
    context (``no_sync``): gradients accumulate locally and the step's last
    backward all-reduces their sum once. A plain callable needs none.
    """
    defer = getattr(backward, "deferred", None)
    return defer() if defer is not None else contextlib.nullcontext()


class DropoutMasks:
    """One dropout mask for the forwards of one adversarial step, by replaying the RNG.

    Dropout draws from the global CPU/CUDA generator (the regularizer's noise
    and targets use its own generator, so they do not move it). ``clean()`` is
    called before the clean forward and ``perturbed()`` before each perturbed
    one (inner steps and the final forward). Modes: ``shared`` replays the
    clean forward's mask in every perturbed forward (delta = 0 then gives
    exactly the clean logits); ``adversarial`` replays the first perturbed
    forward's mask in the later ones; ``independent`` does nothing. Every
    replayed forward consumes the same random numbers, so the generator ends
    where one forward would leave it.
    """

    def __init__(self, mode: str, device: torch.device):
        self.mode = mode
        self.device = torch.device(device)
        self._state: tuple[Tensor, Tensor | None] | None = None

    def _capture(self) -> tuple[Tensor, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def clean(self) -> None:
        if self.mode == "shared":
            self._state = self._capture()

    def perturbed(self) -> None:
        if self.mode == "independent":
            return
        if self._state is None:
            self._state = self._capture()
            return
        cpu, cuda = self._state
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)


@dataclass
class Clean:
    """The clean forward of a batch and the geometry its perturbations live in."""

    embeds: Tensor  # the perturbed tensor (word embeddings or hidden), in the graph
    logits: Tensor
    loss: Tensor
    mask: Tensor  # [B, T, 1]

    @property
    def x(self) -> Tensor:
        """Detached embeddings: inner steps take gradients w.r.t. delta only."""
        return self.embeds.detach()


def clean_forward(
    model, batch: Mapping[str, Tensor], task: TaskDef, space: Space = SPACES["word"]
) -> Clean:
    embeds, logits = space.clean(model, batch, task)
    loss = task_loss(logits, batch["labels"], task)
    return Clean(embeds, logits, loss, AF.token_mask(batch["attention_mask"]))


def all_finite(x: Tensor) -> Tensor:
    """0-d bool tensor: every entry of ``x`` is finite (no wait for the device)."""
    return torch.isfinite(x).all()


class Regularizer:
    """Plumbing shared by the methods: generator, counters, state; ``step`` is theirs."""

    name = "base"

    def __init__(self, cfg: AdvConfig, task_defs: Mapping[str, TaskDef]):
        self.cfg = cfg
        self.task_defs = dict(task_defs)
        self.steps = 0
        self._skipped: Tensor | int = 0  # a device tensor once a step has counted into it
        # Created on the first step, on the device of the embeddings, so noise and
        # targets are drawn where they are used; its state is part of state_dict.
        self._generator: torch.Generator | None = None
        self._pending_generator_state: dict | None = None
        self.space = SPACES[cfg.adv_space]

    def masks(self, device: torch.device) -> DropoutMasks:
        """A fresh dropout-mask replayer for one step (``adv_dropout``)."""
        return DropoutMasks(self.cfg.adv_dropout, device)

    def divergence(self, adv_logits: Tensor, clean_logits: Tensor, task: TaskDef) -> Tensor:
        """The final adversarial term, in the configured gradient form."""
        return AF.divergence(adv_logits, clean_logits, task.adv_loss, self.cfg.adv_divergence_grad)

    @property
    def backward_calls(self) -> int:
        """How many times ``step`` calls ``backward`` (the method card's count)."""
        return 1

    def step(self, model, batch, task: TaskDef, backward: Backward) -> StepOutput:
        raise NotImplementedError

    def end_epoch(self, epoch: int, out_dir: Path | None, writer) -> dict:
        return {}

    @property
    def skipped_steps(self) -> int:
        """Steps whose adversarial term was dropped (reading it waits for the device)."""
        return int(self._skipped)

    def count_skipped(self, skipped: Tensor) -> None:
        self._skipped = self._skipped + skipped.to(torch.int64)

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
        self._skipped = int(state["skipped_steps"])
        # A state from another device type (CPU vs CUDA generators differ) cannot be
        # restored; the generator is then reseeded from adv_seed.
        self._generator = None
        self._pending_generator_state = state.get("generator")

    # -- helpers for the methods ------------------------------------------------------

    def plain(self, clean: Clean, backward: Backward) -> StepOutput:
        """Backward on the task loss alone: plain training."""
        backward(clean.loss)
        return StepOutput.of(clean.logits, clean.loss, clean.loss)

    def begin(self, model, batch, task: TaskDef) -> tuple[DropoutMasks, Clean]:
        """The clean forward in this regularizer's space, with its dropout mask recorded."""
        masks = self.masks(batch["input_ids"].device)
        masks.clean()
        return masks, clean_forward(model, batch, task, self.space)

    def attack(self, model, batch, task, clean: Clean, masks, inner_loss, direction: float):
        """SMART/TAT's perturbation and its finite flag (see :func:`perturbation`)."""
        generator = self.generator(clean.embeds.device)
        return perturbation(
            model, batch, task, clean, self.cfg, generator, inner_loss, direction, self.space, masks
        )

    def perturbed_logits(self, model, batch, task, clean: Clean, delta: Tensor, masks) -> Tensor:
        """The final perturbed forward, in the graph (parameter gradients flow)."""
        masks.perturbed()
        return self.space.forward(model, batch, task, delta)

    def finish(
        self,
        clean: Clean,
        adv: Tensor,
        delta: Tensor | None,
        backward: Backward,
        ok: Tensor | None = None,
    ) -> StepOutput:
        """loss = task loss + alpha * adv, one backward.

        ``ok`` False (a non-finite perturbation gradient; delta was zeroed) drops
        the adversarial term: the step trains on the task loss alone, and counts.
        """
        skipped = None
        if ok is not None:
            adv = torch.where(ok, adv, torch.zeros_like(adv))
            skipped = ~ok
            self.count_skipped(skipped)
        loss = clean.loss + self.cfg.adv_alpha * adv
        backward(loss)
        ratio = None if delta is None else AF.norm_ratio(delta, clean.x, clean.mask)
        return StepOutput.of(clean.logits, loss, clean.loss, adv, ratio, skipped)


def perturbation(
    model,
    batch: Mapping[str, Tensor],
    task: TaskDef,
    clean: Clean,
    cfg: AdvConfig,
    generator: torch.Generator,
    inner_loss: Callable[[Tensor], Tensor],
    direction: float,
    space: Space = SPACES["word"],
    masks: DropoutMasks | None = None,
    trace: dict | None = None,
) -> tuple[Tensor, Tensor]:
    """SMART/TAT perturbation: Gaussian start, K gradient steps.

    ``adv_update=project``: ``delta_0 = Proj_eps(N(0, sigma^2))`` and
    ``delta <- Proj_eps(delta + direction * eta * g / ||g||_p)``.
    ``adv_update=mtdnn``: ``delta_0 = N(0, sigma^2)`` and
    ``delta <- (delta + direction * eta * g) / (||delta + direction * eta * g||_p + eps)``.
    ``g`` is the gradient of ``inner_loss(logits at x + delta)`` w.r.t. delta
    alone (``direction`` +1 ascends, -1 descends). Returns the detached delta
    and a 0-d bool tensor, False if a gradient was not finite: delta is then
    zero (decided on the device, without waiting for it). ``trace`` (a dict)
    collects each step's starting delta and gradient, for measurements and tests.
    """
    x, mask = clean.x, clean.mask
    p, level = cfg.adv_p_norm, cfg.adv_norm_level
    unit = AF.ball_unit(x, mask, p, level, cfg.adv_scale)
    sigma = cfg.adv_noise_var * AF.noise_unit(x, mask, level, cfg.adv_scale)
    delta = AF.normal_noise(x, mask, sigma, generator)
    if cfg.adv_update == "project":
        delta = AF.project(delta, cfg.adv_epsilon * unit, mask, p, level)
    ok = torch.ones((), dtype=torch.bool, device=x.device)
    for _ in range(cfg.adv_k):
        delta.requires_grad_(True)
        if masks is not None:
            masks.perturbed()
        logits = space.forward(model, batch, task, delta)
        (grad,) = torch.autograd.grad(inner_loss(logits), delta)
        ok = ok & all_finite(grad)
        grad = torch.where(ok, grad, torch.zeros_like(grad))
        if trace is not None:
            trace.setdefault("starts", []).append(delta.detach())
            trace.setdefault("grads", []).append(grad.detach())
        if cfg.adv_update == "mtdnn":
            moved = delta.detach() + direction * cfg.adv_step_size * grad.float()
            delta = unit * AF.normalize_sum(moved, mask, p, level, cfg.adv_epsilon)
        else:
            step = direction * cfg.adv_step_size * unit * AF.normalize_grad(grad, mask, p, level)
            delta = AF.project(delta.detach() + step, cfg.adv_epsilon * unit, mask, p, level)
    delta = delta.detach()
    return torch.where(ok, delta, torch.zeros_like(delta)), ok
