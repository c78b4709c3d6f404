"""Which head scores a dataset, and zero-shot label mapping (TAT paper, Table 2)."""

import numpy as np
import pytest
import torch

from data_utils.dataset import TaskDataset
from data_utils.task_def import TaskDef, TaskType, load_task_defs
from mt_dnn.evaluation import choose_head, evaluate, scores_to_predictions
from mt_dnn.model import MultiTaskModel
from tests.tiny import VOCAB, tiny_encoder

DEFS = load_task_defs("glue", "nli")


def test_own_head_first_then_predict_with_then_zero_shot():
    heads = {"mnli": DEFS["mnli"], "rte": DEFS["rte"]}
    assert choose_head(DEFS["rte"], heads).head == "rte"
    assert choose_head(DEFS["ax"], heads).head == "mnli"
    choice = choose_head(DEFS["scitail"], heads)
    assert choice.head == "mnli"
    # mnli labels: entailment, neutral, contradiction -> scitail: entails, neutral
    assert choice.label_map.tolist() == [0, 1, 1]
    hans = choose_head(DEFS["hans"], {"mnli": DEFS["mnli"]})
    assert hans.label_map.tolist() == [0, 1, 1]
    assert choose_head(DEFS["rte"], {"mnli": DEFS["mnli"]}).label_map.tolist() == [0, 1, 1]


def test_no_usable_head_is_a_clear_error():
    with pytest.raises(ValueError, match="no head of this model can score task 'scitail'"):
        choose_head(DEFS["scitail"], {"rte": DEFS["rte"]})


def test_zero_shot_predictions_are_mapped():
    choice = choose_head(DEFS["rte"], {"mnli": DEFS["mnli"]})
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
    assert scores_to_predictions(DEFS["rte"], choice, probs).tolist() == [0, 1, 1]


def test_regression_predictions_are_clipped_to_the_label_range():
    choice = choose_head(DEFS["stsb"], {"stsb": DEFS["stsb"]})
    out = scores_to_predictions(DEFS["stsb"], choice, np.array([-1.0, 2.5, 7.0]))
    assert out.tolist() == [0.0, 2.5, 5.0]


def test_evaluate_zero_shot_end_to_end_on_a_tiny_model():
    mnli = DEFS["mnli"]
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder(), {"mnli": mnli}, pooling="mean", dropout=0.0).eval()
    rng = np.random.default_rng(0)
    rows = [
        {
            "uid": str(i),
            "label": int(rng.integers(0, 2)),
            "input_ids": rng.integers(5, VOCAB, size=int(rng.integers(3, 9))).tolist(),
        }
        for i in range(10)
    ]
    dataset = TaskDataset(DEFS["scitail"], "test", rows)
    result = evaluate(model, dataset, {"mnli": mnli}, 4, torch.device("cpu"))
    assert result["head"] == "mnli"
    assert result["scores"].shape == (10, 3)
    np.testing.assert_allclose(result["scores"].sum(1), 1.0, rtol=1e-5)
    expected = np.array([0, 1, 1])[result["scores"].argmax(1)]
    assert result["predictions"].tolist() == expected.tolist()
    accuracy = float((expected == result["labels"]).mean() * 100)
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy)
    # evaluation sorts by length internally; scores come back in dataset order
    single = evaluate(
        model,
        TaskDataset(DEFS["scitail"], "test", rows[3:4]),
        {"mnli": mnli},
        4,
        torch.device("cpu"),
    )
    np.testing.assert_allclose(single["scores"][0], result["scores"][3], rtol=1e-5, atol=1e-6)


def test_predict_with_requires_identical_labels():
    other = TaskDef(name="x", task_type=TaskType.CLASSIFICATION, labels=("a", "b", "c"))
    ax = DEFS["ax"]
    with pytest.raises(ValueError, match="labels differ"):
        choose_head(ax, {"mnli": other.__class__(**{**other.__dict__, "name": "mnli"})})
