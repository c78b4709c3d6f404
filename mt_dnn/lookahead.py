"""Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back").

The inner optimizer (Adamax or AdamW) moves the fast weights for k steps; then the
slow weights take a step towards them and the fast weights restart from there:

    slow <- slow + alpha * (fast - slow);   fast <- slow

Defaults k=5, alpha=0.5 are the Lookahead paper's; alpha must be in (0, 1)
(pytorch-optimizer refuses 1, which would be plain training). The TAT paper
(Pereira et al. 2021) fine-tunes with Adamax wrapped in Lookahead: ``--lookahead``
and ``experiments/tat_study/paper_recipe.yml``.

The algorithm is pytorch-optimizer's ``Lookahead``. It shares ``param_groups``
with the inner optimizer, so LambdaLR's learning rates reach the inner optimizer,
and GradScaler's ``unscale_``/``step`` work on it unchanged. This module only
replaces its ``state_dict``: pytorch-optimizer 3.8.2 keys the slow weights by the
Parameter objects themselves, so its state loads back only into the very optimizer
that wrote it (a fresh one fails with KeyError 'slow_params' at the next
synchronisation) and ``torch.load(weights_only=True)`` refuses it. Here they are
keyed by position, as torch's own optimizers key their state.

Cost: one extra copy of the weights (the slow weights), plus, in 3.8.2, a zero
``momentum_buffer`` per parameter that the library adds to the inner optimizer's
state at the first synchronisation although Adam-type optimizers never read it.
With one task per batch, a parameter without a gradient at a synchronisation (the
head of another task) is skipped by the library: its slow weights wait for a
synchronisation step in which its task is trained.
"""

from __future__ import annotations

from typing import Any

import pytorch_optimizer
import torch


class Lookahead(pytorch_optimizer.Lookahead):
    """pytorch-optimizer's Lookahead with a state_dict keyed by parameter position."""

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        super().__init__(optimizer, k=k, alpha=alpha, pullback_momentum="none")

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        # The synchronisation counter lives in the (shared) param_groups, so the
        # inner optimizer's state_dict carries it.
        return {
            "slow": {i: dict(self.state[p]) for i, p in enumerate(self._params())},
            "base_optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # First, so that torch checks that the groups and their sizes match.
        self.optimizer.load_state_dict(state_dict["base_optimizer"])
        slow = state_dict["slow"]
        for i, p in enumerate(self._params()):
            self.state[p] = {
                key: value.to(device=p.device, dtype=p.dtype) for key, value in slow[i].items()
            }
