import io

import pytest
import pytorch_optimizer
import torch

from mt_dnn.config import TrainConfig
from mt_dnn.losses import task_loss
from mt_dnn.optim import build_optimizer, parameter_groups, warmup_linear
from tests.tiny import CLS_TASK, tiny_batch, tiny_model


def test_layer_wise_learning_rates():
    model = tiny_model()  # 2 encoder layers
    groups = parameter_groups(model, 1e-4, 1e-3, 0.5, 0.01)
    lr_of = {}
    for group in groups:
        for p in group["params"]:
            lr_of[id(p)] = (group["lr"], group["weight_decay"])
    named = dict(model.named_parameters())
    assert lr_of[id(named["encoder.encoder.layer.1.attention.self.query.weight"])] == (1e-4, 0.01)
    assert lr_of[id(named["encoder.encoder.layer.0.attention.self.query.weight"])] == (5e-5, 0.01)
    assert lr_of[id(named["encoder.embeddings.word_embeddings.weight"])] == (2.5e-5, 0.01)
    assert lr_of[id(named["encoder.embeddings.LayerNorm.weight"])] == (2.5e-5, 0.0)
    assert lr_of[id(named["heads.tiny_cls.out.weight"])] == (1e-3, 0.01)
    assert lr_of[id(named["heads.tiny_cls.out.bias"])] == (1e-3, 0.0)
    assert len(lr_of) == len(named)  # every parameter is in exactly one group


def test_warmup_then_linear_decay():
    f = warmup_linear(total_steps=100, warmup=0.1)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == 0.0
    assert warmup_linear(10, 0.0)(0) == 1.0


# --- Lookahead (--lookahead): the TAT paper's recipe --------------------------------


def _cfg(**overrides) -> TrainConfig:
    # One learning rate for every parameter, so each group moves alike.
    base = dict(optimizer="adamax", learning_rate=1e-2, head_learning_rate=0.0, layer_decay=1.0)
    return TrainConfig(**{**base, **overrides})


def _train(model, optimizer, n_steps: int, scheduler=None, first_batch: int = 0) -> None:
    """The trainer's calls, in its order, on classification batches."""
    scaler = torch.amp.GradScaler("cpu")
    for i in range(first_batch, first_batch + n_steps):
        batch = tiny_batch(CLS_TASK, seed=i)
        loss = task_loss(model(batch, CLS_TASK.name), batch["labels"], CLS_TASK)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize(
    "name, inner_class", [("adamax", torch.optim.Adamax), ("adamw", torch.optim.AdamW)]
)
def test_lookahead_wraps_the_optimizer_only_when_asked(name, inner_class):
    plain = build_optimizer(tiny_model(), _cfg(optimizer=name))
    assert type(plain) is inner_class
    wrapped = build_optimizer(
        tiny_model(), _cfg(optimizer=name, lookahead=True, lookahead_k=3, lookahead_alpha=0.25)
    )
    assert isinstance(wrapped, pytorch_optimizer.Lookahead)
    assert isinstance(wrapped, torch.optim.Optimizer)  # what LambdaLR insists on
    assert type(wrapped.optimizer) is inner_class
    assert (wrapped.k, wrapped.alpha) == (3, 0.25)
    assert wrapped.param_groups is wrapped.optimizer.param_groups


def test_lookahead_interpolates_towards_the_slow_weights_every_k_steps():
    k, alpha = 3, 0.25
    model, twin = tiny_model(), tiny_model()
    slow = _weights(model)
    lookahead = build_optimizer(model, _cfg(lookahead=True, lookahead_k=k, lookahead_alpha=alpha))
    plain = build_optimizer(twin, _cfg())

    # Before the k-th step Lookahead is the inner optimizer: same fast weights.
    _train(model, lookahead, k - 1)
    _train(twin, plain, k - 1)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), name

    # The k-th step pulls them back: slow + alpha * (fast - slow).
    _train(model, lookahead, 1, first_batch=k - 1)
    _train(twin, plain, 1, first_batch=k - 1)
    fast = _weights(twin)
    moved = 0.0
    for name, p in model.named_parameters():
        expected = slow[name] + alpha * (fast[name] - slow[name])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7, msg=name)
        moved += float((fast[name] - p.detach()).abs().sum())
    assert moved > 1e-2  # differs from the plain run
    query = "encoder.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(dict(model.named_parameters())[query], fast[query])


def test_schedule_reaches_the_inner_optimizer():
    model = tiny_model()
    optimizer = build_optimizer(model, _cfg(lookahead=True))
    factor = warmup_linear(total_steps=10, warmup=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    inner = optimizer.optimizer
    for step in range(3):
        assert [g["lr"] for g in inner.param_groups] == pytest.approx(
            [1e-2 * factor(step)] * len(inner.param_groups)
        )
        assert scheduler.get_last_lr() == [g["lr"] for g in inner.param_groups]
        _train(model, optimizer, 1, scheduler, first_batch=step)


def test_lookahead_state_dict_resumes_a_fresh_optimizer():
    cfg = _cfg(lookahead=True, lookahead_k=3)
    model = tiny_model()
    optimizer = build_optimizer(model, cfg)
    _train(model, optimizer, 4)  # one synchronisation done, one step into the next cycle

    # Through bytes and a safe (tensors-only) load, into a fresh model and optimizer.
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    resumed_model = tiny_model(seed=1)
    resumed_model.load_state_dict(model.state_dict())
    resumed = build_optimizer(resumed_model, cfg)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))

    # Across the next synchronisation (step 6) both runs stay identical: slow
    # weights, inner moments and the step counter all came back.
    _train(model, optimizer, 3, first_batch=4)
    _train(resumed_model, resumed, 3, first_batch=4)
    for (name, p), q in zip(model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q), name
