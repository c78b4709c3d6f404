"""The pure functions the regularizers share, each on hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mt_dnn.adversarial import functional as AF


def _mask(lengths, seq_len):
    attention = torch.tensor([[1] * n + [0] * (seq_len - n) for n in lengths])
    return AF.token_mask(attention)


def test_token_mask_shape_and_dtype():
    mask = AF.token_mask(torch.tensor([[1, 1, 0]]), torch.bfloat16)
    assert mask.shape == (1, 3, 1) and mask.dtype == torch.bfloat16


def test_component_rms_per_token_and_per_example():
    embeds = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [9.0, 9.0]]])  # last token is padding
    mask = _mask([2], 3)
    token = AF.component_rms(embeds, mask, "token")
    assert torch.allclose(token[0, :, 0], torch.tensor([math.sqrt(12.5), 0.0, 0.0]))
    example = AF.component_rms(embeds, mask, "example")
    assert example.shape == (1, 1, 1)
    assert math.isclose(float(example), math.sqrt(25 / 4), rel_tol=1e-6)


@pytest.mark.parametrize("level", ["token", "example"])
@pytest.mark.parametrize("p_norm", ["inf", "l2"])
def test_relative_ball_edge_has_norm_ratio_eps(p_norm, level):
    # A delta on the edge of a relative ball of radius eps is eps of the embedding size.
    gen = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 5, 8, generator=gen)
    mask = _mask([5, 4, 2], 5)
    unit = AF.ball_unit(embeds, mask, p_norm, level, "relative")
    grad = torch.randn(3, 5, 8, generator=gen)
    if p_norm == "inf":
        delta = 0.1 * unit * grad.sign() * mask  # a corner of the L-inf ball
    else:
        delta = 0.1 * unit * AF.normalize_grad(grad, mask, "l2", level)
    if level == "token" or p_norm == "l2":
        assert math.isclose(float(AF.norm_ratio(delta, embeds, mask)), 0.1, rel_tol=1e-4)
    per_group = AF.group_norm(delta, mask, "l2", level) / AF.group_norm(embeds, mask, "l2", level)
    real = AF.group_reduce(mask, level, "max") > 0
    assert torch.allclose(per_group[real], torch.full_like(per_group[real], 0.1), rtol=1e-4)


def test_absolute_ball_unit_is_one():
    embeds = torch.randn(2, 3, 4)
    unit = AF.ball_unit(embeds, _mask([3, 1], 3), "l2", "example", "absolute")
    assert unit.shape == (2, 1, 1) and torch.equal(unit, torch.ones(2, 1, 1))
    assert float(AF.noise_unit(embeds, _mask([3, 1], 3), "token", "absolute")) == 1.0


def test_normalize_grad_linf_per_token():
    grad = torch.tensor([[[1.0, -4.0], [0.5, 0.25], [7.0, 7.0]]])
    out = AF.normalize_grad(grad, _mask([2], 3), "inf", "token")
    expected = torch.tensor([[[0.25, -1.0], [1.0, 0.5], [0.0, 0.0]]])
    assert torch.equal(out, expected)


def test_normalize_grad_l2_per_example_and_zero_groups():
    grad = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = AF.normalize_grad(grad, _mask([2, 2], 2), "l2", "example")
    assert torch.allclose(out[0], grad[0] / 5.0)
    assert torch.equal(out[1], torch.zeros(2, 2))  # zero gradient stays zero, no NaN


def test_project_linf_clamps_and_zeroes_padding():
    delta = torch.tensor([[[0.5, -2.0], [0.1, 0.1], [3.0, 3.0]]])
    out = AF.project(delta, 0.3, _mask([2], 3), "inf", "token")
    assert torch.equal(out, torch.tensor([[[0.3, -0.3], [0.1, 0.1], [0.0, 0.0]]]))


def test_project_l2_scales_only_outside_the_ball():
    delta = torch.tensor([[[3.0, 4.0], [0.3, 0.4]]])
    out = AF.project(delta, 1.0, _mask([2], 2), "l2", "token")
    assert torch.allclose(out, torch.tensor([[[0.6, 0.8], [0.3, 0.4]]]))
    per_example = AF.project(delta, 1.0, _mask([2], 2), "l2", "example")
    assert math.isclose(float(per_example.norm()), 1.0, rel_tol=1e-6)


def test_noise_has_declared_size_and_zero_padding():
    gen = torch.Generator().manual_seed(0)
    like = torch.zeros(4, 50, 64)
    mask = _mask([50, 40, 30, 1], 50)
    uniform = AF.uniform_noise(like, mask, 0.2, gen)
    assert float(uniform.abs().max()) <= 0.2 and float(uniform.abs().max()) > 0.19
    normal = AF.normal_noise(like, mask, 0.3, gen)
    real = normal[mask.expand_as(normal) > 0]
    assert abs(float(real.std()) - 0.3) < 0.01
    assert float(uniform[1, 40:].abs().sum() + normal[3, 1:].abs().sum()) == 0.0


def test_symmetric_kl_matches_definition():
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    pa, pb = a.softmax(-1), b.softmax(-1)
    manual = ((pa * (pa / pb).log()).sum(-1) + (pb * (pb / pa).log()).sum(-1)).mean()
    assert torch.allclose(AF.symmetric_kl(a, b), manual, atol=1e-6)
    assert torch.allclose(AF.symmetric_kl(a, b), AF.symmetric_kl(b, a))
    assert float(AF.symmetric_kl(a, a)) == 0.0


def test_divergences_are_fp32_and_kl_direction():
    a, b = torch.randn(4, 3).bfloat16(), torch.randn(4, 3).bfloat16()
    for name in AF.DIVERGENCES:
        assert AF.divergence(a, b, name).dtype == torch.float32
    reference = F.kl_div(
        F.log_softmax(a.float(), -1),
        F.log_softmax(b.float(), -1),
        log_target=True,
        reduction="batchmean",
    )
    assert torch.allclose(AF.kl(a, b), reference, atol=1e-6)
    assert torch.allclose(AF.divergence(a, b, "mse"), F.mse_loss(a.float(), b.float()))
    with pytest.raises(ValueError, match="symmetric_kl"):
        AF.divergence(a, b, "js")


def test_norm_ratio_ignores_padding():
    embeds = torch.tensor([[[2.0, 0.0], [100.0, 100.0]]])
    delta = torch.tensor([[[0.2, 0.0], [50.0, 50.0]]])
    assert math.isclose(float(AF.norm_ratio(delta, embeds, _mask([1], 2))), 0.1, rel_tol=1e-6)
