"""Confusion matrices: binning, counting, the JSON file format and the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mt_dnn import confusion
from tests.tiny import CLS_TASK, REG_TASK


def test_bin_index_edges():
    values = [-1.0, 0.0, 0.49, 0.5, 2.5, 4.99, 5.0, 7.0]
    assert confusion.bin_index(values, (0.0, 5.0), 10).tolist() == [0, 0, 0, 1, 5, 9, 9, 9]
    assert confusion.bin_index(torch.tensor([1.0, 4.0]), (0.0, 5.0), 5).tolist() == [1, 4]


def test_bin_labels():
    names = confusion.bin_labels((0.0, 5.0), 10)
    assert names[0] == "[0,0.5)" and names[-1] == "[4.5,5]" and len(names) == 10
    assert confusion.label_names(CLS_TASK) == ["a", "b", "c"]
    assert confusion.label_names(REG_TASK, 4) == [
        "[0,1.25)",
        "[1.25,2.5)",
        "[2.5,3.75)",
        "[3.75,5]",
    ]


def test_confusion_matrix_classification_from_logits_and_ids():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 5.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    expected = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0]])
    assert np.array_equal(confusion.confusion_matrix(CLS_TASK, logits, labels), expected)
    ids = np.array([0, 1, 2, 1])
    assert np.array_equal(confusion.confusion_matrix(CLS_TASK, ids, labels.numpy()), expected)


def test_confusion_matrix_regression_bins_gold_and_predictions():
    predictions = [0.1, 4.9, 2.6, 2.4]
    labels = [0.2, 0.3, 2.7, 5.0]
    matrix = confusion.confusion_matrix(REG_TASK, predictions, labels, n_bins=5)
    expected = np.zeros((5, 5), dtype=np.int64)
    expected[0, 0] = 1  # 0.2 -> 0.1
    expected[0, 4] = 1  # 0.3 -> 4.9
    expected[2, 2] = 1  # 2.7 -> 2.6
    expected[4, 2] = 1  # 5.0 -> 2.4
    assert np.array_equal(matrix, expected)


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "confusion.json"
    matrices = {
        "tiny_cls": (["a", "b", "c"], np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])),
        "tiny_reg": (["lo", "hi"], np.array([[0.5, 1.25], [0.0, 2.0]])),
    }
    confusion.save_confusion(path, matrices)
    raw = json.loads(path.read_text())
    assert raw["format"] == "mt-dnn-confusion" and raw["version"] == 1
    assert raw["tasks"]["tiny_cls"]["matrix"][0] == [5, 1, 0]  # counts stay integers
    loaded = confusion.load_confusion(path)
    assert set(loaded) == set(matrices)
    for task, (names, matrix) in matrices.items():
        assert loaded[task][0] == names
        assert np.array_equal(loaded[task][1], matrix)
    assert [p.name for p in path.parent.iterdir()] == ["confusion.json"]  # no temp file left


def test_save_rejects_bad_matrix_and_keeps_old_file(tmp_path):
    path = tmp_path / "c.json"
    confusion.save_confusion(path, {"t": (["a", "b"], [[1, 0], [0, 1]])})
    before = path.read_text()
    with pytest.raises(ValueError, match="shape"):
        confusion.save_confusion(path, {"t": (["a", "b"], [[1, 0, 0]])})
    assert path.read_text() == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a valid JSON"),
        ('{"tasks": {}}', "not a confusion-matrix file"),
        ('{"format": "mt-dnn-confusion", "version": 9, "tasks": {}}', "unsupported version"),
        ('{"format": "mt-dnn-confusion", "version": 1, "tasks": []}', "'tasks' must map"),
        (
            '{"format": "mt-dnn-confusion", "version": 1, "tasks": {"t": {"labels": ["a"]}}}',
            "exactly 'labels' and 'matrix'",
        ),
        (
            '{"format": "mt-dnn-confusion", "version": 1, '
            '"tasks": {"t": {"labels": ["a", "b"], "matrix": [[1, 2]]}}}',
            "shape",
        ),
        (
            '{"format": "mt-dnn-confusion", "version": 1, '
            '"tasks": {"t": {"labels": ["a"], "matrix": [[-1]]}}}',
            ">= 0",
        ),
        (
            '{"format": "mt-dnn-confusion", "version": 1, '
            '"tasks": {"t": {"labels": ["a"], "matrix": [["x"]]}}}',
            "matrix must be",
        ),
    ],
)
def test_load_malformed_names_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        confusion.load_confusion(path)
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        confusion.load_confusion(tmp_path / "absent.json")


def test_plot_confusion(tmp_path):
    fig = confusion.plot_confusion(np.array([[3, 1], [0, 4]]), ["yes", "no"], "demo")
    ax = fig.axes[0]
    assert ax.get_title() == "demo"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["yes", "no"]
    assert ax.get_ylabel() == "gold" and ax.get_xlabel() == "predicted"
    image = ax.get_images()[0].get_array()
    assert np.allclose(image, [[0.75, 0.25], [0.0, 1.0]])  # row-normalised rates
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
