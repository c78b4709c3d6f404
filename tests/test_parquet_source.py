"""Hub parquet files -> canonical TSV, compared with the official-file path on the same rows.

The parquet files are written here with pyarrow in the hub's layout, column
names and types (ClassLabel ids as int64, -1 for unlabelled rows, STS-B scores
as float32, ``idx`` as int32), from the first rows of the real files in
../shared/data. Label ids are computed in this file from HF's ClassLabel names
(as listed in huggingface/datasets dataset_infos.json), independently of the
table in data_utils/parquet_source.py.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa  # pinned in requirements.txt: a missing install should fail, not skip
import pyarrow.parquet as pq
import pytest

from data_utils.errors import DataError
from data_utils.parquet_source import CLASS_LABELS, HUB_CONFIGS, convert_hub, float32_text
from data_utils.sources import GLUE_SOURCES, convert_all, nli_sources

REPO_ROOT = Path(__file__).resolve().parents[1]

# HF ClassLabel names, id = position (huggingface/datasets datasets/*/dataset_infos.json).
HF_NAMES = {
    "rte": ["entailment", "not_entailment"],
    "wnli": ["not_entailment", "entailment"],
    "cola": ["unacceptable", "acceptable"],
    "nli3": ["entailment", "neutral", "contradiction"],
}
# GLUE's files write WNLI/CoLA labels as 0/1: the GLUE meaning of each.
GLUE_01 = {
    "wnli": {"0": "not_entailment", "1": "entailment"},
    "cola": {"0": "unacceptable", "1": "acceptable"},
}


def write_parquet(path: Path, columns: dict[str, list], types: dict[str, object] | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    types = types or {}
    table = pa.table(
        {name: pa.array(values, type=types.get(name)) for name, values in columns.items()}
    )
    pq.write_table(table, path)


def glue_columns(rows, text: list[str], label_ids: list[int], idx: list[int]) -> tuple[dict, dict]:
    columns = {name: [r[i] for r in rows] for i, name in enumerate(text)}
    columns |= {"label": label_ids, "idx": idx}
    return columns, {"label": pa.int64(), "idx": pa.int32()}


def tsv_rows(path: Path, n: int, header: bool = True) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    head = lines[0].split("\t") if header else []
    body = [line.split("\t") for line in lines[1 if header else 0 :] if line][:n]
    return head, body


def official(
    tmp_path: Path, files: dict[str, str], task: str, task_defs, sources=GLUE_SOURCES
) -> Path:
    """Write truncated official files and convert them with the official readers."""
    raw = tmp_path / "raw"
    for rel, text in files.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_text(text, encoding="utf-8")
    out = tmp_path / "official"
    convert_all([(raw, sources)], out, task_defs, [task], log=lambda _: None)
    return out


def hub(tmp_path: Path, task: str, task_defs, logs: list[str] | None = None) -> Path:
    out = tmp_path / "hub"
    convert_hub(
        tmp_path / "hf", out, task_defs, [task], log=(logs if logs is not None else []).append
    )
    return out


# ------------------------------------------------------------------ the table
def test_class_label_table_matches_the_task_yamls(data_task_defs):
    for config in HUB_CONFIGS:
        task = data_task_defs[config.task]
        for split in config.splits.values():
            assert split in task.splits, f"{config.name}: {split} is not a split of {task.name}"
        if config.labels == "value":
            continue
        ours = [label for _, label in CLASS_LABELS[config.labels]]
        assert ours == list(task.labels), f"{config.name}: ids must keep the YAML's class order"
    # Anchors from HF's dataset_infos.json and the GLUE files' 0/1 meanings.
    assert CLASS_LABELS["glue/mnli"][2] == ("contradiction", "contradiction")
    assert [n for n, _ in CLASS_LABELS["glue/rte"]] == HF_NAMES["rte"]
    for task in ("wnli", "cola"):
        for name, ours in CLASS_LABELS[f"glue/{task}"]:
            assert GLUE_01[task][ours] == name
    assert {c.task for c in HUB_CONFIGS} == {
        "cola", "sst", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "ax",
        "snli", "scitail", "xnli", "hans",
    }  # fmt: skip


# -------------------------------------------------- same rows, same canonical file
def test_rte_matches_the_official_path_across_shards(data_real_dir, data_task_defs, tmp_path):
    rte = data_real_dir / "glue" / "RTE"
    header, dev = tsv_rows(rte / "dev.tsv", 30)
    test_header, test = tsv_rows(rte / "test.tsv", 20)
    out_official = official(
        tmp_path,
        {
            "RTE/dev.tsv": "\n".join("\t".join(r) for r in [header, *dev]) + "\n",
            "RTE/test.tsv": "\n".join("\t".join(r) for r in [test_header, *test]) + "\n",
        },
        "rte",
        data_task_defs,
    )
    ids = [HF_NAMES["rte"].index(r[3]) for r in dev]
    for shard, part in enumerate((slice(0, 12), slice(12, None))):
        rows = dev[part]
        columns, types = glue_columns(
            [r[1:3] for r in rows], ["sentence1", "sentence2"], ids[part], [int(r[0]) for r in rows]
        )
        write_parquet(
            tmp_path / f"hf/glue/rte/validation-0000{shard}-of-00002.parquet", columns, types
        )
    columns, types = glue_columns(
        [r[1:3] for r in test],
        ["sentence1", "sentence2"],
        [-1] * len(test),
        [int(r[0]) for r in test],
    )
    write_parquet(tmp_path / "hf/glue/rte/test-00000-of-00001.parquet", columns, types)
    out_hub = hub(tmp_path, "rte", data_task_defs)
    for split in ("dev", "test"):
        expected = (out_official / f"rte_{split}.tsv").read_bytes()
        assert (out_hub / f"rte_{split}.tsv").read_bytes() == expected
    assert "\tnot_entailment\t" in (out_hub / "rte_dev.tsv").read_text(encoding="utf-8")


@pytest.mark.parametrize("task,folder", [("cola", "CoLA"), ("wnli", "WNLI")])
def test_zero_one_tasks_match_the_official_path(
    task, folder, data_real_dir, data_task_defs, tmp_path
):
    path = data_real_dir / "glue" / folder / "dev.tsv"
    if task == "cola":  # no header: source, label, marker, sentence
        _, rows = tsv_rows(path, 25, header=False)
        texts, labels = [[r[3]] for r in rows], [r[1] for r in rows]
        text_cols, raw = ["sentence"], "\n".join("\t".join(r) for r in rows) + "\n"
    else:
        header, rows = tsv_rows(path, 25)
        texts, labels = [r[1:3] for r in rows], [r[3] for r in rows]
        text_cols = ["sentence1", "sentence2"]
        raw = "\n".join("\t".join(r) for r in [header, *rows]) + "\n"
    out_official = official(tmp_path, {f"{folder}/dev.tsv": raw}, task, data_task_defs)
    ids = [HF_NAMES[task].index(GLUE_01[task][label]) for label in labels]
    columns, types = glue_columns(texts, text_cols, ids, list(range(len(rows))))
    write_parquet(tmp_path / f"hf/glue/{task}/validation-00000-of-00001.parquet", columns, types)
    out_hub = hub(tmp_path, task, data_task_defs)
    assert (out_hub / f"{task}_dev.tsv").read_bytes() == (
        out_official / f"{task}_dev.tsv"
    ).read_bytes()


def test_stsb_float32_scores_equal_the_official_scores(data_real_dir, data_task_defs, tmp_path):
    header, rows = tsv_rows(data_real_dir / "glue/STS-B/dev.tsv", 40)
    raw = "\n".join("\t".join(r) for r in [header, *rows]) + "\n"
    out_official = official(tmp_path, {"STS-B/dev.tsv": raw}, "stsb", data_task_defs)
    columns = {
        "sentence1": [r[7] for r in rows],
        "sentence2": [r[8] for r in rows],
        "label": [float(r[9]) for r in rows],
        "idx": [int(r[0]) for r in rows],
    }
    write_parquet(
        tmp_path / "hf/glue/stsb/validation-00000-of-00001.parquet",
        columns,
        {"label": pa.float32(), "idx": pa.int32()},
    )
    out_hub = hub(tmp_path, "stsb", data_task_defs)
    ours = [line.split("\t") for line in (out_hub / "stsb_dev.tsv").read_text().splitlines()]
    theirs = [line.split("\t") for line in (out_official / "stsb_dev.tsv").read_text().splitlines()]
    assert len(ours) == len(theirs) == 41
    for a, b in zip(ours[1:], theirs[1:], strict=True):
        assert (a[0], a[2], a[3]) == (b[0], b[2], b[3])
        assert float(a[1]) == float(b[1])  # "3.8" for the file's "3.800"
    assert float32_text(3.799999952316284) == "3.8" and float32_text(5.0) == "5"


def test_xnli_language_config_matches_the_official_path(data_real_dir, data_task_defs, tmp_path):
    source = data_real_dir / "xnli" / "xnli_validation_fr.tsv"
    header, rows = tsv_rows(source, 30)
    raw = "\n".join("\t".join(r) for r in [header, *rows]) + "\n"
    sources = nli_sources(data_task_defs)["xnli"]
    out_official = official(
        tmp_path, {"xnli_validation_fr.tsv": raw}, "xnli", data_task_defs, sources
    )
    columns = {"premise": [r[1] for r in rows], "hypothesis": [r[2] for r in rows]}
    columns["label"] = [int(r[3]) for r in rows]  # the staged file is an HF export: ids already
    write_parquet(
        tmp_path / "hf/xnli/fr/validation-00000-of-00001.parquet", columns, {"label": pa.int64()}
    )
    out_hub = hub(tmp_path, "xnli", data_task_defs)
    expected = (out_official / "xnli_dev_fr.tsv").read_bytes()
    assert (out_hub / "xnli_dev_fr.tsv").read_bytes() == expected


def test_snli_minus_one_is_skipped_like_the_official_dash(
    data_fixtures_dir, data_task_defs, tmp_path
):
    text = (data_fixtures_dir / "snli/snli_1.0_dev.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    sources = nli_sources(data_task_defs)["snli"]
    out_official = official(tmp_path, {"snli_1.0_dev.jsonl": text}, "snli", data_task_defs, sources)
    names = HF_NAMES["nli3"]
    columns = {
        "premise": [r["sentence1"] for r in records],
        "hypothesis": [r["sentence2"] for r in records],
        "label": [
            names.index(r["gold_label"]) if r["gold_label"] in names else -1 for r in records
        ],
    }
    assert -1 in columns["label"]
    write_parquet(
        tmp_path / "hf/snli/plain_text/validation-00000-of-00001.parquet",
        columns,
        {"label": pa.int64()},
    )
    logs: list[str] = []
    out_hub = hub(tmp_path, "snli", data_task_defs, logs)

    def body(path):  # uids differ: pairID in the jsonl, the row number on the hub
        return [line.split("\t")[1:] for line in path.read_text(encoding="utf-8").splitlines()[1:]]

    assert body(out_hub / "snli_dev.tsv") == body(out_official / "snli_dev.tsv")
    assert any("skipped 1 rows: label -1 (no gold label)" in line for line in logs)


def test_scitail_string_labels_and_refs_convert_layout(data_real_dir, data_task_defs, tmp_path):
    source = data_real_dir / "scitail/SciTailV1.1/tsv_format/scitail_1.0_test.tsv"
    _, rows = tsv_rows(source, 40, header=False)
    raw = "\n".join("\t".join(r) for r in rows) + "\n"
    sources = nli_sources(data_task_defs)["scitail"]
    out_official = official(
        tmp_path, {"tsv_format/scitail_1.0_test.tsv": raw}, "scitail", data_task_defs, sources
    )
    columns = {
        "premise": [r[0] for r in rows],
        "hypothesis": [r[1] for r in rows],
        "label": [r[2] for r in rows],
    }
    write_parquet(
        tmp_path / "hf/scitail/tsv_format/test/0000.parquet", columns
    )  # {split}/NNNN.parquet
    out_hub = hub(tmp_path, "scitail", data_task_defs)
    expected = (out_official / "scitail_test.tsv").read_bytes()
    assert (out_hub / "scitail_test.tsv").read_bytes() == expected


# ----------------------------------------------------------------------- errors
def rte_parquet(path: Path, **override):
    columns = {
        "sentence1": ["a", "b", "c"],
        "sentence2": ["x", "y", "z"],
        "label": [0, 1, 0],
        "idx": [0, 1, 2],
    }
    columns |= override
    write_parquet(
        path, columns, {"label": pa.int64(), "idx": pa.int32()} if "label" not in override else None
    )


def test_missing_column_names_the_file(data_task_defs, tmp_path):
    path = tmp_path / "hf/glue/rte/train-00000-of-00001.parquet"
    write_parquet(path, {"sentence1": ["a"], "label": [0], "idx": [0]})
    with pytest.raises(DataError) as info:
        convert_hub(tmp_path / "hf", tmp_path / "out", data_task_defs, log=lambda _: None)
    assert str(info.value).startswith(f"{path}: missing column(s) ['sentence2']; columns are")
    assert not (tmp_path / "out/rte_train.tsv").exists()


def test_unknown_label_id_names_the_file_and_row(data_task_defs, tmp_path):
    path = tmp_path / "hf/glue/rte/train-00000-of-00001.parquet"
    rte_parquet(path, label=[0, 1, 7])
    with pytest.raises(DataError) as info:
        convert_hub(tmp_path / "hf", tmp_path / "out", data_task_defs, log=lambda _: None)
    assert str(info.value) == (
        f"{path}: row 3: label id 7 is not one of 0..1 "
        "(ClassLabel names ['entailment', 'not_entailment']) or -1"
    )


def test_unlabelled_row_outside_a_test_split_is_an_error(data_task_defs, tmp_path):
    path = tmp_path / "hf/glue/rte/validation-00000-of-00001.parquet"
    rte_parquet(path, label=[0, -1, 1])
    with pytest.raises(
        DataError, match=r"row 2: label -1 \(unlabelled\) in 'dev', not a test split"
    ):
        convert_hub(tmp_path / "hf", tmp_path / "out", data_task_defs, log=lambda _: None)


def test_text_labels_where_ids_are_expected(data_task_defs, tmp_path):
    path = tmp_path / "hf/glue/rte/train-00000-of-00001.parquet"
    rte_parquet(path, label=["entailment", "not_entailment", "entailment"])
    with pytest.raises(DataError, match=r"row 1: label 'entailment' is not a class id"):
        convert_hub(tmp_path / "hf", tmp_path / "out", data_task_defs, log=lambda _: None)


@pytest.mark.parametrize(
    "entry", ["experiments/hf_datasets_prepro.py", "data_utils.parquet_source"]
)
def test_script_converts_and_reports_errors_in_one_line(entry, data_task_defs, tmp_path):
    rte_parquet(tmp_path / "hf/glue/rte/train-00000-of-00001.parquet")
    module = not entry.endswith(".py")
    script = [sys.executable, "-m", entry] if module else [sys.executable, str(REPO_ROOT / entry)]
    args = ["--data_dir", str(tmp_path / "hf"), "--output_dir", str(tmp_path / "out")]
    run = functools.partial(subprocess.run, capture_output=True, text=True, cwd=REPO_ROOT)
    proc = run([*script, *args, "--tasks", "rte,snli"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/rte_train.tsv").read_text(encoding="utf-8").splitlines() == [
        "uid\tlabel\tpremise\thypothesis",
        "0\tentailment\ta\tx",
        "1\tnot_entailment\tb\ty",
        "2\tentailment\tc\tz",
    ]
    assert "snli: skipped: not found" in proc.stdout
    rte_parquet(tmp_path / "hf/glue/rte/train-00000-of-00001.parquet", label=[0, 5, 1])
    bad = run([*script, *args])
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert (
        bad.stderr.startswith("error: ")
        and "train-00000-of-00001.parquet: row 2: label id 5" in bad.stderr
    )
    unknown = run([*script, *args, "--tasks", "rtee"])
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: flags: tasks: unknown task(s) ['rtee']")
    missing = run([*script, "--data_dir", str(tmp_path / "nowhere")])
    assert missing.returncode == 2
    assert missing.stderr == f"error: --data_dir {tmp_path / 'nowhere'}: is not a folder\n"


def test_missing_pyarrow_is_one_line_naming_the_install(monkeypatch, tmp_path):
    import data_utils.parquet_source as parquet_source
    from data_utils.cli import ConfigError

    real = parquet_source.importlib.util.find_spec
    monkeypatch.setattr(
        parquet_source.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyarrow" else real(name, *a),
    )
    cfg = parquet_source.parse_hf_prepro_args(["--data_dir", str(tmp_path)])
    with pytest.raises(ConfigError, match=r"needs pyarrow, which is not installed: pip install"):
        parquet_source.main(cfg, log=lambda _: None)
