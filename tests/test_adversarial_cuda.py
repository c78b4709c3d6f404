"""The regularizers on a GPU under bf16 autocast, as the trainer runs them (skipped without CUDA)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mt_dnn.adversarial import REGULARIZERS, AdvConfig, build_regularizer
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _step(reg, task, seed=0):
    model = tiny_model().cuda()
    batch = {k: v.cuda() for k, v in tiny_batch(task, seed=seed).items()}
    calls = []

    def backward(loss):
        calls.append(loss.dtype)
        loss.backward()

    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = reg.step(model, batch, task, backward)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return out, grads, calls


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_step_on_cuda_bf16(name, task):
    cfg = AdvConfig(adv=name, adv_k=2)
    reg = build_regularizer(cfg, TASKS)
    out, grads, calls = _step(reg, task)
    assert np.isfinite([out.loss, out.task_loss, out.adv_loss]).all()
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert len(calls) == reg.backward_calls and all(d == torch.float32 for d in calls)
    assert not out.skipped
    assert out.logits.device.type == "cuda"
    # The generator lives on the GPU and its state survives JSON.
    restored = build_regularizer(cfg, TASKS)
    restored.load_state_dict(json.loads(json.dumps(reg.state_dict())))
    a, _, _ = _step(reg, task, seed=1)
    b, _, _ = _step(restored, task, seed=1)
    assert a.loss == b.loss and a.delta_norm_ratio == b.delta_norm_ratio
