"""GLUE leaderboard files: ``index<TAB>prediction`` TSVs and the zip that is uploaded.

:func:`write_submission` validates every file before writing any, so a bad
uid never leaves a half-updated submission folder behind; each file is
written to a temporary name and moved into place with ``os.replace``.
:func:`check_submission_file` re-reads a written file and checks it against
what the leaderboard expects (header, row count, index order, labels).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from data_utils.errors import DataError

__all__ = [
    "GLUE_TEST_SIZES",
    "HEADER",
    "check_submission_file",
    "format_regression",
    "write_submission",
]

HEADER = "index\tprediction"

# Rows in each official GLUE test file, keyed by submission file name (as in
# the task YAML's `submission:` values).
GLUE_TEST_SIZES: dict[str, int] = {
    "CoLA.tsv": 1063,
    "SST-2.tsv": 1821,
    "MRPC.tsv": 1725,
    "STS-B.tsv": 1379,
    "QQP.tsv": 390965,
    "MNLI-m.tsv": 9796,
    "MNLI-mm.tsv": 9847,
    "QNLI.tsv": 5463,
    "RTE.tsv": 3000,
    "WNLI.tsv": 146,
    "AX.tsv": 1104,
}


def format_regression(values: Iterable[float], label_range: Sequence[float]) -> list[str]:
    """Clip regression outputs to ``[low, high]`` and format with 3 decimals."""
    low, high = float(label_range[0]), float(label_range[1])
    if not low < high:
        raise ValueError(f"label_range low must be below high, got {label_range}")
    values = np.asarray(list(values), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"prediction {bad} is {values[bad]}; cannot submit a non-finite value")
    return [f"{v:.3f}" for v in np.clip(values, low, high)]


def _parse_index(uid: object) -> int | None:
    text = str(uid)
    # Only plain non-negative integers: "1.0", "+1", " 1" or "-1" are not GLUE indices.
    return int(text) if text.isascii() and text.isdigit() else None


def _ordered_rows(name: str, uids: Sequence[str], predictions: Sequence[str]) -> list[str]:
    """Validate one file's content; return its prediction strings in index order."""
    if len(uids) != len(predictions):
        raise ValueError(f"{name}: {len(uids)} uids but {len(predictions)} predictions")
    if not uids:
        raise ValueError(f"{name}: no rows to write")
    by_index: dict[int, str] = {}
    for uid, prediction in zip(uids, predictions, strict=True):
        index = _parse_index(uid)
        if index is None:
            raise ValueError(f"{name}: uid {uid!r} is not a non-negative integer index")
        if index in by_index:
            raise ValueError(f"{name}: index {index} appears more than once")
        if (
            not isinstance(prediction, str)
            or not prediction
            or any(c in prediction for c in "\t\r\n")
        ):
            raise ValueError(
                f"{name}: prediction for index {index} must be a non-empty one-field string, "
                f"got {prediction!r}"
            )
        by_index[index] = prediction
    n = len(by_index)
    missing = next((i for i in range(n) if i not in by_index), None)
    if missing is not None:
        raise ValueError(
            f"{name}: index {missing} is missing (indices must be exactly 0..{n - 1}; "
            f"largest given is {max(by_index)})"
        )
    return [by_index[i] for i in range(n)]


@contextlib.contextmanager
def _temp_next_to(path: Path):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_submission(
    out_dir: str | Path,
    files: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    zip_name: str = "submission.zip",
) -> list[Path]:
    """Write each ``{file name: (uids, prediction strings)}`` as a GLUE TSV, plus a zip.

    Rows are sorted by integer uid; uids must be exactly ``0..N-1``. Any
    invalid file raises ``ValueError`` (naming the file and the offending
    index) before anything is written. Returns the TSV paths, then the zip
    path; the zip holds exactly the TSVs written by this call.
    """
    out_dir = Path(out_dir)
    if not files:
        raise ValueError("no submission files given")
    ordered: dict[str, list[str]] = {}
    for name, (uids, predictions) in files.items():
        if Path(name).name != name or not name.endswith(".tsv"):
            raise ValueError(f"{name!r}: submission files are plain '<name>.tsv' file names")
        ordered[name] = _ordered_rows(name, list(uids), list(predictions))
    if Path(zip_name).name != zip_name or not zip_name.endswith(".zip"):
        raise ValueError(f"zip_name {zip_name!r} must be a plain '<name>.zip' file name")

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, predictions in ordered.items():
        path = out_dir / name
        with _temp_next_to(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(HEADER + "\n")
                handle.writelines(f"{i}\t{p}\n" for i, p in enumerate(predictions))
        written.append(path)
    zip_path = out_dir / zip_name
    with _temp_next_to(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, arcname=path.name)
    return [*written, zip_path]


def check_submission_file(
    path: str | Path,
    n_rows: int,
    label_set: Collection[str] | None = None,
    value_range: Sequence[float] | None = None,
) -> None:
    """Re-read a submission TSV; raise :class:`DataError` (``path:line: what``) if wrong.

    Checks the header, that rows are ``i<TAB>prediction`` for i = 0..n_rows-1 in
    order, and optionally that each prediction is in ``label_set`` or is a
    finite number within ``value_range`` = (low, high).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(path, None, "submission file not found") from None
    if not lines or lines[0] != HEADER:
        got = lines[0] if lines else "an empty file"
        raise DataError(path, 1, f"header must be {HEADER!r}, got {got!r}")
    if len(lines) - 1 != n_rows:
        raise DataError(path, None, f"{len(lines) - 1} rows, expected {n_rows}")
    labels = set(label_set) if label_set is not None else None
    for i, line in enumerate(lines[1:]):
        line_no = i + 2
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(path, line_no, f"expected 2 tab-separated fields, got {len(fields)}")
        index, prediction = fields
        if index != str(i):
            raise DataError(path, line_no, f"index {index!r} out of order, expected {i}")
        if labels is not None and prediction not in labels:
            raise DataError(
                path, line_no, f"prediction {prediction!r} is not one of {sorted(labels)}"
            )
        if value_range is not None:
            try:
                value = float(prediction)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value_range[0] <= value <= value_range[1]):
                raise DataError(
                    path,
                    line_no,
                    f"prediction {prediction!r} is not a number in "
                    f"[{value_range[0]}, {value_range[1]}]",
                )
