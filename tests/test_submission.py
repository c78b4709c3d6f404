"""GLUE submission files: every check before writing, all-or-nothing writing, the checker."""

from __future__ import annotations

import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_utils.errors import DataError
from data_utils.task_def import TaskType, load_task_defs
from mt_dnn.submission import (
    GLUE_LEADERBOARD,
    GLUE_TEST_SIZES,
    SubmissionError,
    check_submission_file,
    format_regression,
    write_submission,
)

GLUE_YAML = "glue"  # the built-in GLUE task definitions


def full(name: str, shuffle: bool = False) -> tuple[list[str], list[str]]:
    """A valid full-size (uids, predictions) for one leaderboard file."""
    spec = GLUE_LEADERBOARD[name]
    if spec.labels is not None:
        labels = sorted(spec.labels)
        predictions = [labels[i % len(labels)] for i in range(spec.rows)]
    else:
        assert spec.value_range is not None
        values = np.linspace(spec.value_range[0] - 1, spec.value_range[1] + 1, spec.rows)
        predictions = format_regression(values, spec.value_range)
    uids = [str(i) for i in range(spec.rows)]
    if shuffle:
        order = list(range(spec.rows))
        random.Random(0).shuffle(order)
        uids, predictions = [uids[i] for i in order], [predictions[i] for i in order]
    return uids, predictions


def snapshot(folder: Path) -> dict[str, bytes | None] | None:
    """Every path under ``folder`` (hidden ones too) with its bytes; None if no folder."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def zip_members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


@pytest.fixture()
def older(tmp_path) -> Path:
    """A folder holding an older, valid submission (RTE + STS-B) and an unrelated file."""
    folder = tmp_path / "sub"
    write_submission(folder, {"RTE.tsv": full("RTE.tsv"), "STS-B.tsv": full("STS-B.tsv")})
    (folder / "notes.txt").write_text("mine\n")
    return folder


def test_a_full_submission_of_every_glue_file(tmp_path):
    files = {name: full(name, shuffle=name == "WNLI.tsv") for name in GLUE_LEADERBOARD}
    out = tmp_path / "new" / "sub"  # parents are created
    paths = write_submission(out, files)
    assert paths == [out / name for name in GLUE_LEADERBOARD] + [out / "submission.zip"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*GLUE_LEADERBOARD, "submission.zip"])
    assert zip_members(out / "submission.zip") == list(GLUE_LEADERBOARD)
    with zipfile.ZipFile(out / "submission.zip") as archive:
        for name in GLUE_LEADERBOARD:
            assert archive.read(name) == (out / name).read_bytes()
    for name, spec in GLUE_LEADERBOARD.items():
        check_submission_file(out / name, spec.rows, spec.labels, spec.value_range)
    # Rows in integer order whatever order the uids came in ("10" after "9").
    wnli = (out / "WNLI.tsv").read_text().splitlines()
    assert wnli[0] == "index\tprediction"
    assert wnli[1:12] == [f"{i}\t{'01'[i % 2]}" for i in range(11)]
    stsb = (out / "STS-B.tsv").read_text().splitlines()
    assert stsb[1] == "0\t0.000" and stsb[-1] == "1378\t5.000"  # clipped, 3 decimals


def test_a_new_submission_replaces_the_older_one_as_a_whole(older):
    write_submission(older, {"WNLI.tsv": full("WNLI.tsv")})
    # RTE.tsv and STS-B.tsv belonged to the older submission: gone, not mixed in.
    assert sorted(p.name for p in older.iterdir()) == ["WNLI.tsv", "notes.txt", "submission.zip"]
    assert zip_members(older / "submission.zip") == ["WNLI.tsv"]
    assert (older / "notes.txt").read_text() == "mine\n"


def refused(out: Path, files, message: str) -> None:
    """``files`` is refused with exactly ``message`` and ``out`` is left exactly as it was."""
    before = snapshot(out)
    with pytest.raises(SubmissionError) as info:
        write_submission(out, files)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert snapshot(out) == before


@pytest.mark.parametrize("rows", [100, 2999, 3001])
def test_not_the_official_test_size(older, rows):
    uids, predictions = full("RTE.tsv")
    uids = [*uids, "3000"][:rows]
    predictions = [*predictions, "entailment"][:rows]
    refused(
        older,
        {"WNLI.tsv": full("WNLI.tsv"), "RTE.tsv": (uids, predictions)},
        f"RTE.tsv: {rows} rows, expected 3000 (the official GLUE test set); "
        "predict the whole test file, not a slice",
    )


def test_a_slice_into_a_folder_that_does_not_exist_creates_nothing(tmp_path):
    uids, predictions = full("CoLA.tsv")
    with pytest.raises(SubmissionError, match="CoLA.tsv: 16 rows, expected 1063"):
        write_submission(tmp_path / "a" / "b", {"CoLA.tsv": (uids[:16], predictions[:16])})
    assert list(tmp_path.iterdir()) == []


def with_prediction(name: str, index: int, prediction: str) -> tuple[list[str], list[str]]:
    uids, predictions = full(name)
    predictions[index] = prediction
    return uids, predictions


@pytest.mark.parametrize(
    ("name", "index", "prediction", "problem"),
    [
        # A label of the checkpoint's task is not enough: the leaderboard's strings count.
        ("MRPC.tsv", 7, "not_equivalent", "is not one of the leaderboard's labels ['0', '1']"),
        (
            "RTE.tsv",
            5,
            "neutral",
            "is not one of the leaderboard's labels " + str(["entailment", "not_entailment"]),
        ),
        (
            "AX.tsv",
            0,
            "not_entailment",
            "is not one of the leaderboard's labels "
            + str(["contradiction", "entailment", "neutral"]),
        ),
        ("CoLA.tsv", 3, "1\t0", "is not one of the leaderboard's labels ['0', '1']"),
        ("STS-B.tsv", 9, "nan", "is not finite"),
        ("STS-B.tsv", 9, "inf", "is not finite"),
        ("STS-B.tsv", 9, "5.001", "is outside the leaderboard's range [0.0, 5.0]"),
        ("STS-B.tsv", 9, "-0.5", "is outside the leaderboard's range [0.0, 5.0]"),
        ("STS-B.tsv", 9, "high", "is not a number"),
        ("STS-B.tsv", 9, " 1.5", "is not a number"),
        ("STS-B.tsv", 9, "1_5", "is not a number"),
    ],
)
def test_a_prediction_the_leaderboard_does_not_take(older, name, index, prediction, problem):
    files = {"WNLI.tsv": full("WNLI.tsv"), name: with_prediction(name, index, prediction)}
    refused(older, files, f"{name}: prediction {prediction!r} at index {index} {problem}")


def test_the_first_non_finite_value_in_index_order_is_named(older):
    values = np.full(1379, 2.5)
    values[[700, 40]] = [np.nan, np.inf]
    uids = [str(i) for i in range(1379)][::-1]  # given in reverse: index order still counts
    files = {"STS-B.tsv": (uids, format_regression(values[::-1], (0.0, 5.0)))}
    refused(older, files, "STS-B.tsv: prediction 'inf' at index 40 is not finite")


def test_format_regression_keeps_non_finite_values_for_the_check_to_refuse():
    assert format_regression([2.71828, 5.5, -1, 0.0005], (0.0, 5.0)) == [
        "2.718",
        "5.000",
        "0.000",
        "0.001",
    ]
    # Clipping inf would make a plausible 5.000.
    assert format_regression([np.nan, np.inf, -np.inf], (0.0, 5.0)) == ["nan", "inf", "-inf"]


def with_uid(name: str, position: int, uid: str) -> tuple[list[str], list[str]]:
    uids, predictions = full(name)
    uids[position] = uid
    return uids, predictions


@pytest.mark.parametrize(
    ("position", "uid", "message"),
    [
        (5, "4", "WNLI.tsv: index 4 appears more than once"),
        (0, "146", "WNLI.tsv: index 0 is missing (indices must be exactly 0..145; got 146)"),
        (145, "9999", "WNLI.tsv: index 145 is missing (indices must be exactly 0..145; got 9999)"),
        (3, "x7", "WNLI.tsv: uid 'x7' is not a non-negative integer index"),
        (3, "3.0", "WNLI.tsv: uid '3.0' is not a non-negative integer index"),
        (3, "-3", "WNLI.tsv: uid '-3' is not a non-negative integer index"),
    ],
)
def test_indices_must_be_0_to_n_minus_1_each_once(older, position, uid, message):
    # The valid file listed first is not written either.
    files = {"CoLA.tsv": full("CoLA.tsv"), "WNLI.tsv": with_uid("WNLI.tsv", position, uid)}
    refused(older, files, message)


def test_other_input_errors(older):
    uids, predictions = full("RTE.tsv")
    refused(older, {"RTE.tsv": (uids, predictions[:-1])}, "RTE.tsv: 3000 uids but 2999 predictions")
    refused(
        older,
        {"rte.tsv": full("RTE.tsv")},
        f"'rte.tsv': not a GLUE leaderboard file; expected one of {sorted(GLUE_LEADERBOARD)}",
    )
    refused(
        older,
        {"../RTE.tsv": full("RTE.tsv")},
        f"'../RTE.tsv': not a GLUE leaderboard file; expected one of {sorted(GLUE_LEADERBOARD)}",
    )
    refused(older, {}, "no submission files given")
    with pytest.raises(SubmissionError, match="notes.txt: exists and is not a folder"):
        write_submission(older / "notes.txt", {"WNLI.tsv": full("WNLI.tsv")})
    assert (older / "notes.txt").read_text() == "mine\n"


def test_a_failing_zip_writer_leaves_the_folder_exactly_as_before(older, monkeypatch):
    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "write", disk_full)
    refused(
        older,
        {"WNLI.tsv": full("WNLI.tsv"), "RTE.tsv": full("RTE.tsv")},
        f"{older}: could not write the submission ([Errno 28] No space left on device); "
        "the folder is unchanged",
    )


@pytest.mark.parametrize("failing_move", [1, 2, 3, 4, 5])
def test_a_failure_while_moving_into_place_puts_the_older_submission_back(
    older, monkeypatch, failing_move
):
    """The older submission has 3 files; the new one 2: moves 1-3 set the older one aside,
    4-5 put the new files in place (the zip is the 6th)."""
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_move:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    before = snapshot(older)
    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(SubmissionError, match="Input/output error.*the folder is unchanged"):
        write_submission(older, {"WNLI.tsv": full("WNLI.tsv"), "CoLA.tsv": full("CoLA.tsv")})
    monkeypatch.setattr(os, "replace", real_replace)
    assert snapshot(older) == before
    assert zip_members(older / "submission.zip") == ["RTE.tsv", "STS-B.tsv"]


def bad_file(tmp_path, text):
    path = tmp_path / "RTE.tsv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("id\tprediction\n0\ta\n", {}, r"RTE.tsv:1: header"),
        ("", {}, r"RTE.tsv:1: header"),
        ("index\tprediction\n0\ta\n", {"n_rows": 2}, r"RTE.tsv: 1 rows, expected 2"),
        ("index\tprediction\n1\ta\n0\ta\n", {}, r"RTE.tsv:2: index '1' out of order"),
        ("index\tprediction\n0\ta\n1\n", {}, r"RTE.tsv:3: expected 2 tab-separated fields"),
        (
            "index\tprediction\n0\ta\n1\tz\n",
            {"label_set": {"a", "b"}},
            r"RTE.tsv:3: prediction 'z'",
        ),
        ("index\tprediction\n0\t1.0\n1\t5.1\n", {"value_range": (0, 5)}, r"RTE.tsv:3: .*'5.1'"),
        ("index\tprediction\n0\tnan\n1\t1\n", {"value_range": (0, 5)}, r"RTE.tsv:2: .*'nan'"),
    ],
)
def test_checker_catches_bad_files(tmp_path, text, kwargs, message):
    kwargs = {"n_rows": 2, **kwargs}
    with pytest.raises(DataError, match=message):
        check_submission_file(bad_file(tmp_path, text), **kwargs)


def test_the_leaderboard_table_matches_the_task_yaml():
    """Every file the GLUE YAML submits is in the table, with the labels (or range) that
    its task predicts, so a checkpoint trained on these tasks writes valid files."""
    defs = load_task_defs(GLUE_YAML)
    seen = set()
    for task in defs.values():
        for name in task.submission.values():
            spec = GLUE_LEADERBOARD[name]
            if task.task_type is TaskType.REGRESSION:
                assert spec.labels is None and spec.value_range == tuple(task.label_range)
            else:
                assert spec.value_range is None and spec.labels == set(task.labels)
            seen.add(name)
    assert seen == set(GLUE_LEADERBOARD) == set(GLUE_TEST_SIZES)
    assert GLUE_TEST_SIZES["QQP.tsv"] == 390965 and GLUE_TEST_SIZES["AX.tsv"] == 1104


def test_predict_refuses_a_sliced_test_file(tmp_path, older, capsys):
    """predict.py end to end with a tiny random checkpoint: the checks run, the error is
    one line with exit status 2, and the submission folder is left as it was."""
    from mt_dnn.checkpoint import save_checkpoint
    from mt_dnn.model import MultiTaskModel
    from mt_dnn.predict import run_predict
    from tests.tiny import VOCAB, tiny_encoder

    heads = {"rte": load_task_defs(GLUE_YAML)["rte"]}
    save_checkpoint(MultiTaskModel(tiny_encoder("bert"), heads), tmp_path / "ckpt", heads)
    rng = np.random.default_rng(0)
    with (tmp_path / "rte_test.json").open("w") as fh:
        for i in range(100):  # the official RTE test set has 3000 rows
            ids = [1, *rng.integers(5, VOCAB, size=4).tolist(), 2]
            row = {"uid": str(i), "label": None, "input_ids": ids, "token_type_ids": [0] * 6}
            fh.write(json.dumps(row) + "\n")
    before = snapshot(older)
    status = run_predict(
        ["--checkpoint", str(tmp_path / "ckpt"), "--data_dir", str(tmp_path)]
        + ["--datasets", "rte_test", "--glue_submission", str(older), "--progress", "0"]
    )
    assert status == 2
    assert capsys.readouterr().err == (
        "error: RTE.tsv: 100 rows, expected 3000 (the official GLUE test set); "
        "predict the whole test file, not a slice\n"
    )
    assert snapshot(older) == before
