"""smart: SMART's smoothness-inducing regularizer, i.e. virtual adversarial training.

Method card
-----------
Papers: Jiang et al. 2020, "SMART: Robust and Efficient Fine-Tuning for
Pre-trained Natural Language Models through Principled Regularized Optimization"
(ACL), arXiv:1911.03437; Miyato et al. 2018, "Virtual Adversarial Training"
(TPAMI), arXiv:1704.03976.

With x the perturbed tensor (``adv_space``: the word embeddings, or the
embedding block's output as mt-dnn), f(x) the clean logits and D the task's
divergence (``adv_loss``: symmetric KL for classification, squared error for
regression)::

    delta_0 = Proj_eps(N(0, sigma^2 I))             (sigma = adv_noise_var; padding zero)
    for k in 1..K:                                  ascent on the divergence to the
        g     = grad_delta D(f(x + delta), sg[f(x)])  DETACHED clean output, w.r.t.
        delta = Proj_eps(delta + eta * g / ||g||_p)   delta only (no parameter grads)
    loss = task_loss(f(x), y) + alpha * D(f(x), f(x + delta))

``||.||_p`` and Proj are L-inf or L2 (``adv_p_norm``), per token or per example
(``adv_norm_level``). ``adv_update=mtdnn`` replaces the projected step by
mt-dnn's ``delta = (delta + eta * g) / (||delta + eta * g||_p + eps)``. The final
term's gradient form is ``adv_divergence_grad`` (mtdnn: each KL's target side
detached, as mt-dnn's criterion; both: gradients through both sides, about twice
as strong at the same alpha). ``adv_dropout=shared`` replays one dropout mask in
the clean, inner and perturbed forwards, so the term is the perturbation's effect
alone (exactly 0 at delta = 0) rather than partly the divergence between two
dropout masks.

Defaults: the ``relative`` preset (K=1, alpha=1, eps=0.05 of each token's
embedding size, eta=10 eps so one step reaches the edge of the ball, noise std
0.1 eps, L-inf per token, shared dropout, mtdnn gradient form). The paper's
literal numbers are ``--adv_preset paper`` (its eta=1e-3 for SMART: add
``--adv_step_size 1e-3``); mt-dnn's code is ``--adv_preset mtdnn``. What each
preset's perturbation measures on MiniLM is in experiments/tat_study/perturbations.md.

Cost: K+2 forwards, K perturbation backwards (autograd.grad), 1 parameter
backward. Backward calls: 1. A non-finite perturbation gradient drops the
adversarial term (delta and the term are zeroed on the device, so the task
loss alone drives the update) and counts a skipped step.
"""

from __future__ import annotations

from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import Objective, Regularizer, StepOutput


class SmartRegularizer(Regularizer):
    name = "smart"

    def objective(self, task, clean, labels, generator) -> Objective:
        """Ascend the divergence to the (detached) clean output."""
        target = clean.logits.detach()
        n = target.shape[0]  # summed over examples, as mt-dnn's inner loss (reduce=False)
        return Objective(lambda logits: n * AF.divergence(logits, target, task.adv_loss), +1.0)

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        masks, clean = self.begin(model, batch, task)
        goal = self.objective(task, clean, batch["labels"], None)
        delta, ok = self.attack(model, batch, task, clean, masks, goal.loss, goal.direction)
        adv_logits = self.perturbed_logits(model, batch, task, clean, delta, masks)
        adv = self.divergence(adv_logits, clean.logits, task)
        return self.finish(clean, adv, delta, backward, ok)
