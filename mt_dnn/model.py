"""One shared HuggingFace encoder with one head per task.

Every forward pass goes through the word embeddings explicitly:
``embed(batch)`` looks up ``encoder.get_input_embeddings()(input_ids)`` and
``forward_embeds(embeds, batch, task)`` runs the encoder with
``inputs_embeds=``. ``forward(batch, task)`` is exactly the composition of the
two, so a zero perturbation added to the embeddings reproduces the clean
forward bit for bit, which the adversarial regularizers rely on.

``forward`` is the one entry point every training forward uses, perturbed ones
included (``forward(batch, task, delta=..., space=...)``), so that a
``DistributedDataParallel`` wrapper sees each of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from data_utils.task_def import TaskDef, TaskType

if TYPE_CHECKING:
    from transformers import PreTrainedModel

POOLINGS = ("cls", "mean")


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of token states over the positions where ``mask`` is 1."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TaskHead(nn.Module):
    """Pool the token states, dropout, linear. Regression heads emit one value."""

    def __init__(self, hidden_size: int, task: TaskDef, pooling: str, dropout: float | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {list(POOLINGS)}")
        self.pooling = pooling
        self.regression = task.task_type is TaskType.REGRESSION
        self.dropout = nn.Dropout(task.dropout if dropout is None else dropout)
        self.out = nn.Linear(hidden_size, task.n_class)

    def pool(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        return masked_mean(hidden, attention_mask)

    def forward(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        logits = self.out(self.dropout(self.pool(hidden, attention_mask)))
        return logits.squeeze(-1) if self.regression else logits


class MultiTaskModel(nn.Module):
    def __init__(
        self,
        encoder: PreTrainedModel,
        task_defs: Mapping[str, TaskDef],
        pooling: str = "cls",
        dropout: float | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        # The pretrained pooler (dense + tanh on [CLS]) is unused by our heads;
        # dropping it keeps every parameter in the graph (DDP needs that).
        if getattr(encoder, "pooler", None) is not None:
            encoder.register_module("pooler", None)
        hidden = encoder.config.hidden_size
        self.pooling = pooling
        self.heads = nn.ModuleDict(
            {name: TaskHead(hidden, task, pooling, dropout) for name, task in task_defs.items()}
        )
        # Models without segment embeddings (RoBERTa, MPNet, XLM-R...) reject token_type_ids.
        self.uses_token_types = (getattr(encoder.config, "type_vocab_size", 0) or 0) > 1
        # Padded positions are masked out, but padding with the model's own pad id
        # keeps them identical to what the encoder saw in pre-training.
        self.pad_token_id = int(getattr(encoder.config, "pad_token_id", None) or 0)

    def embed(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Word embeddings of the batch: the tensor adversarial methods perturb."""
        return self.encoder.get_input_embeddings()(batch["input_ids"])

    def encode_embeds(self, embeds: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        kwargs = {"inputs_embeds": embeds, "attention_mask": batch["attention_mask"]}
        if self.uses_token_types and "token_type_ids" in batch:
            kwargs["token_type_ids"] = batch["token_type_ids"]
        return self.encoder(**kwargs).last_hidden_state

    def forward_embeds(self, embeds: Tensor, batch: Mapping[str, Tensor], task: str) -> Tensor:
        """Logits ([B, n_class], or [B] for regression) from (perturbed) embeddings."""
        hidden = self.encode_embeds(embeds, batch)
        return self.heads[task](hidden, batch["attention_mask"])

    def forward(
        self,
        batch: Mapping[str, Tensor],
        task: str,
        delta: Tensor | None = None,
        space: str = "word",
        capture: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits of head ``task``, with ``delta`` added in ``space`` when given.

        ``space="word"`` adds ``delta`` to the word embeddings; ``"hidden"`` to the
        embedding block's output (post-LayerNorm), which goes to the encoder
        layers. ``capture=True`` returns ``(logits, x)`` with ``x`` the tensor
        ``delta`` is added to, before adding it (in the graph).
        """
        if space == "word":
            embeds = self.embed(batch)
            inputs = embeds if delta is None else embeds + delta.to(embeds.dtype)
            logits = self.forward_embeds(inputs, batch, task)
            return (logits, embeds) if capture else logits
        if space != "hidden":
            raise ValueError(f"space {space!r} is not one of ['word', 'hidden']")
        captured: list[Tensor] = []

        def perturb(out: Tensor) -> Tensor | None:
            captured.append(out)
            return None if delta is None else out + delta.to(out.dtype)

        with self.embedding_output_hook(perturb):
            logits = self.forward_embeds(self.embed(batch), batch, task)
        return (logits, captured[0]) if capture else logits

    @contextmanager
    def embedding_output_hook(self, fn: Callable[[Tensor], Tensor | None]) -> Iterator[None]:
        """Within the block, ``fn`` sees (and may replace) the embedding block's output.

        The embedding block (word + position + segment embeddings, LayerNorm,
        dropout) is ``encoder.embeddings`` in every HF encoder family we support;
        its output is what the encoder layers receive, mt-dnn's perturbation space.
        """
        block = getattr(self.encoder, "embeddings", None)
        if not isinstance(block, nn.Module):
            raise ValueError(
                f"{type(self.encoder).__name__} has no 'embeddings' module: adv_space=hidden "
                "needs one; use adv_space=word"
            )

        def hook(module, args, output):
            if not isinstance(output, Tensor):
                raise ValueError(
                    f"{type(block).__name__} returns {type(output).__name__}, not a tensor: "
                    "adv_space=hidden cannot perturb it; use adv_space=word"
                )
            return fn(output)

        handle = block.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()


def checkpoint_pooling(name_or_path: str) -> str:
    """The pooling a checkpoint was trained with.

    sentence-transformers checkpoints declare it in ``1_Pooling/config.json``
    (all-MiniLM-L6-v2 uses the masked mean); everything else defaults to the
    first token, as in BERT's own fine-tuning recipe.
    """
    config = Path(name_or_path) / "1_Pooling" / "config.json"
    if config.is_file():
        facts = json.loads(config.read_text(encoding="utf-8"))
        if facts.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def load_encoder(name_or_path: str) -> PreTrainedModel:
    """A pretrained encoder from a local folder or a hub name."""
    from transformers import AutoModel

    # Master weights stay fp32 even when the folder stores fp16/bf16 weights;
    # mixed precision is autocast's job.
    return AutoModel.from_pretrained(name_or_path, dtype=torch.float32)


def encoder_from_config(config: Mapping) -> PreTrainedModel:
    """An encoder with random weights from a saved ``config.to_dict()``: checkpoint loading."""
    from transformers import AutoConfig, AutoModel

    config = dict(config)
    model_type = config.pop("model_type")
    return AutoModel.from_config(AutoConfig.for_model(model_type, **config))


def param_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype
