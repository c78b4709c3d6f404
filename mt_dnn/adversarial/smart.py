"""smart: SMART's smoothness-inducing regularizer, i.e. virtual adversarial training.

Method card
-----------
Papers: Jiang et al. 2020, "SMART: Robust and Efficient Fine-Tuning for
Pre-trained Natural Language Models through Principled Regularized Optimization"
(ACL), arXiv:1911.03437; Miyato et al. 2018, "Virtual Adversarial Training"
(TPAMI), arXiv:1704.03976.

With x the word embeddings, f(x) the clean logits and D the task's divergence
(``adv_loss``: symmetric KL for classification, squared error for regression)::

    delta_0 ~ N(0, sigma^2 I)                      (padding positions zero)
    for k in 1..K:                                  ascent on the divergence to the
        g     = grad_delta D(f(x + delta), sg[f(x)])  DETACHED clean output, w.r.t.
        delta = Proj_eps(delta + eta * g / ||g||_p)   delta only (no parameter grads)
    loss = task_loss(f(x), y) + alpha * D_sym(f(x), f(x + delta))

``||.||_p`` and Proj are L-inf or L2 (``adv_p_norm``), per token or per example
(``adv_norm_level``). The final term is the symmetric divergence with
gradients through both outputs (the paper's l_s).

Defaults: K=1, alpha=1, sigma^2=1e-5, eta=0.5, eps=0.05, L-inf per token,
``adv_scale=relative``.

Scale: the paper's eps=1e-5, eta=1e-3, sigma^2=1e-5 read as raw radii on
word embeddings of norm ~1 move the input by ~1e-5 of its size. mt-dnn's
released code never projects: it replaces delta by the gradient normalised to
unit L-inf norm per token and adds it after the embedding LayerNorm, i.e. a
perturbation as large as the embeddings themselves. The defaults take the middle
reading: relative scale, a ball of 5% of each token's embedding size (measured
``delta_norm_ratio`` 0.047 on the tiny test model, eta/eps=10 as in TAT so one
step reaches the edge of the ball). The paper's values are
``--adv_scale absolute --adv_epsilon 1e-5 --adv_step_size 1e-3``.

Cost: K+2 forwards, K perturbation backwards (autograd.grad), 1 parameter
backward. Backward calls: 1. A non-finite perturbation gradient skips the
adversarial term (task loss alone gets the backward) and counts a skipped step.
"""

from __future__ import annotations

from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import Regularizer, StepOutput, clean_forward, gradient_steps


class SmartRegularizer(Regularizer):
    name = "smart"

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        clean = clean_forward(model, batch, task)
        target = clean.logits.detach()
        delta = gradient_steps(
            model,
            batch,
            task,
            clean,
            self.cfg,
            self.generator(clean.embeds.device),
            lambda logits: AF.divergence(logits, target, task.adv_loss),
            direction=+1.0,
        )
        if delta is None:
            return self.skip(clean, backward)
        adv_logits = model.forward_embeds(clean.embeds + delta.to(clean.x.dtype), batch, task.name)
        adv = AF.divergence(adv_logits, clean.logits, task.adv_loss)
        return self.finish(clean, adv, delta, backward)
