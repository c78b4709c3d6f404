"""Tokenized task data: one JSON lines file per (task, split), and batch collation.

``prepro_std.py`` writes ``{data_dir}/{task}_{split}.json``, one object per line::

    {"uid": "17", "label": 1, "input_ids": [101, ...], "token_type_ids": [0, ...]}

``token_type_ids`` is absent for tokenizers without segment ids (RoBERTa, MPNet...);
``label`` is null for unlabeled test data, a class id (position in the task's
``labels``) for classification and a number for regression.

:meth:`TaskDataset.load` validates every line and raises :class:`DataError`
naming the file and the 1-based line, so a bad file fails at load time with a
message a user can act on instead of deep inside a training step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from data_utils.errors import DataError
from data_utils.task_def import TaskDef, TaskType

__all__ = ["TaskDataset", "collate", "data_path"]


def data_path(data_dir: str | Path, task: str, split: str) -> Path:
    """Where ``prepro_std.py`` writes the tokenized ``split`` of ``task``."""
    return Path(data_dir) / f"{task}_{split}.json"


def _is_int(value: Any) -> bool:
    # bool is an int subclass; `true` as a token id or class id is a bug in the writer.
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list_error(value: Any, key: str) -> str | None:
    if not isinstance(value, list):
        return f"'{key}' must be a list of ints, got {type(value).__name__}"
    if not value:
        return f"'{key}' is empty"
    for pos, item in enumerate(value):
        if not _is_int(item):
            return f"'{key}'[{pos}] must be an int, got {item!r}"
    return None


def _parse_label(label: Any, task: TaskDef) -> tuple[int | float | None, str | None]:
    """Return (normalised label, error message or None)."""
    if label is None:
        return None, None
    if task.task_type is TaskType.REGRESSION:
        if not (_is_int(label) or isinstance(label, float)) or not math.isfinite(label):
            return (
                None,
                f"label must be a finite number for regression task '{task.name}', got {label!r}",
            )
        # Stored as float so collate() can always tell regression labels by their type.
        return float(label), None
    if not _is_int(label):
        return None, (
            f"label must be an integer class id for classification task '{task.name}', "
            f"got {label!r}"
        )
    if not 0 <= label < task.n_class:
        return None, (
            f"class id {label} is outside range({task.n_class}) for task '{task.name}' "
            f"(labels: {list(task.labels or ())})"
        )
    return label, None


class TaskDataset:
    """The rows of one tokenized (task, split) file, validated.

    Attributes: ``task`` (TaskDef), ``split``, ``path``, ``rows`` (list of dicts
    with ``uid``, ``label``, ``input_ids`` and, if the tokenizer has them,
    ``token_type_ids``), ``lengths`` (token count per row), ``uids``,
    ``has_labels`` (every label is non-null).
    """

    def __init__(self, task: TaskDef, split: str, rows: list[dict], path: str | Path = "<memory>"):
        self.task = task
        self.split = split
        self.rows = rows
        self.path = Path(path)
        self.lengths = [len(row["input_ids"]) for row in rows]
        self.uids = [row["uid"] for row in rows]
        self.has_labels = all(row["label"] is not None for row in rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]

    def __repr__(self) -> str:
        return f"TaskDataset(task={self.task.name!r}, split={self.split!r}, n={len(self)})"

    @classmethod
    def load(
        cls,
        path: str | Path,
        task_def: TaskDef,
        split: str,
        max_seq_len: int | None = None,
    ) -> TaskDataset:
        """Read and validate a JSON lines file.

        Raises :class:`DataError` (``path:line: what``) for a missing or
        non-UTF-8 file, invalid JSON, a line that is not an object, a missing
        key, a wrong type, ``token_type_ids`` whose length differs from
        ``input_ids`` or that appear on some rows only, a class id outside
        ``range(task_def.n_class)``, a duplicate uid, and an empty file.
        Blank lines are skipped.

        ``max_seq_len``: a row longer than this is an error, not silently
        truncated: cutting here would drop the final separator token and
        whatever ``prepro_std.py`` chose to keep, so the fix is to re-run
        ``prepro_std.py --max_seq_len N``.
        """
        path = Path(path)
        rows: list[dict] = []
        seen: dict[str, int] = {}
        with_types: bool | None = None  # decided by the first row
        try:
            handle = path.open("rb")  # decode per line so a bad byte gets its exact line number
        except FileNotFoundError:
            raise DataError(path, None, "file not found (run prepro_std.py first?)") from None
        with handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(path, line_no, f"not valid UTF-8: {exc.reason}") from None
                if not line.strip():
                    continue
                row = cls._parse_row(line, path, line_no, task_def, max_seq_len)
                if with_types is None:
                    with_types = "token_type_ids" in row
                elif with_types != ("token_type_ids" in row):
                    raise DataError(
                        path, line_no, "'token_type_ids' present on some rows and absent on others"
                    )
                if row["uid"] in seen:
                    raise DataError(
                        path,
                        line_no,
                        f"duplicate uid {row['uid']!r} (first on line {seen[row['uid']]})",
                    )
                seen[row["uid"]] = line_no
                rows.append(row)
        if not rows:
            raise DataError(path, None, "file is empty: no examples")
        return cls(task_def, split, rows, path)

    @staticmethod
    def _parse_row(
        line: str, path: Path, line_no: int, task: TaskDef, max_seq_len: int | None
    ) -> dict:
        def fail(message: str) -> DataError:
            return DataError(path, line_no, message)

        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise fail(f"expected a JSON object, got {type(obj).__name__}")
        missing = [key for key in ("uid", "label", "input_ids") if key not in obj]
        if missing:
            raise fail(f"missing key(s) {missing}; found {sorted(obj)}")
        uid = obj["uid"]
        if not isinstance(uid, str):
            raise fail(f"'uid' must be a string, got {uid!r}")
        label, error = _parse_label(obj["label"], task)
        if error:
            raise fail(error)
        input_ids = obj["input_ids"]
        error = _int_list_error(input_ids, "input_ids")
        if error:
            raise fail(error)
        if max_seq_len is not None and len(input_ids) > max_seq_len:
            raise fail(
                f"{len(input_ids)} tokens exceed max_seq_len={max_seq_len}; "
                f"re-run prepro_std.py with --max_seq_len {max_seq_len}"
            )
        row = {"uid": uid, "label": label, "input_ids": input_ids}
        if "token_type_ids" in obj:
            token_type_ids = obj["token_type_ids"]
            error = _int_list_error(token_type_ids, "token_type_ids")
            if error:
                raise fail(error)
            if len(token_type_ids) != len(input_ids):
                raise fail(
                    f"'token_type_ids' has {len(token_type_ids)} entries, "
                    f"'input_ids' has {len(input_ids)}"
                )
            row["token_type_ids"] = token_type_ids
        return row


def collate(
    rows: Sequence[dict], pad_token_id: int = 0, task_def: TaskDef | None = None
) -> dict[str, Any]:
    """Pad a list of rows to the longest one in the batch (right padding).

    Returns ``input_ids``, ``attention_mask`` (1 = real token) and, when the
    rows have them, ``token_type_ids`` (padded with 0), all LongTensor [B, T];
    ``uids`` (list of str); and ``labels`` unless some label is null.

    Label dtype: with ``task_def`` given, its task type decides (regression ->
    FloatTensor, classification -> LongTensor). Without it, any float label
    makes a FloatTensor, otherwise LongTensor; rows from :meth:`TaskDataset.load`
    always carry float labels for regression tasks, so inference is safe there.
    """
    if not rows:
        raise ValueError("collate() needs at least one row")
    batch_size = len(rows)
    max_len = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((batch_size, max_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, max_len), dtype=torch.long)
    with_types = "token_type_ids" in rows[0]
    token_type_ids = torch.zeros((batch_size, max_len), dtype=torch.long) if with_types else None
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[i, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = 1
        if token_type_ids is not None:
            token_type_ids[i, :n] = torch.tensor(row["token_type_ids"], dtype=torch.long)
    batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        batch["token_type_ids"] = token_type_ids
    labels = [row["label"] for row in rows]
    if all(label is not None for label in labels):
        if task_def is not None:
            regression = task_def.task_type is TaskType.REGRESSION
        else:
            regression = any(isinstance(label, float) for label in labels)
        dtype = torch.float if regression else torch.long
        batch["labels"] = torch.tensor(labels, dtype=dtype)
    batch["uids"] = [row["uid"] for row in rows]
    return batch
