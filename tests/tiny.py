"""Tiny deterministic models and batches for fast unit tests."""

from __future__ import annotations

import torch

from data_utils.task_def import TaskDef, TaskType
from mt_dnn.model import MultiTaskModel

VOCAB = 50

CLS_TASK = TaskDef(
    name="tiny_cls",
    task_type=TaskType.CLASSIFICATION,
    labels=("a", "b", "c"),
    metrics=("accuracy",),
)
REG_TASK = TaskDef(
    name="tiny_reg",
    task_type=TaskType.REGRESSION,
    metrics=("pearson", "spearman"),
    loss="mse",
    adv_loss="mse",
    label_range=(0.0, 5.0),
)
TASKS = {CLS_TASK.name: CLS_TASK, REG_TASK.name: REG_TASK}


def tiny_encoder(kind: str = "bert", seed: int = 0) -> torch.nn.Module:
    """A 2-layer, 32-wide encoder with random weights: `bert` (token types) or `mpnet` (none)."""
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    if kind == "bert":
        return BertModel(BertConfig(**common, type_vocab_size=2)).eval()
    if kind == "mpnet":
        return MPNetModel(MPNetConfig(**common)).eval()
    raise ValueError(kind)


def tiny_model(kind: str = "bert", seed: int = 0, pooling: str = "cls", dropout: float = 0.0):
    encoder = tiny_encoder(kind, seed)
    torch.manual_seed(seed + 1)
    return MultiTaskModel(encoder, TASKS, pooling=pooling, dropout=dropout)


def tiny_batch(task: TaskDef, batch_size: int = 4, seq_len: int = 7, seed: int = 0) -> dict:
    """A right-padded batch: row i has seq_len - i % 3 real tokens."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (batch_size, seq_len), generator=gen)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    for i in range(batch_size):
        n_pad = i % 3
        if n_pad:
            input_ids[i, -n_pad:] = 0
            attention_mask[i, -n_pad:] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, seq_len // 2 :] = 1
    token_type_ids *= attention_mask
    if task.task_type is TaskType.REGRESSION:
        labels = torch.rand(batch_size, generator=gen) * 5.0
    else:
        labels = torch.randint(0, task.n_class, (batch_size,), generator=gen)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }
