"""Shared math of the adversarial regularizers, as pure functions.

Shapes: ``embeds``/``delta``/``grad`` are [B, T, H]; ``mask`` is the attention
mask as [B, T, 1] in the embeddings' dtype (see :func:`token_mask`). A *group*
is what one norm is taken over: one token's H components (``level="token"``,
per-group tensors are [B, T, 1]) or all real tokens of one example
(``level="example"``, [B, 1, 1]). Padding positions never count and always get
a zero perturbation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Smallest norm a gradient group is divided by: a group whose gradient is exactly
# zero (padding, or a saturated softmax) stays zero instead of becoming NaN.
_TINY = 1e-12


def token_mask(attention_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """[B, T] attention mask -> [B, T, 1] float mask that broadcasts over the hidden size."""
    return attention_mask.to(dtype).unsqueeze(-1)


def group_reduce(x: Tensor, level: str, op: str = "sum") -> Tensor:
    """Sum or max of ``x`` over each group, keeping dims for broadcasting."""
    dims = (-1,) if level == "token" else (-2, -1)
    if op == "sum":
        return x.sum(dim=dims, keepdim=True)
    return x.amax(dim=dims, keepdim=True)


def group_size(mask: Tensor, hidden: int, level: str) -> Tensor:
    """Number of real components in each group (at least 1, so it can divide)."""
    if level == "token":
        return (mask * hidden).clamp(min=1.0)
    return (mask.sum(dim=(-2, -1), keepdim=True) * hidden).clamp(min=1.0)


def component_rms(embeds: Tensor, mask: Tensor, level: str) -> Tensor:
    """Root-mean-square component of the real embeddings of each group."""
    squares = group_reduce((embeds.float() * mask) ** 2, level)
    return (squares / group_size(mask, embeds.shape[-1], level)).sqrt()


def ball_unit(embeds: Tensor, mask: Tensor, p_norm: str, level: str, scale: str) -> Tensor:
    """What a radius of 1 means, per group.

    ``absolute``: 1 embedding unit. ``relative``: the size of the clean
    embeddings in the ball's own norm, so that a delta on the edge of a ball of
    radius eps has ||delta||_2 ~= eps * ||embeds||_2 in both norms: for L2 it is
    the group's L2 norm; for L-inf the RMS component (a corner of the L-inf ball
    of that radius has the same L2 norm as the embeddings).
    """
    if scale == "absolute":
        shape = embeds.shape[:-1] + (1,) if level == "token" else (embeds.shape[0], 1, 1)
        return torch.ones(shape, device=embeds.device, dtype=torch.float32)
    rms = component_rms(embeds, mask, level)
    if p_norm == "inf":
        return rms
    return rms * group_size(mask, embeds.shape[-1], level).sqrt()


def noise_unit(embeds: Tensor, mask: Tensor, level: str, scale: str) -> Tensor:
    """Per-component size that noise magnitudes are multiplied by (1, or the RMS component)."""
    if scale == "absolute":
        return torch.ones((), device=embeds.device, dtype=torch.float32)
    return component_rms(embeds, mask, level)


def normal_noise(like: Tensor, mask: Tensor, std: Tensor | float, generator) -> Tensor:
    """N(0, std^2) per component, zero on padding. ``std`` broadcasts per group."""
    noise = torch.randn(like.shape, generator=generator, device=like.device, dtype=torch.float32)
    return noise * std * mask


def uniform_noise(like: Tensor, mask: Tensor, mag: Tensor | float, generator) -> Tensor:
    """U(-mag, mag) per component, zero on padding. ``mag`` broadcasts per group."""
    noise = torch.rand(like.shape, generator=generator, device=like.device, dtype=torch.float32)
    return (2.0 * noise - 1.0) * mag * mask


def group_norm(x: Tensor, mask: Tensor, p_norm: str, level: str) -> Tensor:
    """L-inf or L2 norm of each group of ``x`` (padding excluded)."""
    x = x.float() * mask
    if p_norm == "inf":
        return group_reduce(x.abs(), level, "max")
    return group_reduce(x**2, level).sqrt()


def normalize_grad(grad: Tensor, mask: Tensor, p_norm: str, level: str) -> Tensor:
    """``grad / ||grad||_p`` per group: the steepest-ascent direction of unit size.

    L-inf divides by the largest component (as mt-dnn and the SMART paper do,
    not the sign): the largest component becomes +-1, the rest keep their
    proportions. Groups with a zero gradient stay zero.
    """
    grad = grad.float() * mask
    return grad / group_norm(grad, mask, p_norm, level).clamp(min=_TINY)


def normalize_sum(x: Tensor, mask: Tensor, p_norm: str, level: str, stabiliser: float) -> Tensor:
    """``x / (||x||_p + stabiliser)`` per group: mt-dnn's update, no projection.

    mt-dnn adds ``eta * grad`` to the current perturbation and rescales the sum
    to unit norm per token; its ``epsilon`` only keeps the division finite.
    """
    x = x.float() * mask
    return x / (group_norm(x, mask, p_norm, level) + stabiliser)


def sign_agreement(delta: Tensor, direction: Tensor, mask: Tensor) -> float:
    """Fraction of real components where ``delta`` has the sign of ``direction``.

    Components where ``direction`` is exactly 0 are not counted. 0.5 is chance: a
    perturbation that attacks agrees with its (signed) gradient on most.
    """
    real = (mask.expand_as(direction) > 0) & (direction != 0)
    agree = (torch.sign(delta.float()) == torch.sign(direction.float())) & real
    return float(agree.sum()) / max(int(real.sum()), 1)


def project(delta: Tensor, radius: Tensor | float, mask: Tensor, p_norm: str, level: str) -> Tensor:
    """Projection of ``delta`` onto the ball of ``radius`` (per group); padding set to 0."""
    delta = delta * mask
    if p_norm == "inf":
        radius = torch.as_tensor(radius, dtype=delta.dtype, device=delta.device)
        return torch.maximum(torch.minimum(delta, radius), -radius)
    norm = group_norm(delta, mask, "l2", level)
    factor = (radius / norm.clamp(min=_TINY)).clamp(max=1.0)
    return delta * factor


def norm_ratio(delta: Tensor, embeds: Tensor, mask: Tensor) -> Tensor:
    """||delta||_F / ||embeds||_F over the real tokens of the batch (0-d, for logging)."""
    num = ((delta.float() * mask) ** 2).sum()
    den = ((embeds.float() * mask) ** 2).sum().clamp(min=_TINY)
    return (num / den).sqrt()


def kl(input_logits: Tensor, target_logits: Tensor) -> Tensor:
    """KL(softmax(target) || softmax(input)), batch mean, in fp32."""
    log_p = F.log_softmax(target_logits.float(), dim=-1)
    log_q = F.log_softmax(input_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """KL(a || b) + KL(b || a) of the softmax distributions, batch mean, in fp32.

    Gradients flow into both arguments (the SMART paper's l_s); detach one
    side at the call site to treat it as a fixed target.
    """
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    return ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(-1).mean()


def mse(input_logits: Tensor, target_logits: Tensor) -> Tensor:
    """Mean squared difference of the outputs, in fp32 (regression: of the predictions)."""
    return F.mse_loss(input_logits.float(), target_logits.float())


DIVERGENCES = {"symmetric_kl": symmetric_kl, "kl": kl, "mse": mse}


def divergence(
    input_logits: Tensor, target_logits: Tensor, adv_loss: str, grad: str = "both"
) -> Tensor:
    """The divergence a task definition's ``adv_loss`` names (symmetric_kl, kl or mse).

    ``grad="both"``: gradients flow through both arguments of every KL.
    ``grad="mtdnn"``: as mt-dnn's criteria, each KL's target distribution is
    detached: ``KL(b || a)`` with ``b`` fixed plus ``KL(a || b)`` with ``a``
    fixed for symmetric_kl (same value, about half the gradient), ``b`` fixed
    for kl. Squared error is the same in both forms.
    """
    try:
        fn = DIVERGENCES[adv_loss]
    except KeyError:
        raise ValueError(f"adv_loss {adv_loss!r} is not one of {list(DIVERGENCES)}") from None
    if grad == "mtdnn" and adv_loss == "symmetric_kl":
        return kl(input_logits, target_logits.detach()) + kl(target_logits, input_logits.detach())
    if grad == "mtdnn" and adv_loss == "kl":
        return kl(input_logits, target_logits.detach())
    return fn(input_logits, target_logits)
