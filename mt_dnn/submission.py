"""GLUE leaderboard files: ``index<TAB>prediction`` TSVs and the zip that is uploaded.

A submission that this module writes cannot be wrong in any way the
leaderboard would catch (or silently mis-score):

1. :func:`write_submission` checks every file completely before it touches the
   target folder: the file is one the leaderboard takes, it has exactly as
   many rows as the official test set (a prediction run on a slice is refused),
   its indices are 0..n-1 each exactly once, and every prediction is one of the
   leaderboard's label strings or a finite number inside its range
   (:data:`GLUE_LEADERBOARD`).
2. The TSVs and the zip are written into a temporary folder inside the target
   folder, re-read with :func:`check_submission_file`, and only then moved into
   place. A previous submission there (every leaderboard file name and
   ``submission.zip``) is moved aside first and deleted at the end, or moved
   back if anything fails, so the folder holds the old submission or the new
   one, never a mix. Other files in the folder are left alone.

Every refusal is a :class:`SubmissionError` (a ``ValueError``, which scripts
print as one ``error: ...`` line and exit 2) naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_utils.errors import DataError

__all__ = [
    "GLUE_LEADERBOARD",
    "GLUE_TEST_SIZES",
    "HEADER",
    "ZIP_NAME",
    "LeaderboardFile",
    "SubmissionError",
    "check_submission_file",
    "format_regression",
    "write_submission",
]

HEADER = "index\tprediction"
ZIP_NAME = "submission.zip"


class SubmissionError(ValueError):
    """A submission that the leaderboard would reject or mis-score; nothing was written."""


@dataclass(frozen=True)
class LeaderboardFile:
    """What the leaderboard takes in one file: ``rows`` predictions, each one of
    ``labels`` (classification) or a number in ``value_range`` (regression)."""

    rows: int
    labels: frozenset[str] | None = None
    value_range: tuple[float, float] | None = None


# Facts of the GLUE leaderboard (gluebenchmark.com), keyed by submission file
# name, not facts of our tasks: the task YAML's `submission:` says which split
# goes into which file, and its label strings happen to be these, but a
# checkpoint whose task uses other names must still be refused here. `rows` is
# the size of the official test file (AX is the diagnostic set).
_BINARY = frozenset({"0", "1"})
_NLI2 = frozenset({"entailment", "not_entailment"})
_NLI3 = frozenset({"entailment", "neutral", "contradiction"})
GLUE_LEADERBOARD: dict[str, LeaderboardFile] = {
    "CoLA.tsv": LeaderboardFile(1063, labels=_BINARY),
    "SST-2.tsv": LeaderboardFile(1821, labels=_BINARY),
    "MRPC.tsv": LeaderboardFile(1725, labels=_BINARY),
    "STS-B.tsv": LeaderboardFile(1379, value_range=(0.0, 5.0)),
    "QQP.tsv": LeaderboardFile(390965, labels=_BINARY),
    "MNLI-m.tsv": LeaderboardFile(9796, labels=_NLI3),
    "MNLI-mm.tsv": LeaderboardFile(9847, labels=_NLI3),
    "QNLI.tsv": LeaderboardFile(5463, labels=_NLI2),
    "RTE.tsv": LeaderboardFile(3000, labels=_NLI2),
    "WNLI.tsv": LeaderboardFile(146, labels=_BINARY),
    "AX.tsv": LeaderboardFile(1104, labels=_NLI3),
}

# Rows in each official GLUE test file, keyed by submission file name.
GLUE_TEST_SIZES: dict[str, int] = {name: spec.rows for name, spec in GLUE_LEADERBOARD.items()}


def format_regression(values: Iterable[float], label_range: Sequence[float]) -> list[str]:
    """Clip regression outputs to ``[low, high]`` and format with 3 decimals.

    Non-finite values are not clipped (clipping would turn ``inf`` into a
    plausible ``5.000``): they come out as ``nan``/``inf``/``-inf``, and
    :func:`write_submission` refuses them, naming the file and the index.
    """
    low, high = float(label_range[0]), float(label_range[1])
    if not low < high:
        raise ValueError(f"label_range low must be below high, got {label_range}")
    values = np.asarray(list(values), dtype=np.float64)
    clipped = np.where(np.isfinite(values), np.clip(values, low, high), values)
    return [f"{v:.3f}" if math.isfinite(v) else str(v) for v in clipped.tolist()]


def _parse_index(uid: object) -> int | None:
    text = str(uid)
    # Only plain non-negative integers: "1.0", "+1", " 1" or "-1" are not GLUE indices.
    return int(text) if text.isascii() and text.isdigit() else None


def _prediction_problem(prediction: object, spec: LeaderboardFile) -> str | None:
    """Why the leaderboard would not take this prediction string, or None."""
    if not isinstance(prediction, str):
        return f"is a {type(prediction).__name__}, not a string"
    if spec.labels is not None and prediction not in spec.labels:
        return f"is not one of the leaderboard's labels {sorted(spec.labels)}"
    if spec.value_range is not None:
        low, high = spec.value_range
        try:
            # float() would also take " 1.5", "1_5" and "1.5\n"; a TSV field must not.
            if prediction != prediction.strip() or "_" in prediction:
                raise ValueError(prediction)
            value = float(prediction)
        except ValueError:
            return "is not a number"
        if not math.isfinite(value):
            return "is not finite"
        if not low <= value <= high:
            return f"is outside the leaderboard's range [{low}, {high}]"
    return None


def _checked_rows(name: str, uids: Sequence[object], predictions: Sequence[object]) -> list[str]:
    """Check one file completely; return its prediction strings in index order."""
    spec = GLUE_LEADERBOARD.get(name)
    if spec is None:
        raise SubmissionError(
            f"{name!r}: not a GLUE leaderboard file; expected one of {sorted(GLUE_LEADERBOARD)}"
        )
    if len(uids) != len(predictions):
        raise SubmissionError(f"{name}: {len(uids)} uids but {len(predictions)} predictions")
    n = spec.rows
    if len(uids) != n:
        raise SubmissionError(
            f"{name}: {len(uids)} rows, expected {n} (the official GLUE test set); "
            "predict the whole test file, not a slice"
        )
    by_index: dict[int, object] = {}
    for uid, prediction in zip(uids, predictions, strict=True):
        index = _parse_index(uid)
        if index is None:
            raise SubmissionError(f"{name}: uid {uid!r} is not a non-negative integer index")
        if index in by_index:
            raise SubmissionError(f"{name}: index {index} appears more than once")
        by_index[index] = prediction
    # n distinct indices: one is missing exactly when another lies beyond n - 1.
    beyond = [index for index in by_index if index >= n]
    if beyond:
        missing = next(i for i in range(n) if i not in by_index)
        raise SubmissionError(
            f"{name}: index {missing} is missing (indices must be exactly 0..{n - 1}; "
            f"got {min(beyond)})"
        )
    rows: list[str] = []
    for index in range(n):
        prediction = by_index[index]
        problem = _prediction_problem(prediction, spec)
        if problem is not None:
            raise SubmissionError(f"{name}: prediction {prediction!r} at index {index} {problem}")
        rows.append(str(prediction))
    return rows


def _stage(staging: Path, ordered: Mapping[str, list[str]]) -> None:
    """Write the TSVs and the zip into ``staging``; re-read each TSV as the leaderboard would."""
    for name, predictions in ordered.items():
        with open(staging / name, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(HEADER + "\n")
            handle.writelines(f"{i}\t{p}\n" for i, p in enumerate(predictions))
        spec = GLUE_LEADERBOARD[name]
        # What reached the disk, not what we meant to write.
        check_submission_file(staging / name, spec.rows, spec.labels, spec.value_range)
    with zipfile.ZipFile(staging / ZIP_NAME, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ordered:
            archive.write(staging / name, arcname=name)


def _install(staging: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move the staged ``names`` into ``out_dir``, replacing any previous submission whole.

    The previous submission's files go to ``staging/previous`` first, so that a
    failure can put them back; on success they are deleted with ``staging``.
    """
    backup = staging / "previous"
    backup.mkdir()
    previous = [n for n in (*GLUE_LEADERBOARD, ZIP_NAME) if (out_dir / n).is_file()]
    moved: list[str] = []
    installed: list[str] = []
    try:
        for name in previous:
            os.replace(out_dir / name, backup / name)
            moved.append(name)
        for name in names:
            os.replace(staging / name, out_dir / name)
            installed.append(name)
    except BaseException:
        for name in reversed(installed):
            os.replace(out_dir / name, staging / name)
        for name in reversed(moved):
            os.replace(backup / name, out_dir / name)
        raise


def write_submission(
    out_dir: str | Path, files: Mapping[str, tuple[Sequence[str], Sequence[str]]]
) -> list[Path]:
    """Write each ``{file name: (uids, prediction strings)}`` as a GLUE TSV, plus the zip.

    Every file is checked against :data:`GLUE_LEADERBOARD` before anything is
    written (see the module docstring); rows are then written in integer uid
    order. ``out_dir`` ends up holding exactly these files and ``submission.zip``
    (whose members are exactly these files) in place of any previous
    submission, or, if anything fails, exactly what it held before. Returns the
    TSV paths, then the zip path. Raises :class:`SubmissionError`.
    """
    out_dir = Path(out_dir)
    if not files:
        raise SubmissionError("no submission files given")
    ordered = {
        name: _checked_rows(name, list(uids), list(predictions))
        for name, (uids, predictions) in files.items()
    }
    if out_dir.exists() and not out_dir.is_dir():
        raise SubmissionError(f"{out_dir}: exists and is not a folder")
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # deepest first
    staging: Path | None = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".submission-", suffix=".tmp"))
        _stage(staging, ordered)
        _install(staging, out_dir, [*ordered, ZIP_NAME])
    except BaseException as exc:
        if staging is not None and any((staging / "previous").glob("*")):
            # Putting the previous submission back failed too: keep its files.
            exc.add_note(f"the previous submission's files are in {staging / 'previous'}")
            raise
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise SubmissionError(
                f"{out_dir}: could not write the submission ({exc}); the folder is unchanged"
            ) from exc
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return [*(out_dir / name for name in ordered), out_dir / ZIP_NAME]


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
