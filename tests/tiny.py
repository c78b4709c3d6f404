"""Tiny deterministic models and batches for fast unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def write_tiny_run_inputs(root: Path, dropout: float = 0.0) -> tuple[Path, Path, Path]:
    """A tiny BERT saved as a pretrained folder, a task YAML and tokenized data under ``root``.

    Tasks ``tcls`` (3 classes) and ``treg`` (regression 0..5), 40 train and 12 dev
    rows each, with a learnable signal (the label follows the first token).
    Returns (model folder, task YAML, data folder).
    """
    model_dir = root / "tiny-bert"
    encoder = tiny_encoder("bert")
    encoder.config.hidden_dropout_prob = encoder.config.attention_probs_dropout_prob = dropout
    encoder.save_pretrained(model_dir)
    yml = root / "tasks.yml"
    yml.write_text(
        "tcls: {task_type: classification, labels: [a, b, c], metrics: [accuracy, mcc]}\n"
        "treg: {task_type: regression, metrics: [pearson, spearman], loss: mse,"
        " adv_loss: mse, label_range: [0, 5]}\n"
    )
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for task in ("tcls", "treg"):
        for split, n in (("train", 40), ("dev", 12)):
            with (data / f"{task}_{split}.json").open("w") as fh:
                for i in range(n):
                    ids = rng.integers(5, VOCAB, size=int(rng.integers(3, 12))).tolist()
                    label = ids[0] % 3 if task == "tcls" else float(ids[0] % 6) * 5 / 6
                    row = {"uid": str(i), "label": label, "input_ids": ids,
                           "token_type_ids": [0] * len(ids)}  # fmt: skip
                    fh.write(json.dumps(row) + "\n")
    return model_dir, yml, data


def tiny_grid(path: Path, common: list[str], methods=None, seeds=(1,), **study) -> Path:
    """Write a study grid (experiments/tat_study/run_study.py) of one study ``t`` on the
    tiny ``tcls`` task to ``path``: ``common`` flags, then batch 8 on the CPU without
    TensorBoard; one wave of ``methods`` (default: standard training) x ``seeds``."""
    import yaml

    methods = methods or {"none": ["--adv", "none"]}
    grid = {
        "common": [*common, "--batch_size", "8", "--tensorboard", "false", "--device", "cpu"],
        "studies": {
            "t": {
                "train": ["--train_datasets", "tcls", "--test_datasets", "tcls_dev"],
                "predict": ["tcls_dev"],
                **study,
            }
        },  # fmt: skip
        "methods": methods,
        "waves": [{"studies": ["t"], "methods": list(methods), "seeds": list(seeds)}],
    }
    path.write_text(yaml.safe_dump(grid))
    return path
