"""none: plain training.

Method card
-----------
Clean forward, task loss, one backward: exactly ``task_loss(model(batch)).backward()``.

Cost: 1 forward, 1 backward. Backward calls: 1. No perturbation, no randomness.
"""

from __future__ import annotations

from mt_dnn.adversarial.base import Regularizer, StepOutput, clean_forward


class NoRegularizer(Regularizer):
    name = "none"

    def step(self, model, batch, task, backward) -> StepOutput:
        self.steps += 1
        return self.plain(clean_forward(model, batch, task), backward)
