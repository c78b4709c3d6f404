"""freelb: FreeLB, free large-batch adversarial training.

Method card
-----------
Paper: Zhu et al. 2020, "FreeLB: Enhanced Adversarial Training for Natural
Language Understanding" (ICLR), arXiv:1909.11764.

K ascent steps on the task loss; the parameter gradients of every step are
accumulated ("free" large batch of K perturbed copies)::

    delta_0 ~ U(-init_mag, init_mag)    (L2: scaled by 1/sqrt(#components), as the
                                         reference code; padding zero)
    for t in 0..K-1:
        backward(task_loss(f(x + delta_t), y) / K)    # parameter grads accumulate
        g         = grad of that loss w.r.t. delta_t  # read from the same backward
        delta_t+1 = Proj_eps(delta_t + eta * g / ||g||_p)

so the parameters see the gradient of (1/K) sum_t L(x + delta_t). ``loss`` in
the step output is that mean, ``task_loss`` and the logits for the training
metrics are step 0's (at the small random start delta_0; with
``freelb_init_mag=0`` exactly the clean forward), ``adv_loss`` their
difference. No separate clean forward is run for them: it would be a third
pass of the K=2 step's two.

Defaults: the shared adv_* values (eta=0.5, eps=0.05 relative, L-inf per
token, ``adv_space``) and ``freelb_init_mag=0.02`` relative. With
``adv_dropout`` shared or adversarial every ascent step replays one dropout mask
(as the reference implementation reuses its masks). ``adv_update=mtdnn`` is
refused: FreeLB's ascent always projects on the ball. ``adv_k`` defaults to 1 for
SMART/TAT; FreeLB needs ``--adv_k 2`` or more to ascend at all (the paper uses
2-5); with K=1 it is training on randomly initialised noise. The paper's values
for BERT-base (absolute, L2 per example: eta=1e-1, init_mag=0.6, unbounded) are
``--adv_scale absolute --adv_p_norm l2 --adv_norm_level example``.

Cost: K forwards and K backwards (plus one forward without graph in the hidden
space, whose size the start needs). Backward calls: K (1 when adv_k=0: plain
training); under DDP the first K-1 are ``deferred`` (no all-reduce), the last
all-reduces the sum. A non-finite delta gradient (read after that step's
backward) resets delta to zero for the remaining steps, which are then clean
steps, and counts a skipped step (decided on the device, without waiting for
it); the number of backward calls does not change.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import Regularizer, StepOutput, all_finite, deferred
from mt_dnn.distributed import unwrap
from mt_dnn.losses import task_loss


class FreeLBRegularizer(Regularizer):
    name = "freelb"

    def __init__(self, cfg, task_defs):
        super().__init__(cfg, task_defs)
        if cfg.adv_update != "project":
            raise ValueError(
                "FreeLB projects each ascent step on the eps ball; adv_update=mtdnn (the mtdnn "
                "preset) applies to smart, tat and random only"
            )
        if cfg.adv_k == 1:
            # adv_k is shared with SMART/TAT, whose papers use K=1; for FreeLB that
            # means training on the random initial delta only, which is rarely meant.
            warnings.warn(
                "FreeLB with adv_k=1 takes no ascent step (only the random start); "
                "pass --adv_k 2 or more for adversarial training",
                stacklevel=2,
            )

    @property
    def backward_calls(self) -> int:
        return max(self.cfg.adv_k, 1)

    def init_delta(self, x, mask, generator):
        cfg = self.cfg
        mag = cfg.freelb_init_mag * AF.noise_unit(x, mask, cfg.adv_norm_level, cfg.adv_scale)
        if cfg.adv_scale == "absolute" and cfg.adv_p_norm == "l2":
            mag = mag / AF.group_size(mask, x.shape[-1], cfg.adv_norm_level).sqrt()
        return AF.uniform_noise(x, mask, mag, generator)

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        cfg = self.cfg
        labels = batch["labels"]
        mask = AF.token_mask(batch["attention_mask"])
        masks = self.masks(batch["input_ids"].device)
        masks.clean()
        k = max(cfg.adv_k, 1)
        with torch.no_grad():  # the size of the start: geometry only, no graph
            if self.space.name == "hidden":
                x, _ = self.space.clean(model, batch, task)
            else:  # a lookup, not a forward: no DDP hook to see
                x = unwrap(model).embed(batch)
        x = x.detach()
        p, level = cfg.adv_p_norm, cfg.adv_norm_level
        unit = AF.ball_unit(x, mask, p, level, cfg.adv_scale)
        delta = self.init_delta(x, mask, self.generator(x.device))
        if cfg.adv_k == 0:
            delta = torch.zeros_like(delta)
        total = torch.zeros((), device=x.device)
        ok = torch.ones((), dtype=torch.bool, device=x.device)
        first: tuple[torch.Tensor, torch.Tensor] | None = None
        for t in range(k):
            delta.requires_grad_(True)
            masks.perturbed()
            # Only the last backward all-reduces (DDP): the K gradients are summed first.
            with deferred(backward) if t < k - 1 else contextlib.nullcontext():
                logits = self.space.forward(model, batch, task, delta)
                loss = task_loss(logits, labels, task)
                if first is None:  # step 0 stands for the clean forward in the metrics
                    first = (logits.detach(), loss.detach())
                total = total + loss.detach() / k
                backward(loss / k)
            grad = delta.grad
            delta = delta.detach()
            if t == k - 1:
                break
            # Once a gradient is not finite, delta is zero for the remaining (clean) steps.
            ok = ok & (all_finite(grad) if grad is not None else torch.zeros_like(ok))
            grad = torch.where(ok, grad, 0.0) if grad is not None else torch.zeros_like(delta)
            step = cfg.adv_step_size * unit * AF.normalize_grad(grad, mask, p, level)
            moved = AF.project(delta + step, cfg.adv_epsilon * unit, mask, p, level)
            delta = torch.where(ok, moved, torch.zeros_like(moved))
        skipped = ~ok
        self.count_skipped(skipped)
        assert first is not None
        logits0, loss0 = first
        ratio = AF.norm_ratio(delta, x, mask)
        return StepOutput.of(logits0, total, loss0, total - loss0, ratio, skipped)
