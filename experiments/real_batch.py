"""A fixed batch of real training rows (RTE by default) and a pretrained encoder with a fresh head.

Shared by the measurement scripts in this folder (perturbation_scale.py,
bench_regularizers.py), so both measure on the same thing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_utils.dataset import TaskDataset, collate  # noqa: E402
from data_utils.task_def import TaskDef, load_task_defs  # noqa: E402
from mt_dnn.adversarial import REGULARIZERS, AdvConfig, build_regularizer  # noqa: E402
from mt_dnn.adversarial.base import Regularizer  # noqa: E402
from mt_dnn.model import MultiTaskModel, checkpoint_pooling, load_encoder  # noqa: E402
from mt_dnn.runtime import resolve_init_checkpoint  # noqa: E402


def real_model_and_batch(
    data_dir: str,
    init_checkpoint: str,
    n_rows: int,
    dropout: float | None = None,
    task_name: str = "rte",
) -> tuple[str, TaskDef, MultiTaskModel, dict]:
    """(encoder path, task, model with a fresh head, batch of the first ``n_rows`` training rows)."""
    task = load_task_defs("glue")[task_name]
    rows = TaskDataset.load(Path(data_dir) / f"{task_name}_train.json", task, "train").rows
    init = resolve_init_checkpoint(init_checkpoint)
    model = MultiTaskModel(load_encoder(init), {task_name: task}, checkpoint_pooling(init), dropout)
    return init, task, model, collate(rows[:n_rows], model.pad_token_id, task)


def method_config(name: str, **overrides) -> AdvConfig:
    """Each method's defaults, except FreeLB with K=2 (K=1 never ascends)."""
    extra = {"adv_k": 2} if name == "freelb" else {}
    return AdvConfig(adv=name, **extra, **overrides)


def all_regularizers(task: TaskDef, **overrides) -> dict[str, Regularizer]:
    return {
        name: build_regularizer(method_config(name, **overrides), {task.name: task})
        for name in REGULARIZERS
    }
