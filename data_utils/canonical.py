"""The canonical TSV: one file per task and split, the hand-off between readers and tokenizer.

``{out_dir}/{task}_{split}.tsv`` with header ``uid<TAB>label<TAB>premise<TAB>hypothesis``.
The label is the label *string* of the task vocabulary (regression: the score as
written in the source); it is empty for unlabeled test rows. Single-sentence
tasks leave ``hypothesis`` empty. Every value check lives here, so the same rules
apply when raw files are converted and when canonical files are tokenized.

Texts are kept exactly as in the source (only tabs/newlines inside JSON or
plain-text sources become spaces). Some real texts contain characters such as
U+001D that ``str.splitlines()`` treats as line breaks: split on ``"\n"`` only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data_utils.atomic import atomic_write
from data_utils.errors import DataError
from data_utils.readers import iter_lines
from data_utils.task_def import TaskDef, TaskType

HEADER = ("uid", "label", "premise", "hypothesis")


@dataclass(frozen=True)
class Example:
    uid: str
    label: str  # "" when unlabeled
    premise: str
    hypothesis: str


def canonical_path(out_dir: str | Path, task: str, split: str) -> Path:
    return Path(out_dir) / f"{task}_{split}.tsv"


def check_label(task: TaskDef, label: str, path: str | Path, line: int) -> str:
    """Return ``label`` if valid for ``task`` (empty = unlabeled is the caller's call)."""
    if task.task_type is TaskType.REGRESSION:
        try:
            score = float(label)
        except ValueError:
            raise DataError(path, line, f"score {label!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(path, line, f"score {label!r} is not a finite number")
        if task.label_range and not task.label_range[0] <= score <= task.label_range[1]:
            low, high = task.label_range
            raise DataError(path, line, f"score {label!r} is outside [{low}, {high}]")
        return label
    if label not in (task.labels or ()):
        raise DataError(path, line, f"label {label!r} is not one of {list(task.labels or ())}")
    return label


class UidChecker:
    """uids must be unique within a split: predictions are matched back by uid."""

    def __init__(self, path: str | Path):
        self.path = path
        self.seen: dict[str, int] = {}

    def __call__(self, uid: str, line: int) -> None:
        if not uid:
            raise DataError(self.path, line, "empty uid")
        first = self.seen.setdefault(uid, line)
        if first != line:
            raise DataError(self.path, line, f"duplicate uid {uid!r} (first seen on line {first})")


def write_canonical(path: Path, examples: Iterable[Example]) -> int:
    """Write atomically; returns the number of rows."""
    count = 0
    with atomic_write(path) as handle:
        handle.write("\t".join(HEADER) + "\n")
        for ex in examples:
            handle.write(f"{ex.uid}\t{ex.label}\t{ex.premise}\t{ex.hypothesis}\n")
            count += 1
    return count


def read_canonical(path: str | Path, task: TaskDef, split: str) -> list[Example]:
    """Read and validate a canonical TSV of ``task``/``split``.

    An empty label is allowed only in test splits (unlabeled GLUE test sets).
    """
    path = Path(path)
    lines = iter_lines(path)
    _, header = next(lines)
    if tuple(header.split("\t")) != HEADER:
        raise DataError(path, 1, f"header is {header.split(chr(9))}, expected {list(HEADER)}")
    unlabeled_ok = split in task.test_splits
    check_uid = UidChecker(path)
    examples = []
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != len(HEADER):
            raise DataError(
                path, number, f"expected {len(HEADER)} tab-separated fields, found {len(fields)}"
            )
        uid, label, premise, hypothesis = fields
        check_uid(uid, number)
        if label:
            check_label(task, label, path, number)
        elif not unlabeled_ok:
            raise DataError(
                path,
                number,
                f"empty label; only test splits may be unlabeled ({split!r} is not one)",
            )
        examples.append(Example(uid, label, premise, hypothesis))
    if not examples:
        raise DataError(path, 1, "no data rows")
    return examples
