"""GLUE submission files: format, order, zip, validation before writing, the checker."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from data_utils.errors import DataError
from data_utils.task_def import load_task_defs
from mt_dnn.submission import (
    GLUE_TEST_SIZES,
    check_submission_file,
    format_regression,
    write_submission,
)


def test_writes_sorted_tsvs_and_a_zip(tmp_path):
    uids = ["2", "0", "1", "10", "3", "4", "5", "6", "7", "8", "9"]
    rte = (uids, ["not_entailment" if uid == "2" else "a" for uid in uids])
    stsb = (["1", "0"], format_regression([7.0, -0.12345], (0.0, 5.0)))
    paths = write_submission(tmp_path / "out", {"RTE.tsv": rte, "STS-B.tsv": stsb})
    out = tmp_path / "out"
    assert paths == [out / "RTE.tsv", out / "STS-B.tsv", out / "submission.zip"]
    lines = (out / "RTE.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction"
    # Integer order, not string order ("10" after "9").
    assert [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(11)]
    assert lines[3] == "2\tnot_entailment"
    assert (out / "STS-B.tsv").read_text() == "index\tprediction\n0\t0.000\n1\t5.000\n"
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == ["RTE.tsv", "STS-B.tsv"]
        assert archive.read("RTE.tsv").decode() == (out / "RTE.tsv").read_text()
    check_submission_file(out / "RTE.tsv", 11, label_set={"a", "not_entailment"})
    check_submission_file(out / "STS-B.tsv", 2, value_range=(0.0, 5.0))
    assert sorted(p.name for p in out.iterdir()) == ["RTE.tsv", "STS-B.tsv", "submission.zip"]


def test_zip_holds_only_this_calls_files(tmp_path):
    write_submission(tmp_path, {"CoLA.tsv": (["0"], ["1"])})
    write_submission(tmp_path, {"WNLI.tsv": (["0"], ["0"])}, zip_name="wnli.zip")
    with zipfile.ZipFile(tmp_path / "wnli.zip") as archive:
        assert archive.namelist() == ["WNLI.tsv"]


@pytest.mark.parametrize(
    ("uids", "message"),
    [
        (["0", "1", "3"], "index 2 is missing"),
        (["0", "1", "1"], "index 1 appears more than once"),
        (["1", "2", "3"], "index 0 is missing"),
        (["0", "1", "x7"], "uid 'x7' is not a non-negative integer"),
        (["0", "1.0", "2"], "uid '1.0' is not"),
        (["0", "-1", "2"], "uid '-1' is not"),
    ],
)
def test_bad_uids_raise_and_write_nothing(tmp_path, uids, message):
    good = (["0", "1"], ["0", "1"])
    with pytest.raises(ValueError, match=f"MRPC.tsv: {message}"):
        write_submission(tmp_path / "out", {"CoLA.tsv": good, "MRPC.tsv": (uids, ["1"] * 3)})
    # The valid file listed first was not written either.
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_other_input_errors(tmp_path):
    with pytest.raises(ValueError, match="2 uids but 1 predictions"):
        write_submission(tmp_path, {"RTE.tsv": (["0", "1"], ["x"])})
    with pytest.raises(ValueError, match="one-field string"):
        write_submission(tmp_path, {"RTE.tsv": (["0"], ["a\tb"])})
    with pytest.raises(ValueError, match="plain"):
        write_submission(tmp_path, {"../RTE.tsv": (["0"], ["a"])})
    with pytest.raises(ValueError, match="non-finite"):
        format_regression([1.0, float("nan")], (0.0, 5.0))
    assert list(tmp_path.iterdir()) == []


def test_format_regression_clips_and_rounds():
    assert format_regression([2.71828, 5.5, -1, 0.0005], (0.0, 5.0)) == [
        "2.718",
        "5.000",
        "0.000",
        "0.001",
    ]


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


def test_glue_test_sizes_match_the_task_yaml():
    defs = load_task_defs(Path(__file__).parents[1] / "experiments/glue/glue_task_def.yml")
    names = {name for task in defs.values() for name in task.submission.values()}
    assert names == set(GLUE_TEST_SIZES)
    assert GLUE_TEST_SIZES["QQP.tsv"] == 390965 and GLUE_TEST_SIZES["AX.tsv"] == 1104
