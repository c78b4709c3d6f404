"""Task definitions: the one place where facts about a task live.

A task-definition YAML maps task names to their facts::

    rte:
      task_type: classification
      labels: [entailment, not_entailment]   # class id = position in this list
      metrics: [accuracy]
      loss: cross_entropy
      adv_loss: symmetric_kl                  # divergence used by adversarial regularizers
      dropout: 0.1
      splits: {train: train, dev: [dev], test: [test]}
      submission: {test: RTE.tsv}             # GLUE leaderboard file per test split

Code never branches on a task *name*; it reads these fields, and branches on
``task_type`` through tables keyed by :class:`TaskType`.

The GLUE and NLI definitions ship inside this package (``data_utils/tasks/glue.yml``,
``nli.yml``) and are named by ``glue`` and ``nli`` wherever a task-definition file is
taken, so the defaults work from any folder and in an installed package.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

# Built-in task definitions: name -> file in data_utils/tasks/ (package data).
BUILTIN_TASK_DEFS = {"glue": "glue.yml", "nli": "nli.yml"}
DEFAULT_TASK_DEFS = ("glue", "nli")
# Where they lived before they were package data; configs and checkpoints written then
# still name these paths, which resolve to the built-ins when no such file exists.
_FORMER_PATHS: dict[tuple[str, ...], str] = {
    ("experiments", "glue", "glue_task_def.yml"): "glue",
    ("experiments", "nli", "nli_task_def.yml"): "nli",
}


class TaskType(enum.Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman")
LOSSES = ("cross_entropy", "mse")
ADV_LOSSES = ("symmetric_kl", "kl", "mse")


class TaskDefError(ValueError):
    """A task-definition file is malformed; the message names file and task."""


@dataclass(frozen=True)
class TaskDef:
    name: str
    task_type: TaskType
    labels: tuple[str, ...] | None = None  # None for regression
    metrics: tuple[str, ...] = ("accuracy",)
    loss: str = "cross_entropy"
    adv_loss: str = "symmetric_kl"
    dropout: float = 0.1
    train_split: str | None = "train"
    dev_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    # test split -> GLUE submission file name (e.g. {"test": "RTE.tsv"})
    submission: Mapping[str, str] = field(default_factory=dict)
    # Regression only: the label range [low, high]; predictions are clipped to it
    # and TAT cuts it into bins.
    label_range: tuple[float, float] | None = None
    # Another task whose head predicts this task (AX is predicted by the MNLI head).
    predict_with: str | None = None
    # Zero-shot evaluation: head task -> {head label: this task's label}.
    zero_shot: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def n_class(self) -> int:
        """Output size of the head: number of labels, or 1 for regression."""
        return 1 if self.task_type is TaskType.REGRESSION else len(self.labels or ())

    @property
    def splits(self) -> tuple[str, ...]:
        head = (self.train_split,) if self.train_split else ()
        return head + self.dev_splits + self.test_splits

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of this task: ``parse_task_def(name, d.to_dict())`` gives it back."""
        out: dict[str, Any] = {
            "task_type": self.task_type.value,
            "metrics": list(self.metrics),
            "loss": self.loss,
            "adv_loss": self.adv_loss,
            "dropout": self.dropout,
            "splits": {"dev": list(self.dev_splits), "test": list(self.test_splits)},
        }
        if self.train_split:
            out["splits"]["train"] = self.train_split
        if self.labels is not None:
            out["labels"] = list(self.labels)
        if self.submission:
            out["submission"] = dict(self.submission)
        if self.label_range is not None:
            out["label_range"] = list(self.label_range)
        if self.predict_with:
            out["predict_with"] = self.predict_with
        if self.zero_shot:
            out["zero_shot"] = {head: dict(m) for head, m in self.zero_shot.items()}
        return out

    def label_to_id(self, label: str) -> int:
        assert self.labels is not None
        return self.labels.index(label)


_KEYS = {
    "task_type",
    "labels",
    "metrics",
    "loss",
    "adv_loss",
    "dropout",
    "splits",
    "submission",
    "label_range",
    "predict_with",
    "zero_shot",
}


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def parse_task_def(name: str, raw: Mapping[str, Any], source: str = "<dict>") -> TaskDef:
    where = f"{source}: task '{name}'"
    if not isinstance(raw, Mapping):
        raise TaskDefError(f"{where}: expected a mapping of task facts, got {type(raw).__name__}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise TaskDefError(
            f"{where}: unknown key(s) {sorted(unknown)}; valid keys are {sorted(_KEYS)}"
        )
    try:
        task_type = TaskType(raw.get("task_type", "classification"))
    except ValueError:
        valid = [t.value for t in TaskType]
        raise TaskDefError(
            f"{where}: task_type {raw.get('task_type')!r} is not one of {valid}"
        ) from None
    labels = raw.get("labels")
    if task_type is TaskType.CLASSIFICATION:
        if not labels or len(labels) < 2:
            raise TaskDefError(f"{where}: a classification task needs at least two labels")
        labels = tuple(str(label) for label in labels)
        if len(set(labels)) != len(labels):
            raise TaskDefError(f"{where}: duplicate labels in {list(labels)}")
    elif labels:
        raise TaskDefError(f"{where}: a regression task has no label vocabulary")
    else:
        labels = None
    metrics = _as_tuple(raw.get("metrics", "accuracy"))
    for metric in metrics:
        if metric not in METRICS:
            raise TaskDefError(f"{where}: metric {metric!r} is not one of {list(METRICS)}")
    default_loss = "mse" if task_type is TaskType.REGRESSION else "cross_entropy"
    loss = raw.get("loss", default_loss)
    if loss not in LOSSES:
        raise TaskDefError(f"{where}: loss {loss!r} is not one of {list(LOSSES)}")
    default_adv = "mse" if task_type is TaskType.REGRESSION else "symmetric_kl"
    adv_loss = raw.get("adv_loss", default_adv)
    if adv_loss not in ADV_LOSSES:
        raise TaskDefError(f"{where}: adv_loss {adv_loss!r} is not one of {list(ADV_LOSSES)}")
    splits = raw.get("splits", {}) or {}
    unknown_splits = set(splits) - {"train", "dev", "test"}
    if unknown_splits:
        raise TaskDefError(f"{where}: splits has unknown key(s) {sorted(unknown_splits)}")
    train_split = splits.get("train", "train" if "splits" not in raw else None)
    dev_splits = _as_tuple(splits.get("dev", "dev" if "splits" not in raw else None))
    test_splits = _as_tuple(splits.get("test", "test" if "splits" not in raw else None))
    submission = dict(raw.get("submission") or {})
    for split in submission:
        if split not in test_splits:
            raise TaskDefError(f"{where}: submission names split {split!r}, not a test split")
    label_range = raw.get("label_range")
    if label_range is not None:
        if task_type is not TaskType.REGRESSION or len(label_range) != 2:
            raise TaskDefError(f"{where}: label_range is [low, high] for regression tasks only")
        label_range = (float(label_range[0]), float(label_range[1]))
        if not label_range[0] < label_range[1]:
            raise TaskDefError(f"{where}: label_range low must be below high")
    zero_shot = {
        str(head): {str(k): str(v) for k, v in mapping.items()}
        for head, mapping in (raw.get("zero_shot") or {}).items()
    }
    for head, mapping in zero_shot.items():
        for target in mapping.values():
            if labels is not None and target not in labels:
                raise TaskDefError(
                    f"{where}: zero_shot[{head}] maps to {target!r}, not a label of this task"
                )
    return TaskDef(
        name=name,
        task_type=task_type,
        labels=labels,
        metrics=metrics,
        loss=loss,
        adv_loss=adv_loss,
        dropout=float(raw.get("dropout", 0.1)),
        train_split=train_split,
        dev_splits=dev_splits,
        test_splits=test_splits,
        submission=submission,
        label_range=label_range,
        predict_with=raw.get("predict_with"),
        zero_shot=zero_shot,
    )


def task_def_file(spec: str | Path) -> Path | Traversable:
    """The file a ``--task_def`` value names: a built-in name (``glue``, ``nli``) is the
    package's own file, found with importlib.resources wherever the package is installed;
    anything else is a path (a former in-repository path of a built-in that no longer
    exists there is the built-in)."""
    if isinstance(spec, str) and spec in BUILTIN_TASK_DEFS:
        return resources.files("data_utils").joinpath("tasks", BUILTIN_TASK_DEFS[spec])
    path = Path(spec)
    former = _FORMER_PATHS.get(path.parts[-3:])
    if former is not None and not path.exists():
        return task_def_file(former)
    return path


def load_task_defs(*paths: str | Path) -> dict[str, TaskDef]:
    """Read one or more task-definition YAML files into ``{name: TaskDef}``; each is a
    path or a built-in name (:func:`task_def_file`).

    A task defined in two files is an error, so merged files cannot silently
    shadow each other.
    """
    defs: dict[str, TaskDef] = {}
    for spec in paths:
        path = task_def_file(spec)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            builtins = ", ".join(BUILTIN_TASK_DEFS)
            raise TaskDefError(
                f"{path}: task-definition file not found (built-in ones: {builtins})"
            ) from None
        except yaml.YAMLError as exc:
            raise TaskDefError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping) or not raw:
            raise TaskDefError(f"{path}: expected a non-empty mapping of task name -> facts")
        for name, facts in raw.items():
            if name in defs:
                raise TaskDefError(f"{path}: task '{name}' is defined twice")
            defs[str(name)] = parse_task_def(str(name), facts, source=str(path))
    for task in defs.values():
        if task.predict_with and task.predict_with not in defs:
            raise TaskDefError(
                f"task '{task.name}': predict_with '{task.predict_with}' is not a defined task"
            )
    return defs
