"""Optimizer and learning-rate schedule.

Parameter groups carry layer-wise learning-rate decay (LLRD): the heads train at
``head_learning_rate``, encoder layer l (1..L) at ``learning_rate * decay^(L - l)``
and the embeddings at ``learning_rate * decay^L``. Randomly initialised
heads need a far larger rate than the pretrained encoder; a small encoder rate
with decay keeps the pretrained lower layers close to where they started, which
is what makes all-MiniLM-L6-v2 fine-tune well instead of forgetting.

With ``--lookahead`` the optimizer is wrapped in Lookahead (``mt_dnn.lookahead``);
it shares the param_groups, so the schedule below drives the inner optimizer.
"""

from __future__ import annotations

import re

import torch

from mt_dnn.model import MultiTaskModel

_LAYER = re.compile(r"\.layers?\.(\d+)\.")
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def _depth(name: str, n_layers: int) -> int:
    """0 for embeddings, l+1 for encoder layer l, n_layers+1 for anything above."""
    if not name.startswith("encoder."):
        return n_layers + 1  # task heads
    match = _LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    if "embed" in name:
        return 0
    return n_layers + 1  # e.g. a final encoder LayerNorm


def parameter_groups(
    model: MultiTaskModel,
    learning_rate: float,
    head_learning_rate: float,
    layer_decay: float,
    weight_decay: float,
) -> list[dict]:
    n_layers = int(getattr(model.encoder.config, "num_hidden_layers", 0))
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = _depth(name, n_layers)
        if name.startswith("encoder."):
            lr = learning_rate * layer_decay ** max(n_layers - depth, 0)
        else:
            lr = head_learning_rate or learning_rate
        no_decay = any(tag in name for tag in _NO_DECAY)
        key = (depth if name.startswith("encoder.") else -1, no_decay)
        group = groups.setdefault(
            key, {"params": [], "lr": lr, "weight_decay": 0.0 if no_decay else weight_decay}
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(model: MultiTaskModel, cfg) -> torch.optim.Optimizer:
    groups = parameter_groups(
        model, cfg.learning_rate, cfg.head_learning_rate, cfg.layer_decay, cfg.weight_decay
    )
    optimizer: torch.optim.Optimizer
    if cfg.optimizer == "adamax":  # no fused kernel: one multi-tensor pass per group
        optimizer = torch.optim.Adamax(groups, lr=cfg.learning_rate, eps=cfg.adam_eps, foreach=True)
    else:
        # The fused kernel (CPU and CUDA): on MiniLM's 22.7M parameters the per-tensor
        # loop took 4-6x its time on these CPUs, as long as a forward and backward.
        optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
    if not cfg.lookahead:
        return optimizer
    # Imported only here: pytorch-optimizer takes about a second to import.
    from mt_dnn.lookahead import Lookahead

    return Lookahead(optimizer, k=cfg.lookahead_k, alpha=cfg.lookahead_alpha)


def warmup_linear(total_steps: int, warmup: float):
    """Multiplier for LambdaLR: linear warm-up over ``warmup * total`` steps, then linear decay."""
    warmup_steps = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        remaining = total_steps - step
        return max(0.0, remaining / max(1, total_steps - warmup_steps))

    return factor
