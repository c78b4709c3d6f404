"""random: a random-direction control of the size of TAT/SMART's perturbation.

Method card
-----------
Not a method from a paper: the control that separates "adversarial" from
"large noise" (Pereira et al. 2021 compare TAT with SMART, not with noise).
One random perturbation of the size a saturated SMART/TAT step reaches, no
gradient steps::

    adv_update=project: delta = eps * unit * s,  s_i = +-1 with probability 1/2
                        (a random corner of the ball: the L-inf size of a projected
                        step with eta >= eps, and about its L2 size)
    adv_update=mtdnn:   delta = unit * n / (||n||_p + eps),  n ~ N(0, I)
                        (mt-dnn's unit-norm rescaling of a random direction)
    loss = task_loss(f(x), y) + alpha * D(f(x), f(x + delta))

D is the task's divergence in the ``adv_divergence_grad`` form, in the space
``adv_space``, with the dropout masks ``adv_dropout`` says: exactly SMART/TAT's
final term with delta's direction drawn at random. ``delta_norm_ratio`` is
logged so its size can be compared with TAT's in the same run.

Cost: 2 forwards, 1 backward. Backward calls: 1.
"""

from __future__ import annotations

import torch

from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import Regularizer, StepOutput


class RandomDirectionRegularizer(Regularizer):
    name = "random"

    def direction(self, clean, generator) -> torch.Tensor:
        cfg = self.cfg
        x, mask = clean.x, clean.mask
        unit = AF.ball_unit(x, mask, cfg.adv_p_norm, cfg.adv_norm_level, cfg.adv_scale)
        noise = AF.normal_noise(x, mask, 1.0, generator)
        if cfg.adv_update == "mtdnn":
            return unit * AF.normalize_sum(noise, mask, cfg.adv_p_norm, cfg.adv_norm_level,
                                           cfg.adv_epsilon)  # fmt: skip
        if cfg.adv_p_norm == "inf":
            return cfg.adv_epsilon * unit * torch.sign(noise) * mask
        # L2: a random point on the sphere of radius eps.
        return cfg.adv_epsilon * unit * AF.normalize_grad(noise, mask, "l2", cfg.adv_norm_level)

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        masks, clean = self.begin(model, batch, task)
        delta = self.direction(clean, self.generator(clean.embeds.device))
        adv_logits = self.perturbed_logits(model, batch, task, clean, delta, masks)
        return self.finish(clean, self.divergence(adv_logits, clean.logits, task), delta, backward)
