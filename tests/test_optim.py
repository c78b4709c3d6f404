import pytest

from mt_dnn.optim import parameter_groups, warmup_linear
from tests.tiny import tiny_model


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
