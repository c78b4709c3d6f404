"""The regularizers: one contract over the whole table, then what each paper says it does."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from mt_dnn.adversarial import (
    REGULARIZERS,
    AdvConfig,
    StepOutput,
    TargetedRegularizer,
    build_regularizer,
)
from mt_dnn.adversarial import functional as AF
from mt_dnn.adversarial.base import clean_forward, perturbation
from mt_dnn.adversarial.freelb import FreeLBRegularizer
from mt_dnn.adversarial.r3f import R3FRegularizer
from mt_dnn.adversarial.tat import target_weights
from mt_dnn.confusion import save_confusion
from mt_dnn.losses import task_loss
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_model

# Backward calls each method card states, for adv_k=2.
CARD_BACKWARD_CALLS = {"none": 1, "smart": 1, "tat": 1, "freelb": 2, "r3f": 1, "random": 1}

CASES = [
    pytest.param(name, task, kind, id=f"{name}-{task.name}-{kind}")
    for name in REGULARIZERS
    for task in (CLS_TASK, REG_TASK)
    for kind in ("bert", "mpnet")
]


class Recorder:
    """The trainer's ``backward`` callable: records each loss, then backpropagates it."""

    def __init__(self):
        self.losses = []

    def __call__(self, loss):
        self.losses.append(float(loss.detach()))
        loss.backward()


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def run_step(reg, task, kind="bert", seed=0, batch=None):
    model = tiny_model(kind)
    batch = batch if batch is not None else tiny_batch(task, seed=seed)
    backward = Recorder()
    out = reg.step(model, batch, task, backward)
    return out, grads(model), backward


def plain_grads(task, kind="bert"):
    model = tiny_model(kind)
    batch = tiny_batch(task)
    task_loss(model(batch, task.name), batch["labels"], task).backward()
    return grads(model)


# -- the contract, over every entry of REGULARIZERS ----------------------------------------


@pytest.mark.parametrize("name, task, kind", CASES)
def test_contract(name, task, kind):
    cfg = AdvConfig(adv=name, adv_k=2)
    reg = build_regularizer(cfg, TASKS)
    out, g, backward = run_step(reg, task, kind)

    # Finite loss and gradients; the output's fields are what the trainer reads.
    assert isinstance(out, StepOutput)
    assert np.isfinite([out.loss, out.task_loss, out.adv_loss]).all()
    assert g and all(torch.isfinite(v).all() for v in g.values())
    assert not out.skipped and reg.skipped_steps == 0
    assert not out.logits.requires_grad
    assert out.logits.shape == ((4, 3) if task is CLS_TASK else (4,))
    assert out.delta_norm_ratio is None or 0.0 < out.delta_norm_ratio < 0.2

    # The number of backward calls is the method card's.
    assert len(backward.losses) == reg.backward_calls
    if name in CARD_BACKWARD_CALLS:
        assert reg.backward_calls == CARD_BACKWARD_CALLS[name]

    # Zero noise and zero steps: the adversarial term vanishes and the gradients are
    # those of plain training.
    zero = dataclasses.replace(
        cfg, adv_k=0, adv_noise_var=0.0, adv_epsilon=0.0, freelb_init_mag=0.0, r3f_eps=0.0
    )
    out0, g0, _ = run_step(build_regularizer(zero, TASKS), task, kind)
    assert abs(out0.adv_loss) <= 1e-7
    plain = plain_grads(task, kind)
    assert g0.keys() == plain.keys()
    for key in plain:
        # mt-dnn's detached KL form leaves float round-off (~1e-7) in its zero gradient.
        torch.testing.assert_close(g0[key], plain[key], rtol=1e-5, atol=1e-6)

    # state_dict survives JSON, and a restored regularizer takes the same next step.
    reg_b = build_regularizer(cfg, TASKS)
    state = json.loads(json.dumps(reg.state_dict()))
    reg_b.load_state_dict(state)
    next_a, ga, _ = run_step(reg, task, kind, seed=1)
    next_b, gb, _ = run_step(reg_b, task, kind, seed=1)
    assert next_a.loss == next_b.loss and next_a.delta_norm_ratio == next_b.delta_norm_ratio
    for key in ga:
        assert torch.equal(ga[key], gb[key])


@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_none_is_exactly_plain_training(task):
    out, g, backward = run_step(build_regularizer(AdvConfig(), TASKS), task)
    plain = plain_grads(task)
    assert g.keys() == plain.keys()
    assert all(torch.equal(g[k], plain[k]) for k in plain)
    assert out.adv_loss == 0.0 and out.delta_norm_ratio is None and len(backward.losses) == 1


def test_randomness_is_the_regularizers_own():
    # Fresh regularizers with the same seed take the same step whatever the global RNG
    # does; a different adv_seed gives a different perturbation.
    outs = []
    for seed, global_seed in ((0, 1), (0, 2), (5, 1)):
        torch.manual_seed(global_seed)
        reg = build_regularizer(AdvConfig(adv="smart", adv_seed=seed), TASKS)
        outs.append(run_step(reg, CLS_TASK)[0].adv_loss)
    assert outs[0] == outs[1] != outs[2]


# -- configuration and the table -----------------------------------------------------------


def test_config_fields_have_help_and_defaults():
    for f in dataclasses.fields(AdvConfig):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING, f.name
        assert not isinstance(f.type, str), f.name  # the trainer builds its CLI from the types


@pytest.mark.parametrize(
    "field, value, valid",
    [
        ("adv", "smrt", "freelb"),
        ("adv_p_norm", "l1", "l2"),
        ("adv_norm_level", "batch", "example"),
        ("adv_scale", "huge", "relative"),
        ("tat_error", "loss", "probs"),
        ("tat_update", "never", "epoch"),
        ("r3f_noise", "laplace", "uniform"),
    ],
)
def test_config_rejects_bad_choices_listing_valid_ones(field, value, valid):
    with pytest.raises(ValueError, match=valid):
        AdvConfig(**{field: value})


def test_config_rejects_bad_numbers():
    for kwargs in ({"adv_epsilon": -1.0}, {"adv_k": -1}, {"tat_momentum": 1.0}, {"tat_bins": 1}):
        with pytest.raises(ValueError):
            AdvConfig(**kwargs)


def test_build_regularizer_errors():
    cfg = AdvConfig()
    object.__setattr__(cfg, "adv", "smrt")  # bypass validation, as a hand-made config might
    with pytest.raises(ValueError, match="'none', 'smart', 'tat', 'freelb', 'r3f'"):
        build_regularizer(cfg, TASKS)
    bad_reg = dataclasses.replace(REG_TASK, adv_loss="symmetric_kl")
    with pytest.raises(ValueError, match="adv_loss: mse"):
        build_regularizer(AdvConfig(adv="smart"), {REG_TASK.name: bad_reg})


# -- non-finite perturbation gradients -----------------------------------------------------


def nan_gradient_hook(model, poison_calls):
    """Make the gradient reaching inputs_embeds NaN on the chosen forward_embeds calls."""
    calls = {"n": 0}
    original = model.forward_embeds

    def forward_embeds(embeds, batch, task):
        calls["n"] += 1
        if calls["n"] in poison_calls and embeds.requires_grad:
            embeds = embeds.clone()
            embeds.register_hook(lambda g: torch.full_like(g, float("nan")))
        return original(embeds, batch, task)

    model.forward_embeds = forward_embeds
    return calls


@pytest.mark.parametrize("name", ["smart", "tat"])
@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_nonfinite_perturbation_gradient_skips_adversarial_term(name, task):
    reg = build_regularizer(AdvConfig(adv=name), TASKS)
    model = tiny_model()
    nan_gradient_hook(model, poison_calls={2})  # call 1 is the clean forward, 2 the inner step
    batch = tiny_batch(task)
    backward = Recorder()
    out = reg.step(model, batch, task, backward)
    assert out.skipped and out.adv_loss == 0.0 and reg.skipped_steps == 1
    assert reg.counters()["adv_skipped_steps"] == 1
    # The task loss alone got its one backward: the gradients are plain training's.
    assert len(backward.losses) == 1 and out.loss == out.task_loss
    plain = plain_grads(task)
    g = grads(model)
    assert all(torch.equal(g[k], plain[k]) for k in plain)
    # Training continues: the next step is a normal one.
    model.zero_grad()
    nxt = reg.step(model, batch, task, Recorder())
    assert not nxt.skipped and nxt.adv_loss > 0 and reg.skipped_steps == 1


def test_nonfinite_perturbation_gradient_freelb():
    cfg = AdvConfig(adv="freelb", adv_k=3, freelb_init_mag=0.0)
    reg = build_regularizer(cfg, TASKS)
    model = tiny_model()
    nan_gradient_hook(model, poison_calls={1})
    backward = Recorder()
    out = reg.step(model, tiny_batch(CLS_TASK), CLS_TASK, backward)
    # delta is reset to zero: the remaining steps are clean, the count does not change.
    assert out.skipped and reg.skipped_steps == 1 and out.delta_norm_ratio == 0.0
    assert len(backward.losses) == 3
    assert np.allclose(backward.losses, out.task_loss / 3)
    model.zero_grad()
    model.forward_embeds = tiny_model().forward_embeds  # hook removed
    nxt = reg.step(model, tiny_batch(CLS_TASK), CLS_TASK, Recorder())
    assert not nxt.skipped and nxt.adv_loss > 0


# -- what each paper says the method does --------------------------------------------------


def _perturbation(cfg, task, inner, direction, seed=0, kind="bert"):
    model = tiny_model(kind)
    batch = tiny_batch(task, batch_size=8)
    clean = clean_forward(model, batch, task)
    gen = torch.Generator().manual_seed(seed)
    delta, _ = perturbation(model, batch, task, clean, cfg, gen, inner(clean), direction)
    with torch.no_grad():
        logits = model.forward_embeds(clean.x + delta, batch, task.name)
    return model, batch, clean, delta, logits


@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
@pytest.mark.parametrize("p_norm, level", [("inf", "token"), ("l2", "example")])
def test_smart_ascent_increases_divergence(task, p_norm, level):
    def divergence(clean):
        target = clean.logits.detach()
        return lambda logits: AF.divergence(logits, target, task.adv_loss)

    base = dict(adv_epsilon=0.2, adv_step_size=0.05, adv_p_norm=p_norm, adv_norm_level=level)
    values = []
    for k in (0, 1, 3):
        cfg = AdvConfig(adv="smart", adv_k=k, **base)
        _, _, clean, delta, logits = _perturbation(cfg, task, divergence, +1.0)
        values.append(float(AF.divergence(logits, clean.logits.detach(), task.adv_loss)))
        ball = AF.ball_unit(clean.x, clean.mask, p_norm, level, "relative") * 0.2
        assert (AF.group_norm(delta, clean.mask, p_norm, level) <= ball * (1 + 1e-5)).all()
        assert float((delta * (1 - clean.mask)).abs().sum()) == 0.0  # padding untouched
    assert values[0] < values[1] < values[2], values
    # The ascent direction beats a random one of the same size.
    cfg = AdvConfig(adv="smart", adv_k=3, **base)
    model, batch, clean, delta, _ = _perturbation(cfg, task, divergence, +1.0)
    gen = torch.Generator().manual_seed(1)
    random = torch.randn(delta.shape, generator=gen) * clean.mask
    random = random * delta.norm() / random.norm()
    with torch.no_grad():
        random_logits = model.forward_embeds(clean.x + random, batch, task.name)
    random_div = float(AF.divergence(random_logits, clean.logits.detach(), task.adv_loss))
    assert values[2] > 2 * random_div


def test_tat_steps_raise_target_probability():
    reg = TargetedRegularizer(AdvConfig(adv="tat", adv_epsilon=0.3, adv_step_size=0.1), TASKS)
    batch = tiny_batch(CLS_TASK, batch_size=8)
    targets = reg.sample_targets(CLS_TASK, batch["labels"], torch.Generator().manual_seed(0))
    assert (targets != batch["labels"]).all()

    def targeted(clean):
        return lambda logits: reg.targeted_loss(CLS_TASK, logits, targets)

    probs = []
    for k in (0, 1, 3):
        cfg = dataclasses.replace(reg.cfg, adv_k=k)
        _, _, clean, _, logits = _perturbation(cfg, CLS_TASK, targeted, -1.0)
        probs.append(logits.softmax(-1).gather(1, targets[:, None]).squeeze(1))
    assert (probs[1] > probs[0]).all() and (probs[2] > probs[1]).all()


def test_tat_regression_steps_move_prediction_towards_target():
    reg = TargetedRegularizer(AdvConfig(adv="tat", adv_epsilon=0.3, adv_step_size=0.1), TASKS)
    batch = tiny_batch(REG_TASK, batch_size=8)
    targets = reg.sample_targets(REG_TASK, batch["labels"], torch.Generator().manual_seed(0))
    gold_bins = torch.as_tensor(reg.gold_ids(REG_TASK, batch["labels"]))
    assert ((targets >= 0) & (targets <= 5)).all()
    assert (torch.floor(targets / 0.5).long() != gold_bins).all()

    def targeted(clean):
        return lambda logits: reg.targeted_loss(REG_TASK, logits, targets)

    gaps = []
    for k in (0, 3):
        cfg = dataclasses.replace(reg.cfg, adv_k=k)
        _, _, _, _, logits = _perturbation(cfg, REG_TASK, targeted, -1.0)
        gaps.append((logits - targets).abs())
    assert (gaps[1] < gaps[0]).all()


def test_freelb_ascent_increases_task_loss():
    cfg = AdvConfig(adv="freelb", adv_k=4, freelb_init_mag=0.0, adv_epsilon=0.3, adv_step_size=0.1)
    out, _, backward = run_step(FreeLBRegularizer(cfg, TASKS), CLS_TASK)
    losses = [loss * 4 for loss in backward.losses]  # each backward is scaled by 1/K
    assert losses[0] == pytest.approx(out.task_loss)  # init_mag=0: step 0 is the clean loss
    assert losses[0] < losses[1] < losses[2] < losses[3], losses
    assert out.loss == pytest.approx(np.mean(losses)) and out.adv_loss > 0


@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_freelb_without_a_perturbation_is_plain_training(task):
    """K ascent steps of size 0 accumulate K copies of loss / K: plain training's gradient."""
    cfg = AdvConfig(adv="freelb", adv_k=3, freelb_init_mag=0.0, adv_epsilon=0.0, adv_noise_var=0.0)
    out, g, backward = run_step(FreeLBRegularizer(cfg, TASKS), task)
    plain = plain_grads(task)
    assert g.keys() == plain.keys() and len(backward.losses) == 3
    for key in plain:  # three accumulated thirds: float round-off only
        torch.testing.assert_close(g[key], plain[key], rtol=1e-4, atol=1e-6)
    assert out.adv_loss == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_r3f_noise_has_declared_size(noise):
    model = tiny_model()
    batch = tiny_batch(CLS_TASK, batch_size=8, seq_len=30)
    clean = clean_forward(model, batch, CLS_TASK)
    rms = AF.component_rms(clean.x, clean.mask, "token")
    for scale, unit in (("relative", rms), ("absolute", 1.0)):
        reg = R3FRegularizer(AdvConfig(adv="r3f", r3f_noise=noise, adv_scale=scale), TASKS)
        z = reg.noise(clean, torch.Generator().manual_seed(0)) / (0.05 * unit)
        real = z[clean.mask.expand_as(z) > 0]
        if noise == "uniform":
            assert float(real.abs().max()) <= 1.0 + 1e-6 and float(real.abs().max()) > 0.99
            assert abs(float(real.var()) - 1 / 3) < 0.02
        else:
            assert abs(float(real.std()) - 1.0) < 0.03


# -- TAT: targets, tallies, oracle, logging, state -----------------------------------------


def test_tat_targets_follow_expected_error():
    reg = TargetedRegularizer(AdvConfig(adv="tat"), TASKS)
    reg.expected[CLS_TASK.name] = np.array(
        [[0.5, 0.3, 0.2], [0.1, 0.85, 0.05], [0.0, 0.0, 1.0]]  # gold c: no recorded errors
    )
    n = 20000
    labels = torch.arange(3).repeat_interleave(n)
    targets = reg.sample_targets(CLS_TASK, labels, torch.Generator().manual_seed(0)).numpy()
    expected_rows = {0: [0, 0.6, 0.4], 1: [2 / 3, 0, 1 / 3], 2: [0.5, 0.5, 0]}
    for gold, probs in expected_rows.items():
        counts = np.bincount(targets[gold * n : (gold + 1) * n], minlength=3)
        assert counts[gold] == 0  # never the gold label
        wrong = [j for j in range(3) if j != gold]
        chi = stats.chisquare(counts[wrong], n * np.array(probs)[wrong])
        assert chi.pvalue > 1e-3, (gold, counts)
    # A sampler that ignored e (uniform over wrong labels) is rejected by the same test.
    counts = np.bincount(targets[:n], minlength=3)
    assert stats.chisquare(counts[1:], [n / 2, n / 2]).pvalue < 1e-6


def test_tat_smoothing_and_regression_targets():
    cfg = AdvConfig(adv="tat", tat_smoothing=1.0, tat_bins=5)
    reg = TargetedRegularizer(cfg, TASKS)
    expected = np.eye(5)
    expected[0] = [0.0, 1.0, 0.0, 0.0, 0.0]
    reg.expected[REG_TASK.name] = expected
    labels = torch.full((30000,), 0.3)  # gold bin 0 of [0, 5] in 5 bins
    values = reg.sample_targets(REG_TASK, labels, torch.Generator().manual_seed(0))
    bins = torch.floor(values).long().numpy()  # width 1
    counts = np.bincount(bins, minlength=5)
    probs = np.array([0, 2, 1, 1, 1]) / 5  # e + smoothing, gold bin excluded
    assert counts[0] == 0
    assert stats.chisquare(counts[1:], len(labels) * probs[1:]).pvalue > 1e-3
    # Uniform within the bin.
    inside = (values[bins == 1] - 1.0).numpy()
    assert stats.kstest(inside, "uniform").pvalue > 1e-3


def test_a_huge_tat_smoothing_makes_every_wrong_label_equally_likely():
    # The TAT study's tat_uniform (targeting ablated) is --tat_smoothing 1e9.
    skewed = torch.tensor([[0.8, 0.19, 0.01], [0.3, 0.6, 0.1], [0.0, 0.0, 1.0]])
    assert torch.allclose(target_weights(skewed, 0.0)[0].float(), torch.tensor([0.0, 0.95, 0.05]))
    uniform = (1 - torch.eye(3, dtype=torch.float64)) / 2
    assert torch.equal(target_weights(skewed, 1e9).float(), uniform.float())


def test_tat_tally_counts_probs_and_regression_bins():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    counts = TargetedRegularizer(AdvConfig(adv="tat"), TASKS)
    counts.record(CLS_TASK, logits, labels)
    assert np.array_equal(counts.tally[CLS_TASK.name], [[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    assert np.array_equal(counts.seen[CLS_TASK.name], [2, 2, 0])
    probs = TargetedRegularizer(AdvConfig(adv="tat", tat_error="probs"), TASKS)
    probs.record(CLS_TASK, logits, labels)
    assert np.allclose(probs.tally[CLS_TASK.name], softmax_tally(logits, labels))

    reg = TargetedRegularizer(AdvConfig(adv="tat"), TASKS)
    reg.record(REG_TASK, torch.tensor([0.1, 4.9, 2.6]), torch.tensor([0.2, 0.3, 5.0]))
    tally = reg.tally[REG_TASK.name]
    assert tally.sum() == 3 and tally[0, 0] == 1 and tally[0, 9] == 1 and tally[9, 5] == 1

    # end_epoch turns the tally into e, row by row; an unseen row keeps its old value.
    counts.end_epoch(0, None, None)
    e = counts.expected[CLS_TASK.name]
    assert np.allclose(e[:2], [[0.5, 0, 0.5], [0.5, 0.5, 0]]) and np.allclose(e[2], 1 / 3)
    assert counts.tally[CLS_TASK.name].sum() == 0  # tallies restart every epoch


def softmax_tally(logits, labels):
    out = np.zeros((3, 3))
    for row, gold in zip(logits.softmax(-1).numpy(), labels.numpy(), strict=True):
        out[gold] += row
    return out


def test_tat_step_update_is_a_moving_average():
    reg = TargetedRegularizer(AdvConfig(adv="tat", tat_update="step", tat_momentum=0.5), TASKS)
    logits = torch.tensor([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0]])
    reg.record(CLS_TASK, logits, torch.tensor([0, 1]))
    e = reg.expected[CLS_TASK.name]
    assert np.allclose(e[0], [1 / 6, 1 / 6 + 0.5, 1 / 6]) and np.allclose(e[2], 1 / 3)


def test_tat_oracle_reads_file_and_never_updates(tmp_path):
    path = tmp_path / "oracle.json"
    matrix = np.array([[8, 2, 0], [1, 1, 8], [0, 0, 0]])
    bins = np.eye(10) * 3
    save_confusion(
        path,
        {
            CLS_TASK.name: (["a", "b", "c"], matrix),
            REG_TASK.name: ([f"b{i}" for i in range(10)], bins),
        },
    )
    with pytest.raises(ValueError, match="labels"):  # regression bin names must match
        TargetedRegularizer(AdvConfig(adv="tat", tat_oracle=str(path)), TASKS)
    save_confusion(path, {CLS_TASK.name: (["a", "b", "c"], matrix)})
    with pytest.raises(ValueError, match=f"{path}.*tiny_reg"):  # a trained task is missing
        TargetedRegularizer(AdvConfig(adv="tat", tat_oracle=str(path)), TASKS)

    reg = TargetedRegularizer(AdvConfig(adv="tat", tat_oracle=str(path)), {"tiny_cls": CLS_TASK})
    e = np.array(reg.expected[CLS_TASK.name])
    assert np.allclose(e, [[0.8, 0.2, 0], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    for seed in range(3):
        run_step(reg, CLS_TASK, seed=seed)
    reg.end_epoch(0, None, None)
    assert np.array_equal(reg.expected[CLS_TASK.name], e)


class FakeWriter:
    def __init__(self):
        self.figures = []

    def add_figure(self, tag, figure, global_step=None, close=True):
        self.figures.append((tag, global_step))


def test_tat_end_epoch_writes_json_png_and_tensorboard(tmp_path):
    reg = build_regularizer(AdvConfig(adv="tat"), TASKS)
    assert reg.end_epoch(0, tmp_path, None) == {}  # nothing seen, nothing written
    assert list(tmp_path.iterdir()) == []
    run_step(reg, CLS_TASK)
    run_step(reg, REG_TASK)
    writer = FakeWriter()
    summary = reg.end_epoch(3, tmp_path, writer)
    assert set(summary) == {"tat/tiny_cls/train_error_rate", "tat/tiny_reg/train_error_rate"}
    raw = json.loads((tmp_path / "tat_confusion_epoch3.json").read_text())
    assert np.array(raw["tasks"]["tiny_cls"]["matrix"]).sum() == 4
    assert len(raw["tasks"]["tiny_reg"]["labels"]) == 10
    for task in ("tiny_cls", "tiny_reg"):
        assert (tmp_path / f"tat_confusion_{task}_epoch3.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(writer.figures) == [("tat_confusion/tiny_cls", 3), ("tat_confusion/tiny_reg", 3)]


def test_tat_end_epoch_with_real_summary_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    reg = build_regularizer(AdvConfig(adv="tat"), TASKS)
    run_step(reg, CLS_TASK)
    with SummaryWriter(tmp_path / "tb") as writer:
        reg.end_epoch(1, None, writer)
    assert any((tmp_path / "tb").iterdir())


def test_tat_resume_samples_the_same_targets():
    cfg = AdvConfig(adv="tat")
    reg = TargetedRegularizer(cfg, TASKS)
    run_step(reg, CLS_TASK)  # advances the generator, tallies an epoch in progress
    state = json.loads(json.dumps(reg.state_dict()))
    restored = TargetedRegularizer(cfg, TASKS)
    restored.load_state_dict(state)
    assert np.array_equal(restored.tally[CLS_TASK.name], reg.tally[CLS_TASK.name])
    labels = torch.tensor([0, 1, 2] * 10)
    a = reg.sample_targets(CLS_TASK, labels, reg.generator(torch.device("cpu")))
    b = restored.sample_targets(CLS_TASK, labels, restored.generator(torch.device("cpu")))
    fresh = TargetedRegularizer(cfg, TASKS)
    c = fresh.sample_targets(CLS_TASK, labels, fresh.generator(torch.device("cpu")))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_freelb_with_one_step_warns_that_it_never_ascends():
    with pytest.warns(UserWarning, match="no ascent step"):
        build_regularizer(AdvConfig(adv="freelb", adv_k=1), TASKS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_regularizer(AdvConfig(adv="freelb", adv_k=2), TASKS)
