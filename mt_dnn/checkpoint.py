"""Checkpoints are data, not code: weights as safetensors, everything else as JSON.

A checkpoint folder holds

- ``model.safetensors``: encoder and head weights;
- ``checkpoint.json``: the encoder's HuggingFace config, the pooling, and the
  YAML form of every task that has a head, so a checkpoint loads without the
  original model folder or task files;
- ``config.json``: the resolved training configuration that produced it;
- tokenizer files when the tokenizer could be saved (for later export).

No pickle is read anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model

from data_utils.task_def import TaskDef, parse_task_def
from mt_dnn.config import write_json
from mt_dnn.model import MultiTaskModel, encoder_from_config

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    pass


def save_checkpoint(
    model: MultiTaskModel,
    out_dir: str | Path,
    task_defs: Mapping[str, TaskDef],
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{WEIGHTS}.tmp"
    save_model(model, str(tmp))
    os.replace(tmp, out_dir / WEIGHTS)
    meta = {
        "format_version": FORMAT_VERSION,
        "encoder_config": model.encoder.config.to_dict(),
        "pooling": model.pooling,
        "tasks": {name: task_defs[name].to_dict() for name in model.heads},
        **(extra or {}),
    }
    write_json(out_dir / META, meta)
    if config is not None:
        write_json(out_dir / "config.json", dict(config))
    return out_dir


def read_meta(ckpt_dir: str | Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; is {ckpt_dir} a checkpoint folder?") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    for key in ("encoder_config", "pooling", "tasks"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key '{key}'")
    return meta


def load_checkpoint(ckpt_dir: str | Path) -> tuple[MultiTaskModel, dict[str, TaskDef], dict]:
    """Rebuild the model from a checkpoint folder; returns (model, head task defs, meta)."""
    ckpt_dir = Path(ckpt_dir)
    meta = read_meta(ckpt_dir)
    source = str(ckpt_dir / META)
    tasks = {name: parse_task_def(name, raw, source) for name, raw in meta["tasks"].items()}
    encoder = encoder_from_config(meta["encoder_config"])
    model = MultiTaskModel(encoder, tasks, pooling=meta["pooling"])
    weights = ckpt_dir / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found")
    missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: does not match the model in {META}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), tasks, meta
