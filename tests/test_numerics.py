"""Guarded numerics in one optimizer step: skip, count, stop; the fp16 scaler's skips too."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mt_dnn.config import TrainConfig
from mt_dnn.distributed import World
from mt_dnn.trainer import TrainingDiverged, optimizer_step
from tests.tiny import tiny_model


def state_and_run(tmp_path, scaler_enabled=False, **cfg):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = SimpleNamespace(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
        scaler=torch.amp.GradScaler("cpu", enabled=scaler_enabled, init_scale=1024.0),
        global_step=0,
        bad_steps=0,
        skipped_updates=0,
        epoch=0,
    )
    state.scaler.scale(torch.ones(()))  # what the trainer's backward does first
    run = SimpleNamespace(cfg=TrainConfig(**cfg), out_dir=tmp_path, world=World(), log=print)
    return run, state


def set_grads(state, value):
    """Gradients as the scaled backward leaves them (scaled by the scaler's factor)."""
    scale = state.scaler.get_scale() if state.scaler.is_enabled() else 1.0
    for p in state.model.parameters():
        p.grad = torch.full_like(p, value * scale)


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("scaler_enabled", [False, True])
def test_non_finite_gradient_skips_the_update_and_is_counted(tmp_path, scaler_enabled):
    run, state = state_and_run(tmp_path, scaler_enabled)
    before = weights(state.model)
    set_grads(state, math.inf)
    assert optimizer_step(run, state, loss_finite=True) is None
    assert state.skipped_updates == 1 and state.bad_steps == 1 and state.global_step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, weights(state.model), strict=True))
    if scaler_enabled:
        assert state.scaler.get_scale() < 1024.0  # the scaler backed off, as it should
    # A good step resets the streak and moves the weights.
    set_grads(state, 0.01)
    assert optimizer_step(run, state, loss_finite=True) is not None
    assert state.bad_steps == 0 and state.skipped_updates == 1
    assert not all(torch.equal(a, b) for a, b in zip(before, weights(state.model), strict=True))


def test_non_finite_loss_skips_even_with_finite_gradients(tmp_path):
    run, state = state_and_run(tmp_path)
    before = weights(state.model)
    set_grads(state, 0.01)
    assert optimizer_step(run, state, loss_finite=False) is None
    assert state.skipped_updates == 1
    assert all(torch.equal(a, b) for a, b in zip(before, weights(state.model), strict=True))


def test_consecutive_bad_steps_stop_the_run_saying_where(tmp_path):
    run, state = state_and_run(tmp_path, max_bad_steps=2)
    set_grads(state, math.nan)
    optimizer_step(run, state, loss_finite=True)
    set_grads(state, math.nan)
    with pytest.raises(
        TrainingDiverged, match=r"2 consecutive optimizer steps .* optimizer step 2"
    ):
        optimizer_step(run, state, loss_finite=True)
