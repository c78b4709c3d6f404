"""The cheap CPU dropout: its masks, its gradient, its attention path, and the trainer switch."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mt_dnn import fast_dropout as fd
from tests.tiny import CLS_TASK, tiny_batch, tiny_model

P = 0.1


def test_drop_rate_is_p_in_each_of_the_four_positions_of_a_random_word():
    """Each 64-bit word feeds four elements; every position must drop at rate p.

    (A draw in [0, 2^63) would leave the top 16 bits' sign clear and that
    position would never drop.)
    """
    torch.manual_seed(0)
    n = 1 << 20
    for p in (P, 0.5):
        kept = fd.keep_mask((n,), p).view(-1, 4)
        dropped = 1.0 - kept.double().mean(dim=0)
        sigma = math.sqrt(p * (1 - p) / (n // 4))
        rounded = fd.drop_threshold(p) / 65536
        assert torch.all((dropped - rounded).abs() < 5 * sigma), (p, dropped)


def test_p_is_rounded_to_a_multiple_of_one_in_65536():
    assert fd.drop_threshold(0.1) == 6554
    assert fd.drop_threshold(0.5) == 32768
    x = torch.ones(1000)
    assert fd.cheap_dropout(x, 1e-6) is x  # rounds to 0: nothing dropped, nothing drawn


def test_kept_values_are_scaled_by_the_inverse_keep_rate_and_the_gradient_follows_the_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = fd.cheap_dropout(x, P)
    scale = 65536 / (65536 - 6554)
    kept = y != 0
    assert 0 < kept.sum() < x.numel()
    assert torch.allclose(y[kept], x.detach()[kept] * scale, rtol=1e-6)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    assert torch.allclose(x.grad, upstream * kept * scale, rtol=1e-6)


def test_the_expectation_is_the_input():
    torch.manual_seed(2)
    x = torch.full((1 << 20,), 3.0)
    assert fd.cheap_dropout(x, P).mean().item() == pytest.approx(3.0, rel=2e-3)


def test_same_generator_state_same_mask():
    """Seeds, resume and the regularizers' mask replay restore torch's CPU generator."""
    x = torch.randn(8, 40)
    torch.manual_seed(7)
    first = fd.cheap_dropout(x, P)
    state = torch.get_rng_state()
    second = fd.cheap_dropout(x, P)
    torch.set_rng_state(state)
    assert torch.equal(fd.cheap_dropout(x, P), second)
    assert not torch.equal(first, second)
    torch.manual_seed(7)
    assert torch.equal(fd.cheap_dropout(x, P), first)


def test_no_dropout_in_eval_at_zero_or_for_non_float_tensors():
    x = torch.randn(5, 6)
    assert fd.cheap_dropout(x, P, training=False) is x
    assert fd.cheap_dropout(x, 0.0) is x
    ids = torch.arange(30)
    assert torch.equal(fd.cheap_dropout(ids.float(), 0.0), ids.float())
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fd.cheap_dropout(x, 1.0)


@pytest.mark.parametrize("padded", [True, False])
def test_explicit_attention_equals_sdpa_when_nothing_is_dropped(padded):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(3)
    q, k, v = (torch.randn(3, 4, 9, 8) for _ in range(3))
    mask = None
    if padded:
        lengths = torch.tensor([9, 6, 2])
        keep = torch.arange(9)[None, :] < lengths[:, None]
        mask = keep[:, None, None, :].expand(3, 1, 9, 9)
    module = torch.nn.Module()
    module.is_causal = False  # an encoder's self-attention
    # p = 1e-6 rounds to no drop, so the explicit path runs with an identity mask
    ours, _ = fd.attention(module, q, k, v, mask, dropout=1e-6, scaling=0.3)
    reference, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    assert ours.shape == reference.shape == (3, 9, 4, 8)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_causal_attention_is_left_to_sdpa():
    """A module without ``is_causal = False`` is causal for transformers: SDPA runs it."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    torch.manual_seed(5)
    ours, _ = fd.attention(torch.nn.Module(), q, k, v, None, dropout=P, scaling=0.3)
    torch.manual_seed(5)
    reference, _ = sdpa_attention_forward(torch.nn.Module(), q, k, v, None, dropout=P, scaling=0.3)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_install_keeps_weights_and_evaluation_and_switches_every_dropout(kind):
    model = tiny_model(kind, dropout=P)
    batch = tiny_batch(CLS_TASK)
    dropouts = sum(type(m) is torch.nn.Dropout for m in model.modules())
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model.eval()(batch, CLS_TASK.name)
    assert fd.install(model) == dropouts > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.equal(model.eval()(batch, CLS_TASK.name), before)
    # the switched attention never leaks into what checkpoints save
    assert fd.ATTENTION not in json.dumps(model.encoder.config.to_dict())
    model.train()
    torch.manual_seed(4)
    first = model(batch, CLS_TASK.name)
    torch.manual_seed(4)
    assert torch.equal(model(batch, CLS_TASK.name), first)
    assert not torch.equal(model(batch, CLS_TASK.name), first)
    fd.uninstall(model)
    assert sum(type(m) is torch.nn.Dropout for m in model.modules()) == dropouts
    assert model.encoder.config._attn_implementation != fd.ATTENTION


def test_bert_attention_goes_through_the_cheap_dropout_in_training(monkeypatch):
    model = tiny_model("bert", dropout=0.0)
    assert model.encoder.config._attn_implementation == "sdpa"
    fd.install(model)
    assert model.encoder.config._attn_implementation == fd.ATTENTION
    calls = []
    original = fd.cheap_dropout

    def spy(x, p, training=True):
        calls.append(tuple(x.shape))
        return original(x, p, training)

    monkeypatch.setattr(fd, "cheap_dropout", spy)
    model.train()(tiny_batch(CLS_TASK, batch_size=4, seq_len=7), CLS_TASK.name)
    probs = [shape for shape in calls if shape == (4, 4, 7, 7)]  # [batch, heads, query, key]
    assert len(probs) == 2  # one per layer


def test_trainer_installs_it_by_default_and_not_with_fast_dropout_false(tmp_path):
    from mt_dnn.adversarial import AdvConfig
    from mt_dnn.trainer import setup_run, setup_state
    from tests.test_trainer import make_cfg
    from tests.tiny import write_tiny_run_inputs

    inputs = write_tiny_run_inputs(tmp_path, dropout=P)
    for fast in (True, False):
        cfg = make_cfg(inputs, tmp_path, fast_dropout=fast, output_dir=str(tmp_path / f"o{fast}"))
        run = setup_run(cfg, AdvConfig())
        state = setup_state(run)
        kinds = {type(m) for m in state.model.modules()} & {torch.nn.Dropout, fd.FastDropout}
        assert kinds == ({fd.FastDropout} if fast else {torch.nn.Dropout})


def test_checkpoints_saved_before_the_switch_resume_only_with_torch_dropout(tmp_path):
    """A config.json without ``fast_dropout`` was written by a run with torch's dropout."""
    from types import SimpleNamespace

    from mt_dnn.trainer import TrainingError, check_same_run

    (tmp_path / "config.json").write_text(json.dumps({"seed": 1}))
    check_same_run(SimpleNamespace(resolved={"seed": 1, "fast_dropout": False}), tmp_path)
    with pytest.raises(TrainingError, match="fast_dropout: False -> True"):
        check_same_run(SimpleNamespace(resolved={"seed": 1, "fast_dropout": True}), tmp_path)


@pytest.mark.parametrize(
    "model_type", ["roberta", "xlm-roberta", "electra", "deberta-v2", "distilbert"]
)
def test_install_on_the_other_encoder_families(model_type):
    """Attention-interface families switch to ``mtdnn_sdpa``; DeBERTa-v2 keeps its own."""
    from transformers import AutoConfig, AutoModel

    sizes = dict(vocab_size=60, max_position_embeddings=64)
    if model_type == "distilbert":
        sizes.update(dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    else:
        sizes.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64)  # fmt: skip
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.for_model(model_type, **sizes)).eval()
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert fd.install(model) > 0
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, before)
    expected = "eager" if model_type == "deberta-v2" else fd.ATTENTION
    assert model.config._attn_implementation == expected
    out = model.train()(input_ids=ids, attention_mask=mask).last_hidden_state
    out.square().mean().backward()
    assert torch.isfinite(out).all() and not torch.equal(out.detach(), before)
