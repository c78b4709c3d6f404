"""Dropout whose masks cost a quarter of torch's on CPU.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``,
which runs one Mersenne-Twister draw and a float conversion per element, on one
thread, under the generator's lock. Measured on the packaged MiniLM at batch 16,
that is about a quarter of a training step's time (``aten::bernoulli_``, 20
calls a step: the embedding, attention-probability and two hidden dropouts of
every layer, and the head's).

Here each 64-bit random number from the same generator gives the masks of four
elements: viewed as four 16-bit integers, an element is kept when its integer is
at least ``round(p * 65536)``. The drop probability is therefore ``p`` rounded
to a multiple of 1/65536 (0.1 becomes 0.1000061) and kept values are scaled by
the exact inverse of the keep probability, so the output's expectation is the
input, as with torch's dropout. The mask is saved as booleans for the backward.

Everything still draws from torch's global CPU generator, so ``--seed``,
resume (the generator state is checkpointed) and the adversarial regularizers'
mask replay (``DropoutMasks`` restores the generator) work unchanged. On CUDA,
and for any other device, torch's own dropout runs (its Philox kernel is
already fast).

``install(model)`` switches a model over: every ``nn.Dropout`` module becomes a
``FastDropout`` (same ``p``), and encoders whose attention goes through
transformers' attention interface with SDPA (BERT, RoBERTa, ELECTRA, XLM-R...)
get the ``mtdnn_sdpa`` attention: SDPA whenever no attention dropout is drawn
(evaluation, CUDA), otherwise the explicit softmax(QK^T) V with this dropout on
the probabilities (SDPA on CPU falls back to that same computation with
``bernoulli_`` when dropout is on). Families with their own attention code
(DeBERTa-v2, MPNet) apply attention dropout through an ``nn.Dropout`` module,
which the first switch covers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

ATTENTION = "mtdnn_sdpa"
_LEVELS = 1 << 16


def drop_threshold(p: float) -> int:
    """The number of 16-bit values (of 65536) that drop an element."""
    return round(p * _LEVELS)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> Tensor:
    """A boolean keep-mask of ``shape``; an element is dropped with probability ~ ``p``.

    Drawn from the global CPU generator: ``ceil(n / 4)`` 64-bit numbers, each
    split into four uniform 16-bit integers.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), None)
    uniform = words.view(torch.int16)[:n].view(shape)
    # int16 is signed: -32768 is the smallest of the 65536 equally likely values.
    return uniform >= drop_threshold(p) - (_LEVELS // 2)


class _MaskedScale(torch.autograd.Function):
    """``x * mask * scale`` that saves the boolean mask, not a float copy."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, mask: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.masked_fill(~mask, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return grad.masked_fill(~mask, 0.0).mul_(ctx.scale), None, None


def cheap_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``torch.nn.functional.dropout`` with the cheap CPU mask (see the module doc)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.is_floating_point():
        return torch.nn.functional.dropout(x, p, training)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    dropped = drop_threshold(p)
    if dropped == 0:
        return x
    mask = keep_mask(x.shape, p)
    return _MaskedScale.apply(x, mask, _LEVELS / (_LEVELS - dropped))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask; torch's own on other devices."""

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(input)
        return cheap_dropout(input, self.p, self.training)


def attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """transformers' SDPA attention, with this module's dropout on the probabilities.

    Same signature and output layout ([batch, length, heads, head_dim]) as
    ``transformers.integrations.sdpa_attention.sdpa_attention_forward``, which
    runs whenever no dropout is drawn here (p = 0, evaluation, CUDA) or the call
    needs something this path does not do (causal masks, position biases, GQA).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    is_causal = kwargs.get("is_causal")
    if is_causal is None:  # as transformers decides it: a module without the flag is causal
        is_causal = getattr(module, "is_causal", True)
    plain = (
        dropout == 0.0
        or query.device.type != "cpu"
        or (is_causal and attention_mask is None and query.shape[2] > 1)
        or kwargs.get("position_bias") is not None
        or key.shape[1] != query.shape[1]
    )
    if plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scale)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = cheap_dropout(probs, dropout, True)
    out = torch.matmul(probs, value)
    return out.transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def install(model: nn.Module) -> int:
    """Switch ``model`` (and any encoder inside it) to the cheap CPU dropout.

    Returns the number of dropout modules switched. The parameters and the
    state dict are untouched; ``uninstall`` switches back.
    """
    switched = 0
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = FastDropout
            switched += 1
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
            _register_attention()
            config._attn_implementation = ATTENTION
    return switched


def uninstall(model: nn.Module) -> None:
    """Undo ``install``: torch's dropout and transformers' SDPA attention again."""
    for module in model.modules():
        if type(module) is FastDropout:
            module.__class__ = nn.Dropout  # type: ignore[assignment]
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) == ATTENTION:
            config._attn_implementation = "sdpa"
