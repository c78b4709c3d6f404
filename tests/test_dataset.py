"""TaskDataset loading/validation and collate padding."""

from __future__ import annotations

import json

import pytest
import torch

from data_utils.dataset import TaskDataset, collate, data_path
from data_utils.errors import DataError
from data_utils.task_def import TaskDef, TaskType

CLS = TaskDef(
    name="rte", task_type=TaskType.CLASSIFICATION, labels=("entailment", "not_entailment")
)
REG = TaskDef(
    name="stsb", task_type=TaskType.REGRESSION, metrics=("pearson",), loss="mse", adv_loss="mse"
)


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(uid="0", label=1, ids=(101, 7, 102), types=(0, 0, 0)):
    obj = {"uid": uid, "label": label, "input_ids": list(ids)}
    if types is not None:
        obj["token_type_ids"] = list(types)
    return json.dumps(obj)


def test_load_classification(tmp_path):
    path = write(
        data_path(tmp_path, "rte", "train"),
        [row("a", 0, (1, 2, 3), (0, 0, 1)), "", row("b", 1, (1, 2, 3, 4, 5), (0, 0, 0, 1, 1))],
    )
    assert path.name == "rte_train.json"
    data = TaskDataset.load(path, CLS, "train")
    assert len(data) == 2 and data.task is CLS and data.split == "train"
    assert data.lengths == [3, 5]
    assert data.uids == ["a", "b"]
    assert data.has_labels
    assert data[1]["input_ids"] == [1, 2, 3, 4, 5]


def test_load_unlabeled_and_regression(tmp_path):
    test = TaskDataset.load(
        write(tmp_path / "t.json", [row("0", None), row("1", None)]), CLS, "test"
    )
    assert not test.has_labels
    reg = TaskDataset.load(write(tmp_path / "r.json", [row("0", 5), row("1", 2.5)]), REG, "dev")
    # Integer-valued regression labels are normalised to float.
    assert [r["label"] for r in reg.rows] == [5.0, 2.5]
    assert all(isinstance(r["label"], float) for r in reg.rows)


def test_collate_pads_right_and_picks_dtypes(tmp_path):
    data = TaskDataset.load(
        write(
            tmp_path / "x.json",
            [row("a", 0, (5, 6), (0, 1)), row("b", 1, (5, 6, 7, 8), (0, 0, 1, 1))],
        ),
        CLS,
        "dev",
    )
    batch = collate(data.rows, pad_token_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 9, 9], [5, 6, 7, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 1, 0, 0], [0, 0, 1, 1]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1]
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["uids"] == ["a", "b"]

    reg_rows = [json.loads(row("0", 1.5, types=None)), json.loads(row("1", 2, types=None))]
    reg = collate(reg_rows, task_def=REG)
    assert reg["labels"].dtype == torch.float and reg["labels"].tolist() == [1.5, 2.0]
    assert "token_type_ids" not in reg
    # Without task_def, a float label means regression.
    assert collate(reg_rows)["labels"].dtype == torch.float


def test_collate_omits_labels_when_any_is_null():
    rows = [json.loads(row("0", None)), json.loads(row("1", 1))]
    batch = collate(rows)
    assert "labels" not in batch and batch["uids"] == ["0", "1"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"uid": "1", "label": 0, "input_ids": [1, 2]', "invalid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"uid": "1", "input_ids": [1, 2]}', "missing key(s) ['label']"),
        ('{"uid": 1, "label": 0, "input_ids": [1, 2]}', "'uid' must be a string"),
        ('{"uid": "1", "label": 0, "input_ids": [1, "2"]}', "'input_ids'[1] must be an int"),
        ('{"uid": "1", "label": 0, "input_ids": []}', "'input_ids' is empty"),
        ('{"uid": "1", "label": 2, "input_ids": [1, 2]}', "outside range(2)"),
        ('{"uid": "1", "label": 1.0, "input_ids": [1, 2]}', "integer class id"),
        ('{"uid": "1", "label": true, "input_ids": [1, 2]}', "integer class id"),
        ('{"uid": "1", "label": 0, "input_ids": [1, 2], "token_type_ids": [0]}', "has 1 entries"),
        ('{"uid": "0", "label": 0, "input_ids": [1, 2]}', "duplicate uid '0'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, bad_line, message):
    path = write(
        tmp_path / "rte_dev.json", [row("0", 0, types=None), bad_line, row("2", 1, types=None)]
    )
    with pytest.raises(DataError) as info:
        TaskDataset.load(path, CLS, "dev")
    assert str(info.value).startswith(f"{path}:2: ")
    assert message in str(info.value)
    assert info.value.line == 2


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="file is empty"):
        TaskDataset.load(write(tmp_path / "empty.json", ["", "  "]), CLS, "dev")
    with pytest.raises(DataError, match="not found"):
        TaskDataset.load(tmp_path / "missing.json", CLS, "dev")
    mixed = write(tmp_path / "mixed.json", [row("0"), row("1", types=None)])
    with pytest.raises(DataError, match=r"mixed.json:2: 'token_type_ids' present on some rows"):
        TaskDataset.load(mixed, CLS, "dev")
    binary = tmp_path / "bin.json"
    binary.write_bytes(row("0").encode() + b"\n" + b'{"uid": "\xff"}\n')
    with pytest.raises(DataError, match=r"bin.json:2: not valid UTF-8"):
        TaskDataset.load(binary, CLS, "dev")
    with pytest.raises(DataError, match="finite number"):
        TaskDataset.load(write(tmp_path / "r.json", [row("0", "4.2")]), REG, "dev")


def test_too_long_row_tells_user_to_rerun_prepro(tmp_path):
    path = write(
        tmp_path / "long.json", [row("0", 0, (1, 2, 3)), row("1", 0, (1, 2, 3, 4, 5), None)]
    )
    with pytest.raises(DataError, match=r"long.json:2: .*--max_seq_len 4"):
        TaskDataset.load(path, CLS, "train", max_seq_len=4)
    assert (
        len(TaskDataset.load(write(tmp_path / "ok.json", [row("0")]), CLS, "dev", max_seq_len=3))
        == 1
    )
