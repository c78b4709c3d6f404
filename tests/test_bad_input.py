"""Malformed input stops with one clear line naming file and line; nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data_utils.errors import DataError
from data_utils.prepro import PreproConfig
from data_utils.prepro import main as prepro_main
from data_utils.sources import GLUE_SOURCES, convert_all, nli_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
GOOD_RTE = RTE_HEADER + "0\tA man sleeps.\tA person sleeps.\tentailment\n"

# (id, relative path under the GLUE folder, file bytes, expected line, expected message part)
GLUE_CASES = [
    (
        "missing_column",
        "RTE/train.tsv",
        "index\tsentence1\tsentence2\n0\ta\tb\n",
        1,
        "missing column(s) ['label']",
    ),
    (
        "label_not_in_vocab",
        "RTE/train.tsv",
        GOOD_RTE + "1\ta\tb\tentailment\n2\tc\td\tmaybe\n",
        4,
        "label 'maybe' is not one of ['entailment', 'not_entailment']",
    ),
    ("empty_label", "RTE/dev.tsv", GOOD_RTE + "1\ta\tb\t\n", 3, "empty label"),
    (
        "score_not_a_number",
        "STS-B/train.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tg\tf\t2012\t1\tnone\tnone\ta\tb\tfive\n",
        2,
        "score 'five' is not a number",
    ),
    (
        "score_nan",
        "STS-B/dev.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tg\tf\t2012\t1\tnone\tnone\ta\tb\tnan\n",
        2,
        "not a finite number",
    ),
    (
        "score_out_of_range",
        "STS-B/dev.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tg\tf\t2012\t1\tnone\tnone\ta\tb\t7.5\n",
        2,
        "outside [0.0, 5.0]",
    ),
    ("empty_file", "RTE/train.tsv", "", 1, "file is empty"),
    ("header_only", "WNLI/train.tsv", RTE_HEADER, 1, "no data rows"),
    (
        "not_utf8",
        "RTE/train.tsv",
        GOOD_RTE.encode() + "1\tcaf\xe9\tb\tentailment\n".encode("latin-1"),
        3,
        "not valid UTF-8",
    ),
    (
        "too_many_fields",
        "RTE/train.tsv",
        GOOD_RTE + "1\ta\tb\tentailment\textra\n",
        3,
        "expected 4 tab-separated fields (as in the header), found 5",
    ),
    ("too_few_fields", "RTE/train.tsv", GOOD_RTE + "1\ta b\tentailment\n", 3, "found 3"),
    (
        "nul_byte",
        "RTE/train.tsv",
        GOOD_RTE + "1\ta\x00b\tc\tentailment\n",
        3,
        "NUL byte at column 4: not a text file",
    ),
    (
        "wrong_task_file",
        "RTE/train.tsv",
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n",
        1,
        "wrong file for this task",
    ),
    (
        "duplicate_uid_in_test",
        "RTE/test.tsv",
        "index\tsentence1\tsentence2\n7\ta\tb\n8\tc\td\n7\te\tf\n",
        4,
        "duplicate uid '7' (first seen on line 2)",
    ),
    (
        "cola_wrong_field_count",
        "CoLA/train.tsv",
        "gj04\t1\t\tGood.\ngj04\t0\tBad.\n",
        2,
        "expected 4 tab-separated fields, found 3",
    ),
    (
        "cola_label_not_in_vocab",
        "CoLA/dev.tsv",
        "gj04\t1\t\tGood.\ngj04\t*\t\tBad.\n",
        2,
        "label '*' is not one of ['0', '1']",
    ),
]

NLI_CASES = [
    (
        "jsonl_not_json",
        "snli",
        "snli_1.0_dev.jsonl",
        '{"pairID": "a", "sentence1": "x", "sentence2": "y", "gold_label": "neutral"}\n{"pairID": oops}\n',
        2,
        "not valid JSON",
    ),
    (
        "jsonl_missing_key",
        "snli",
        "snli_1.0_dev.jsonl",
        '{"pairID": "a", "sentence1": "x", "gold_label": "neutral"}\n',
        1,
        "missing key 'sentence2'",
    ),
    (
        "xnli_int_label_out_of_range",
        "xnli",
        "xnli_validation_en.tsv",
        "id\tpremise\thypothesis\tlabel\n0\ta\tb\t1\n1\tc\td\t3\n",
        3,
        "label '3' is not one of ['0', '1', '2']",
    ),
    (
        "xnli_unknown_language",
        "xnli",
        "xnli.dev.tsv",
        "language\tgold_label\tsentence1\tsentence2\tpairID\nen\tneutral\ta\tb\t1\nxx\tneutral\tc\td\t2\n",
        3,
        "split 'dev_xx' is not a split of task 'xnli'",
    ),
    (
        "jsonl_nul_byte",
        "snli",
        "snli_1.0_dev.jsonl",
        '{"pairID": "a", "sentence1": "x\x00", "sentence2": "y", "gold_label": "neutral"}\n',
        1,
        "NUL byte at column 32: not a text file",
    ),
    (
        "scitail_wrong_label",
        "scitail",
        "tsv_format/scitail_1.0_test.tsv",
        "a\tb\tentailment\n",
        1,
        "label 'entailment' is not one of ['entails', 'neutral']",
    ),
]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", GLUE_CASES, ids=[c[0] for c in GLUE_CASES])
def test_glue_bad_input(case, tmp_path, data_task_defs):
    _, rel, content, line, message = case
    raw = tmp_path / "glue" / rel
    raw.parent.mkdir(parents=True)
    raw.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as info:
        convert_all([(tmp_path / "glue", GLUE_SOURCES)], out, data_task_defs, log=lambda _: None)
    err = info.value
    assert (err.path, err.line) == (str(raw), line)
    assert message in err.message
    assert str(err).startswith(f"{raw}:{line}: ")
    assert leftovers(out) == []  # no output and no temp file


@pytest.mark.parametrize("case", NLI_CASES, ids=[c[0] for c in NLI_CASES])
def test_nli_bad_input(case, tmp_path, data_task_defs):
    _, dataset, rel, content, line, message = case
    raw = tmp_path / dataset / rel
    raw.parent.mkdir(parents=True)
    raw.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as info:
        convert_all(
            [(tmp_path / dataset, nli_sources(data_task_defs)[dataset])],
            out,
            data_task_defs,
            log=lambda _: None,
        )
    assert (info.value.path, info.value.line) == (str(raw), line)
    assert message in info.value.message
    assert leftovers(out) == []


def test_snli_parallel_files_of_different_length(tmp_path, data_task_defs):
    snli = tmp_path / "snli"
    snli.mkdir()
    (snli / "s1.dev").write_text("a\nb\nc\n")
    (snli / "s2.dev").write_text("d\ne\n")
    (snli / "labels.dev").write_text("neutral\nneutral\nneutral\n")
    with pytest.raises(DataError) as info:
        convert_all(
            [(snli, nli_sources(data_task_defs)["snli"])],
            tmp_path / "out",
            data_task_defs,
            log=lambda _: None,
        )
    assert (info.value.path, info.value.line) == (str(snli / "s2.dev"), 3)
    assert "must be parallel" in info.value.message


def test_failed_run_keeps_previous_output(tmp_path, data_task_defs):
    raw = tmp_path / "glue" / "RTE" / "train.tsv"
    raw.parent.mkdir(parents=True)
    raw.write_text(GOOD_RTE)
    out = tmp_path / "out"
    convert_all([(tmp_path / "glue", GLUE_SOURCES)], out, data_task_defs, log=lambda _: None)
    before = (out / "rte_train.tsv").read_bytes()
    raw.write_text(GOOD_RTE + "1\ta\tb\tmaybe\n")
    with pytest.raises(DataError):
        convert_all([(tmp_path / "glue", GLUE_SOURCES)], out, data_task_defs, log=lambda _: None)
    assert (out / "rte_train.tsv").read_bytes() == before
    assert leftovers(out) == ["rte_train.tsv"]


CANONICAL_CASES = [
    (
        "wrong_header",
        "rte_dev.tsv",
        "uid\tlabel\tsentence\n0\tentailment\ta\n",
        1,
        "expected ['uid', 'label', 'premise', 'hypothesis']",
    ),
    (
        "bad_label",
        "rte_dev.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\tentailment\ta\tb\n1\tyes\tc\td\n",
        3,
        "label 'yes' is not one of",
    ),
    (
        "empty_label_outside_test",
        "rte_train.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\t\ta\tb\n",
        2,
        "only test splits may be unlabeled",
    ),
    (
        "bad_score",
        "stsb_dev.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\t3,5\ta\tb\n",
        2,
        "score '3,5' is not a number",
    ),
    (
        "wrong_field_count",
        "rte_test.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\t\ta\n",
        2,
        "found 3",
    ),
    (
        "nul_byte",
        "rte_dev.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\tentailment\ta\x00\tb\n",
        2,
        "NUL byte at column 15: not a text file",
    ),
    (
        "duplicate_uid",
        "rte_test.tsv",
        "uid\tlabel\tpremise\thypothesis\n0\t\ta\tb\n0\t\tc\td\n",
        3,
        "duplicate uid '0'",
    ),
]


@pytest.mark.parametrize("case", CANONICAL_CASES, ids=[c[0] for c in CANONICAL_CASES])
def test_prepro_rejects_bad_canonical(case, tmp_path):
    _, name, content, line, message = case
    root = tmp_path / "canonical"
    root.mkdir()
    (root / name).write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    # A bogus model name: validation must fail before any tokenizer is loaded.
    cfg = PreproConfig(
        model="no/such-model",
        data_dir=str(root),
        output_dir=str(out),
    )
    with pytest.raises(DataError) as info:
        prepro_main(cfg, log=lambda _: None)
    assert (info.value.path, info.value.line) == (str(root / name), line)
    assert message in info.value.message
    assert not out.exists() or leftovers(out) == []


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True
    )


def test_glue_script_error_is_one_line_exit_2(tmp_path):
    raw = tmp_path / "glue" / "RTE" / "train.tsv"
    raw.parent.mkdir(parents=True)
    raw.write_text(GOOD_RTE + "17\ta\tb\tmaybe\n")
    out = tmp_path / "out"
    proc = run(
        "experiments/glue/glue_prepro.py",
        "--glue_dir",
        str(tmp_path / "glue"),
        "--out_dir",
        str(out),
    )
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"error: {raw}:3: label 'maybe' is not one of ['entailment', 'not_entailment']\n"
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists() or leftovers(out) == []


def test_nli_script_error_is_one_line_exit_2(tmp_path):
    raw = tmp_path / "xnli" / "xnli_test_en.tsv"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"id\tpremise\thypothesis\tlabel\n0\tna\xefve\tb\t1\n")
    proc = run(
        "experiments/nli/nli_prepro.py",
        "--xnli_dir",
        str(raw.parent),
        "--out_dir",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {raw}:2: not valid UTF-8")
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_prepro_script_error_is_one_line_exit_2(tmp_path):
    root = tmp_path / "canonical"
    root.mkdir()
    (root / "rte_dev.tsv").write_text("uid\tlabel\tpremise\thypothesis\n0\tmaybe\ta\tb\n")
    proc = run("prepro_std.py", "--model", "no/such-model", "--data_dir", str(root))
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"error: {root / 'rte_dev.tsv'}:2: label 'maybe' is not one of ['entailment', 'not_entailment']\n"
    )
    assert leftovers(root) == ["rte_dev.tsv"]
