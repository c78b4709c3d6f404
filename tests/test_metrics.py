"""Metrics against scikit-learn and scipy, and the degenerate cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from data_utils.task_def import TaskDef, TaskType
from mt_dnn.metrics import METRICS, compute_metrics


def classes(n, k, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3])
def test_classification_metrics_match_sklearn(seed, k):
    labels = classes(200, k, seed)
    # Correlated with the labels so MCC is far from 0.
    predictions = np.where(
        np.random.default_rng(seed + 10).random(200) < 0.7, labels, classes(200, k, seed + 20)
    )
    assert METRICS["accuracy"](predictions, labels) == pytest.approx(
        100 * accuracy_score(labels, predictions)
    )
    assert METRICS["mcc"](predictions, labels) == pytest.approx(
        100 * matthews_corrcoef(labels, predictions)
    )
    if k == 2:
        assert METRICS["f1"](predictions, labels) == pytest.approx(
            100 * f1_score(labels, predictions)
        )
    assert 20 < METRICS["mcc"](predictions, labels) < 90


@pytest.mark.parametrize("seed", [0, 1])
def test_correlations_match_scipy(seed):
    rng = np.random.default_rng(seed)
    labels = rng.uniform(0, 5, 300)
    predictions = labels + rng.normal(0, 1.0, 300)
    # STS-B gold scores are often tied (multiples of 0.2): exercise tie averaging.
    tied = np.round(labels * 5) / 5
    assert METRICS["pearson"](predictions, labels) == pytest.approx(
        100 * pearsonr(predictions, labels)[0]
    )
    assert METRICS["spearman"](predictions, tied) == pytest.approx(
        100 * spearmanr(predictions, tied)[0]
    )
    assert METRICS["spearman"](np.round(predictions), tied) == pytest.approx(
        100 * spearmanr(np.round(predictions), tied)[0]
    )


def test_values_are_python_floats_in_percent():
    value = METRICS["accuracy"](np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert type(value) is float and value == 75.0
    assert METRICS["pearson"](np.arange(5.0), np.arange(5.0)) == pytest.approx(100.0)
    assert METRICS["pearson"](np.arange(5.0), -np.arange(5.0)) == pytest.approx(-100.0)


def test_constant_predictions_score_zero_without_warnings():
    labels = np.array([0, 1, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert METRICS["mcc"](np.ones(5, dtype=int), labels) == 0.0
        assert METRICS["mcc"](labels, np.ones(5, dtype=int)) == 0.0  # constant labels
        assert METRICS["f1"](np.zeros(5, dtype=int), np.zeros(5, dtype=int)) == 0.0
        assert METRICS["pearson"](np.full(5, 2.5), labels.astype(float)) == 0.0
        assert METRICS["spearman"](np.full(5, 2.5), labels.astype(float)) == 0.0


def test_shape_errors():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        METRICS["accuracy"](np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="not logits"):
        METRICS["accuracy"](np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="no examples"):
        METRICS["f1"](np.zeros(0), np.zeros(0))


def test_compute_metrics_follows_task_def():
    cola = TaskDef(
        name="cola",
        task_type=TaskType.CLASSIFICATION,
        labels=("0", "1"),
        metrics=("mcc", "accuracy"),
    )
    labels = classes(50, 2, 3)
    predictions = classes(50, 2, 4)
    result = compute_metrics(cola, predictions, labels)
    assert list(result) == ["mcc", "accuracy"]
    assert result["mcc"] == pytest.approx(100 * matthews_corrcoef(labels, predictions))
    stsb = TaskDef(
        name="stsb",
        task_type=TaskType.REGRESSION,
        metrics=("pearson", "spearman"),
        loss="mse",
        adv_loss="mse",
    )
    values = np.linspace(0, 5, 20)
    assert compute_metrics(stsb, values, values**2) == {
        "pearson": pytest.approx(100 * pearsonr(values, values**2)[0]),
        "spearman": pytest.approx(100.0),
    }


def test_numpy_rankdata_matches_scipy_with_ties():
    from scipy.stats import rankdata as scipy_rankdata

    from mt_dnn.metrics import rankdata

    rng = np.random.default_rng(7)
    for _ in range(50):
        values = rng.integers(0, 6, size=int(rng.integers(1, 40))).astype(float)
        np.testing.assert_allclose(rankdata(values), scipy_rankdata(values))
