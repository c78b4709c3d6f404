"""Every regularizer works through a DistributedDataParallel wrapper (one in-process rank).

DDP only sees the passes that go through its ``forward``; a regularizer that
called the wrapped model's own methods (``embed``, ``forward_embeds``) would
fail here, since the wrapper has none. Through the wrapper each step must give
the loss and gradients of the bare model, and FreeLB must defer the
all-reduce of all but its last backward.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mt_dnn import distributed
from mt_dnn.adversarial import REGULARIZERS, AdvConfig, build_regularizer
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_model

# Forwards through the model per step with adv_k=2 (the method cards' costs).
FORWARDS = {"none": 1, "smart": 4, "tat": 4, "freelb": 2, "r3f": 2, "random": 2}


@pytest.fixture(scope="module")
def one_rank():
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class Backward:
    """A trainer-like ``backward``: backpropagates, counts deferred sections."""

    def __init__(self, model):
        self.model, self.calls, self.deferred_calls = model, 0, 0

    def __call__(self, loss):
        self.calls += 1
        loss.backward()

    def deferred(self):
        self.deferred_calls += 1
        return distributed.no_sync(self.model)


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_a_step_through_ddp_equals_the_bare_model(one_rank, name, task):
    cfg = AdvConfig(adv=name, adv_k=2)
    batch = tiny_batch(task)
    bare, inner = tiny_model(), tiny_model()
    wrapped = DistributedDataParallel(inner, find_unused_parameters=True)
    forwards: list[int] = []
    wrapped.register_forward_pre_hook(lambda module, args: forwards.append(1))

    torch.manual_seed(0)
    out_a = build_regularizer(cfg, TASKS).step(bare, batch, task, Backward(bare))
    torch.manual_seed(0)
    backward = Backward(wrapped)
    out_b = build_regularizer(cfg, TASKS).step(wrapped, batch, task, backward)

    assert out_a.loss == pytest.approx(out_b.loss, rel=1e-6, abs=1e-7)
    grads = {n: p.grad for n, p in bare.named_parameters() if p.grad is not None}
    through = {n: p.grad for n, p in inner.named_parameters() if p.grad is not None}
    assert grads.keys() == through.keys()
    for key in grads:
        torch.testing.assert_close(grads[key], through[key], rtol=1e-5, atol=1e-7)
    assert len(forwards) == FORWARDS[name]
    assert backward.calls == build_regularizer(cfg, TASKS).backward_calls
    assert backward.deferred_calls == backward.calls - 1  # only the last backward syncs
