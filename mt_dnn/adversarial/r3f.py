"""r3f: R3F, robust representations through regularized fine-tuning.

Method card
-----------
Paper: Aghajanyan et al. 2021, "Better Fine-Tuning by Reducing Representational
Collapse" (ICLR), arXiv:2008.03156.

One noisy forward, no gradient steps::

    z ~ U(-eps, eps) or N(0, eps^2) per component      (r3f_noise; padding zero)
    loss = task_loss(f(x), y) + lambda * D_sym(f(x), f(x + z))

D_sym is the task's divergence (symmetric KL for classification, squared error
for regression), lambda is ``adv_alpha`` and eps is ``r3f_eps``.

Defaults: uniform noise, lambda=1, ``r3f_eps=0.05`` with ``adv_scale=relative``,
the size of SMART/TAT's ball: each component's noise is at most 5% of the RMS
component of that token's embedding. The space, dropout masks and gradient form
are the shared ``adv_*`` settings. The paper's eps=1e-5 is a raw value
(``--adv_scale absolute --r3f_eps 1e-5``); on embeddings of norm ~1 it is ~1e-5
of their size, and the regularizer then mostly penalises the curvature of f.

Cost: 2 forwards, 1 backward. Backward calls: 1.
"""

from __future__ import annotations

from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import Regularizer, StepOutput


class R3FRegularizer(Regularizer):
    name = "r3f"

    def noise(self, clean, generator):
        cfg = self.cfg
        size = cfg.r3f_eps * AF.noise_unit(clean.x, clean.mask, cfg.adv_norm_level, cfg.adv_scale)
        if cfg.r3f_noise == "normal":
            return AF.normal_noise(clean.x, clean.mask, size, generator)
        return AF.uniform_noise(clean.x, clean.mask, size, generator)

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        masks, clean = self.begin(model, batch, task)
        noise = self.noise(clean, self.generator(clean.embeds.device))
        noisy_logits = self.perturbed_logits(model, batch, task, clean, noise, masks)
        return self.finish(
            clean, self.divergence(noisy_logits, clean.logits, task), noise, backward
        )
