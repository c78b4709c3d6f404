"""Readers for the original distribution files of GLUE and the NLI sets.

A reader turns raw file(s) into :class:`Row` objects; which columns hold what
is described by a :class:`Layout`, so one reader serves every task that shares
a file format. Readers are looked up in :data:`READERS` by format name:

- ``tsv``: tab-separated with a header row; columns located by header name.
- ``tsv_noheader``: tab-separated without header (CoLA train/dev, SciTail);
  columns located by position and every row must have ``n_fields`` fields.
- ``jsonl``: one JSON object per line (official SNLI ``*.jsonl``).
- ``lines``: parallel plain-text files, line i of each is one example
  (InferSent/e-SNLI ``s1.{split}``, ``s2.{split}``, ``labels.{split}``).

Files are read as UTF-8 (a leading BOM is dropped, as in MRPC) with quoting
OFF: a quote character is text, never a field delimiter. Structural problems
raise :class:`DataError` naming the file and 1-based line. Label *values* are
checked against the task vocabulary by :mod:`data_utils.canonical`, which
knows the task definitions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from data_utils.errors import DataError

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Row:
    uid: str
    label: str  # "" when the file has no label column (GLUE test splits)
    premise: str
    hypothesis: str  # "" for single-sentence tasks
    line: int  # 1-based line in the (first) source file, for error messages
    group: str = ""  # value of Layout.split_column (XNLI language), else ""


Column = str | int | None


@dataclass(frozen=True)
class Layout:
    """Where the canonical fields live in a raw file.

    Columns are header names for ``tsv`` / keys for ``jsonl``, 0-based positions
    for ``tsv_noheader``. ``uid=None`` means "0-based index of the data line".
    """

    premise: Column
    hypothesis: Column = None
    label: Column = None
    uid: Column = None
    n_fields: int | None = None  # tsv_noheader: exact number of fields per row
    label_map: Mapping[str, str] = field(default_factory=dict)  # raw -> label (XNLI 0/1/2)
    # Documented choices for known quirks of real files; skipped rows are counted.
    skip_labels: frozenset[str] = frozenset()  # e.g. MNLI/SNLI '-' (no gold label)
    skip_short_rows: bool = False  # QQP: rows broken by stray newlines have too few fields
    split_column: str | None = None  # XNLI official: one output split per value


@dataclass
class ReadResult:
    rows: list[Row]
    skipped: Counter = field(default_factory=Counter)  # reason -> count


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` without the line ending; strict UTF-8."""
    empty = True
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            empty = False
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1]
                raise DataError(
                    path, number, f"not valid UTF-8 (byte {bad!r} at column {exc.start + 1})"
                ) from None
            if "\0" in text:
                # Valid UTF-8, but a text file never holds one: a binary file, or a
                # corrupted one, whose rows would otherwise be read as garbage text.
                raise DataError(
                    path, number, f"NUL byte at column {text.index(chr(0)) + 1}: not a text file"
                )
            if text.endswith("\n"):
                text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
            yield number, text
    if empty:
        raise DataError(path, 1, "file is empty")


def _clean(text: str) -> str:
    # Canonical TSVs are one example per line; JSON / plain-text sources may carry
    # tabs or newlines inside a sentence, which would break that.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


class _RowBuilder:
    """Shared per-row logic: label mapping, documented skips, uid defaulting."""

    def __init__(self, path: Path, layout: Layout):
        self.path = path
        self.layout = layout
        self.result = ReadResult(rows=[])
        self.index = 0  # 0-based index of the data line, the default uid

    def add(self, line: int, get: Callable[[Column], str]) -> None:
        layout = self.layout
        index = self.index
        self.index += 1
        label = get(layout.label) if layout.label is not None else ""
        if layout.label is not None and label in layout.skip_labels:
            self.result.skipped[f"label {label!r} (no gold label)"] += 1
            return
        if layout.label_map and layout.label is not None:
            if label not in layout.label_map:
                raise DataError(
                    self.path, line, f"label {label!r} is not one of {list(layout.label_map)}"
                )
            label = layout.label_map[label]
        uid = str(index) if layout.uid is None else get(layout.uid)
        self.result.rows.append(
            Row(
                uid=_clean(uid),
                label=label,
                premise=_clean(get(layout.premise)),
                hypothesis=_clean(get(layout.hypothesis)) if layout.hypothesis is not None else "",
                line=line,
                group=get(layout.split_column) if layout.split_column else "",
            )
        )

    def finish(self) -> ReadResult:
        if self.index == 0:
            raise DataError(self.path, 1, "no data rows")
        return self.result


def _by_header(fields: Sequence[str], position: Mapping[str, int], col: Column) -> str:
    assert isinstance(col, str), f"a layout with a header names columns, not {col!r}"
    return fields[position[col]]


def _by_position(values: Sequence[str], col: Column) -> str:
    assert isinstance(col, int), f"a header-less layout names columns by position, not {col!r}"
    return values[col]


def read_tsv(paths: Sequence[Path], layout: Layout) -> ReadResult:
    """Tab-separated file with a header; columns by name, every row as wide as the header."""
    (path,) = paths
    lines = iter_lines(path)
    _, header_text = next(lines)
    header = header_text.split("\t")
    position = {name: i for i, name in enumerate(header)}
    wanted = [layout.uid, layout.label, layout.premise, layout.hypothesis, layout.split_column]
    missing = [name for name in wanted if name is not None and name not in position]
    if missing:
        raise DataError(
            path,
            1,
            f"missing column(s) {missing}; header is {header} (wrong file for this task/split?)",
        )
    builder = _RowBuilder(path, layout)
    width = len(header)
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != width:
            if layout.skip_short_rows and len(fields) < width:
                builder.result.skipped["row with too few fields"] += 1
                builder.index += 1
                continue
            raise DataError(
                path,
                number,
                f"expected {width} tab-separated fields (as in the header), found {len(fields)}",
            )
        builder.add(number, partial(_by_header, fields, position))
    return builder.finish()


def read_tsv_noheader(paths: Sequence[Path], layout: Layout) -> ReadResult:
    """Tab-separated file without header; columns by position, exactly ``n_fields`` per row."""
    (path,) = paths
    assert layout.n_fields is not None, "tsv_noheader layouts must set n_fields"
    builder = _RowBuilder(path, layout)
    for number, text in iter_lines(path):
        fields = text.split("\t")
        if len(fields) != layout.n_fields:
            raise DataError(
                path,
                number,
                f"expected {layout.n_fields} tab-separated fields, found {len(fields)}",
            )
        builder.add(number, partial(_by_position, fields))
    return builder.finish()


def read_jsonl(paths: Sequence[Path], layout: Layout) -> ReadResult:
    """One JSON object per line; fields by key."""
    (path,) = paths
    builder = _RowBuilder(path, layout)
    for number, text in iter_lines(path):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                path, number, f"not valid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise DataError(path, number, f"expected a JSON object, got {type(record).__name__}")

        def get(key: Column, record=record, number=number) -> str:
            if key not in record:
                raise DataError(path, number, f"missing key {key!r}; keys are {sorted(record)}")
            return str(record[key])

        builder.add(number, get)
    return builder.finish()


def read_lines(paths: Sequence[Path], layout: Layout) -> ReadResult:
    """Parallel files: ``paths`` are (premise file, hypothesis file, label file).

    ``layout`` columns are positions into that tuple; uid is the 0-based line index.
    """
    columns = [list(iter_lines(path)) for path in paths]
    sizes = [len(lines) for lines in columns]
    if len(set(sizes)) != 1:
        short = sizes.index(min(sizes))
        longest = sizes.index(max(sizes))
        raise DataError(
            paths[short],
            sizes[short] + 1,
            f"file ends after {sizes[short]} lines but {paths[longest].name} has "
            f"{sizes[longest]}; the files must be parallel (one example per line)",
        )
    builder = _RowBuilder(paths[0], layout)
    for i in range(sizes[0]):
        values = [lines[i][1] for lines in columns]
        builder.add(i + 1, partial(_by_position, values))
    return builder.finish()


Reader = Callable[[Sequence[Path], Layout], ReadResult]

READERS: dict[str, Reader] = {
    "tsv": read_tsv,
    "tsv_noheader": read_tsv_noheader,
    "jsonl": read_jsonl,
    "lines": read_lines,
}
