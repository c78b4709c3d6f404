"""Readers on hand-written fixtures in the official layouts of files not staged in shared/data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_utils.canonical import HEADER, read_canonical
from data_utils.errors import DataError
from data_utils.readers import READERS, Layout, iter_lines
from data_utils.sources import GLUE_SOURCES, convert_all, nli_sources

REPO_ROOT = Path(__file__).resolve().parents[1]


def read_tsv(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert tuple(lines[0].split("\t")) == HEADER
    return [dict(zip(HEADER, line.split("\t"), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="module")
def glue_out(data_fixtures_dir, data_task_defs, tmp_path_factory):
    out = tmp_path_factory.mktemp("glue")
    logs: list[str] = []
    convert_all([(data_fixtures_dir / "glue", GLUE_SOURCES)], out, data_task_defs, log=logs.append)
    return out, logs


@pytest.fixture(scope="module")
def nli_out(data_fixtures_dir, data_task_defs, tmp_path_factory):
    out = tmp_path_factory.mktemp("nli")
    logs: list[str] = []
    jobs = [(data_fixtures_dir / k, v) for k, v in nli_sources(data_task_defs).items()]
    convert_all(jobs, out, data_task_defs, log=logs.append)
    return out, logs


def test_mnli_glue_layout_uses_columns_by_name_and_skips_no_gold(glue_out):
    out, logs = glue_out
    train = read_tsv(out / "mnli_train.tsv")
    assert [r["label"] for r in train] == ["entailment", "contradiction", "neutral", "entailment"]
    assert train[0] == {
        "uid": "0",
        "label": "entailment",
        "premise": 'The cat naps on a "sunny" windowsill.',  # quotes kept: quoting is off
        "hypothesis": "A cat is sleeping.",
    }
    for split in ("dev_matched", "dev_mismatched"):
        rows = read_tsv(out / f"mnli_{split}.tsv")
        assert [r["uid"] for r in rows] == ["0", "1", "3"]  # row 2 has gold label '-'
        assert any(line.startswith(f"mnli {split}: skipped 1 rows: label '-'") for line in logs)
    for split in ("test_matched", "test_mismatched"):
        rows = read_tsv(out / f"mnli_{split}.tsv")
        assert [(r["uid"], r["label"]) for r in rows] == [("0", ""), ("1", ""), ("2", "")]


def multinli_release(folder: Path, splits: dict[str, list[tuple]]) -> None:
    """MultiNLI 1.0 as multinli_1.0.zip unpacks: one JSON object per line, every key of
    the release; rows are (pairID, gold_label, sentence1, sentence2)."""
    (folder / "multinli_1.0").mkdir(parents=True)
    for split, rows in splits.items():
        lines = []
        for pair_id, gold, premise, hypothesis in rows:
            votes = ["neutral", "contradiction"] if gold == "-" else [gold]
            lines.append(json.dumps({
                "annotator_labels": votes, "genre": "fiction", "gold_label": gold,
                "pairID": pair_id, "promptID": pair_id[:-1],
                "sentence1": premise, "sentence1_binary_parse": f"( {premise} )",
                "sentence1_parse": f"(ROOT {premise})", "sentence2": hypothesis,
                "sentence2_binary_parse": f"( {hypothesis} )",
                "sentence2_parse": f"(ROOT {hypothesis})",
            }))  # fmt: skip
        path = folder / "multinli_1.0" / f"multinli_1.0_{split}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


MULTINLI = {
    "train": [
        ("31193n", "neutral", "Conceptually cream skimming has two dimensions.", "Product and geography are what make it work."),
        ("101457e", "entailment", "you know during the season", "You lose the things."),
        ("134793e", "entailment", "One of our number will carry out\tyour instructions.", "A member will do it."),
    ],
    "dev_matched": [
        ("63735n", "neutral", "The new rights are nice enough", "Everyone really likes them."),
        ("91383c", "contradiction", "This site includes a list", "The Government does not list them."),
        ("755e", "-", "uh i don't know", "I know."),
        ("78013c", "contradiction", "yeah i know and i did that", "I did not do that."),
    ],
    "dev_mismatched": [
        ("75290c", "contradiction", "Your contribution helped make it possible.", "It was not possible."),
        ("133794c", "-", "The answer has nothing to do with it.", "It is all about it."),
    ],
}  # fmt: skip


def test_multinli_release_converts_to_the_mnli_task(data_task_defs, tmp_path):
    """nli_prepro.py --data_dir reads OUT/multinli as mtdnn-download leaves it: the mnli
    task's train/dev splits, uid pairID, '-' gold labels skipped and counted."""
    multinli_release(tmp_path / "raw" / "multinli", MULTINLI)
    out = tmp_path / "canonical"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "experiments/nli/nli_prepro.py"),
         "--data_dir", str(tmp_path / "raw"), "--output_dir", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "mnli_dev_matched.tsv",
        "mnli_dev_mismatched.tsv",
        "mnli_train.tsv",
    ]
    for split, rows in MULTINLI.items():
        kept = [(u, label, p.replace("\t", " "), h) for u, label, p, h in rows if label != "-"]
        got = read_tsv(out / f"mnli_{split}.tsv")
        assert [tuple(r.values()) for r in got] == kept, split
        assert read_canonical(out / f"mnli_{split}.tsv", data_task_defs["mnli"], split)
    assert "mnli dev_matched: skipped 1 rows: label '-' (no gold label)" in proc.stdout
    assert "mnli dev_mismatched: skipped 1 rows: label '-' (no gold label)" in proc.stdout
    assert "mnli train: skipped" not in proc.stdout


def test_mnli_folder_wins_over_the_multinli_release(data_fixtures_dir, data_task_defs, tmp_path):
    """A split the MNLI folder gives (GLUE's or the HANS authors' dev_matched) is kept; the
    release fills in the others."""
    multinli_release(tmp_path / "multinli", MULTINLI)
    mnli = tmp_path / "mnli"
    mnli.mkdir()
    (mnli / "dev_matched.tsv").write_bytes(
        (data_fixtures_dir / "glue/MNLI/dev_matched.tsv").read_bytes()
    )
    sources = nli_sources(data_task_defs)
    jobs = [(tmp_path / "mnli", sources["mnli"]), (tmp_path / "multinli", sources["multinli"])]
    logs: list[str] = []
    done = convert_all(jobs, tmp_path / "out", data_task_defs, log=logs.append)
    assert sorted(done) == [("mnli", "dev_matched"), ("mnli", "dev_mismatched"), ("mnli", "train")]
    assert [r["uid"] for r in read_tsv(tmp_path / "out/mnli_dev_matched.tsv")] == ["0", "1", "3"]
    assert [r["uid"] for r in read_tsv(tmp_path / "out/mnli_train.tsv")][0] == "31193n"
    assert [r["uid"] for r in read_tsv(tmp_path / "out/mnli_dev_mismatched.tsv")] == ["75290c"]


def test_multinli_release_bad_label_names_the_file_and_line(data_task_defs, tmp_path):
    rows = {"train": [("1e", "entailment", "a", "b"), ("2x", "maybe", "c", "d")]}
    multinli_release(tmp_path, rows)
    sources = nli_sources(data_task_defs)["multinli"]
    with pytest.raises(DataError) as info:
        convert_all([(tmp_path, sources)], tmp_path / "out", data_task_defs, log=lambda _: None)
    assert str(info.value).startswith(f"{tmp_path}/multinli_1.0/multinli_1.0_train.jsonl:2: ")
    assert "'maybe'" in str(info.value)
    assert not (tmp_path / "out/mnli_train.tsv").exists()


def test_qqp_short_rows_are_skipped_and_counted(glue_out):
    out, logs = glue_out
    train = read_tsv(out / "qqp_train.tsv")
    assert [r["uid"] for r in train] == ["11", "12", "14"]
    assert [r["label"] for r in train] == ["1", "0", "1"]
    assert any(
        line.startswith("qqp train: skipped 2 rows: row with too few fields") for line in logs
    )
    assert len(read_tsv(out / "qqp_dev.tsv")) == 2
    test = read_tsv(out / "qqp_test.tsv")
    assert test[1] == {
        "uid": "1",
        "label": "",
        "premise": "How do magnets work?",
        "hypothesis": "Where is Lisbon?",
    }


def test_qnli_train(glue_out):
    out, _ = glue_out
    rows = read_tsv(out / "qnli_train.tsv")
    assert [r["label"] for r in rows] == ["entailment", "not_entailment", "entailment"]
    assert rows[1]["premise"] == "Who painted the ceiling?"


def test_absent_glue_files_are_reported_not_errors(glue_out):
    out, logs = glue_out
    assert "rte train: skipped: not found" in "\n".join(logs)
    assert not (out / "rte_train.tsv").exists()


def test_snli_official_jsonl_and_txt(nli_out):
    out, logs = nli_out
    for split in ("dev", "test"):
        rows = read_tsv(out / f"snli_{split}.tsv")
        assert [r["uid"] for r in rows] == ["111.jpg#1r1e", "222.jpg#2r1c", "333.jpg#3r1n"]
        assert [r["label"] for r in rows] == ["entailment", "contradiction", "neutral"]
        assert rows[0]["premise"] == "A boy in a red shirt kicks a ball."
        assert any(line.startswith(f"snli {split}: skipped 1 rows: label '-'") for line in logs)


def test_hans_splits(nli_out):
    out, _ = nli_out
    for split in ("train", "dev"):
        rows = read_tsv(out / f"hans_{split}.tsv")
        assert [r["uid"] for r in rows] == ["ex0", "ex1", "ex2"]
        assert rows[0]["label"] == "non-entailment"
        assert rows[1]["hypothesis"] == "The actor slept ."


def test_xnli_official_is_split_per_language(nli_out):
    out, _ = nli_out
    for prefix in ("dev", "test"):
        en = read_tsv(out / f"xnli_{prefix}_en.tsv")
        fr = read_tsv(out / f"xnli_{prefix}_fr.tsv")
        de = read_tsv(out / f"xnli_{prefix}_de.tsv")
        assert [r["label"] for r in en] == ["entailment", "contradiction"]
        assert [r["uid"] for r in fr] == ["1", "3"]
        assert fr[0]["premise"] == "La boutique ferme tôt le dimanche."
        assert len(de) == 1
        assert not (out / f"xnli_{prefix}_zh.tsv").exists()


def test_scitail_train_dev(nli_out):
    out, _ = nli_out
    train = read_tsv(out / "scitail_train.tsv")
    assert [(r["uid"], r["label"]) for r in train] == [("0", "entails"), ("1", "neutral")]
    assert len(read_tsv(out / "scitail_dev.tsv")) == 1


def test_canonical_outputs_round_trip(glue_out, nli_out, data_task_defs):
    for out, _ in (glue_out, nli_out):
        for path in out.glob("*.tsv"):
            task, split = path.stem.split("_", 1)
            assert split in data_task_defs[task].splits
            assert read_canonical(path, data_task_defs[task], split)


def test_bom_and_crlf_are_stripped(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_bytes(b"\xef\xbb\xbfQuality\tx\r\n1\tb\r\n")
    assert list(iter_lines(path)) == [(1, "Quality\tx"), (2, "1\tb")]


def test_parallel_lines_reader(tmp_path):
    for name, text in (("s1", "a b\nc d\n"), ("s2", "e\nf\n"), ("labels", "neutral\n-\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
    layout = Layout(premise=0, hypothesis=1, label=2, skip_labels=frozenset({"-"}))
    result = READERS["lines"]([tmp_path / "s1", tmp_path / "s2", tmp_path / "labels"], layout)
    assert [(r.uid, r.label, r.premise, r.hypothesis) for r in result.rows] == [
        ("0", "neutral", "a b", "e")
    ]
    assert sum(result.skipped.values()) == 1


def test_jsonl_text_with_tabs_is_flattened(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps(
            {"pairID": "p1", "sentence1": "a\tb\nc", "sentence2": "d", "gold_label": "neutral"}
        )
        + "\n"
    )
    layout = Layout(uid="pairID", premise="sentence1", hypothesis="sentence2", label="gold_label")
    (row,) = READERS["jsonl"]([path], layout).rows
    assert row.premise == "a b c"


@pytest.mark.parametrize(
    "script",
    ["experiments/glue/glue_prepro.py", "experiments/nli/nli_prepro.py", "prepro_std.py"],
)
def test_scripts_have_help(script):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--out_dir" in proc.stdout or "--output_dir" in proc.stdout
    assert proc.stdout.count("--") >= 5


def test_glue_script_end_to_end(data_fixtures_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "experiments/glue/glue_prepro.py"),
            "--glue_dir",
            str(data_fixtures_dir / "glue"),
            "--out_dir",
            str(tmp_path),
            "--tasks",
            "qqp",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "qqp train: skipped 2 rows" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "qqp_dev.tsv",
        "qqp_test.tsv",
        "qqp_train.tsv",
    ]
