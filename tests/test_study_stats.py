"""The TAT study's statistics (experiments/tat_study/stats.py) on inputs solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scripts import load_script

stats = load_script("experiments/tat_study/stats.py", "tat_study_stats")

B = 200  # resamples: enough for every interval below, fast on two cores


# --- over seeds --------------------------------------------------------------


def test_mean_std_is_the_sample_std():
    assert stats.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sum of squares 2, / (3 - 1)
    mean, std = stats.mean_std([50.0, 75.0])
    assert mean == 62.5 and std == pytest.approx(np.sqrt(312.5))


def test_mean_std_of_one_seed_has_no_std():
    assert stats.mean_std([63.1]) == (63.1, None)
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_paired_differences_keep_only_seeds_both_have():
    method = {3: 30.0, 1: 10.0, 2: 20.0}
    baseline = {2: 15.0, 3: 26.0, 4: 0.0}
    assert stats.paired_differences(method, baseline) == {2: 5.0, 3: 4.0}
    assert list(stats.paired_differences(method, baseline)) == [2, 3]  # seed order
    assert stats.paired_differences({1: 1.0}, {2: 1.0}) == {}


# --- metrics -----------------------------------------------------------------


def test_metrics_in_percent_on_hand_solved_inputs():
    assert stats.accuracy([0, 1, 2, 2], [0, 1, 2, 0]) == 75.0
    gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    # centred: x = (-2,-1,0,1,2), y = (-2,-1,0,2,1): r = 9 / sqrt(10 * 10)
    assert stats.pearson([1.0, 2.0, 3.0, 5.0, 4.0], gold) == pytest.approx(90.0)
    assert stats.spearman([1.0, 2.0, 3.0, 5.0, 4.0], gold) == pytest.approx(90.0)
    squares = [1.0, 4.0, 9.0, 16.0, 25.0]  # monotone but not linear
    assert stats.spearman(squares, gold) == pytest.approx(100.0)
    assert stats.pearson(squares, gold) < 99.0


def test_a_constant_side_correlates_zero_without_warning():
    with np.errstate(all="raise"):
        assert stats.pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0
        assert stats.spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]) == 0.0


# --- bootstrap ---------------------------------------------------------------

GOLD = np.array([i % 3 for i in range(20)])


def wrong(gold, where):
    pred = gold.copy()
    pred[where] = (pred[where] + 1) % 3
    return pred


def test_identical_systems_give_zero_and_no_difference():
    pred = wrong(GOLD, slice(0, 7))
    ci = stats.paired_bootstrap(GOLD, pred, pred.copy(), n_resamples=B)
    assert (ci.difference, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert stats.verdict(ci.low, ci.high) == "no difference"
    scores = np.linspace(0.0, 5.0, 20) ** 2
    ci = stats.paired_bootstrap(np.arange(20.0), scores, scores.copy(), "pearson", n_resamples=B)
    assert (ci.difference, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_a_system_right_wherever_the_other_is_wrong_and_elsewhere_is_ahead():
    baseline = wrong(GOLD, slice(0, 10))  # wrong on half
    system = GOLD.copy()  # right on all of them and on the rest
    ci = stats.paired_bootstrap(GOLD, system, baseline, n_resamples=B)
    assert ci.difference == 50.0
    assert 0.0 < ci.low <= 50.0 <= ci.high <= 100.0
    assert stats.verdict(ci.low, ci.high) == "ahead"
    back = stats.paired_bootstrap(GOLD, baseline, system, n_resamples=B)
    assert back.difference == -50.0 and back.high < 0.0
    assert stats.verdict(back.low, back.high) == "behind"


def test_percentile_interval_of_a_two_example_set():
    # Per-example differences (1, 0): a resample's mean is 0, 50 or 100 points with
    # probability 1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles are 0 and 100.
    ci = stats.paired_bootstrap([0, 1], [0, 1], [0, 0], n_resamples=1000)
    assert (ci.difference, ci.low, ci.high) == (50.0, 0.0, 100.0)
    assert stats.verdict(ci.low, ci.high) == "no difference"


def test_bootstrap_is_reproducible_from_its_seed():
    rng = np.random.default_rng(5)
    system = rng.integers(0, 3, size=(2, 20))
    baseline = rng.integers(0, 3, size=(2, 20))
    first = stats.paired_bootstrap(GOLD, system, baseline, n_resamples=B, seed=7)
    assert stats.paired_bootstrap(GOLD, system, baseline, n_resamples=B, seed=7) == first
    other = stats.paired_bootstrap(GOLD, system, baseline, n_resamples=B, seed=8)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.difference == first.difference


def test_seeds_are_averaged_per_system():
    # system: seed 1 right everywhere (100), seed 2 right on half (50): mean 75;
    # baseline: one seed right on half (50). Difference 25.
    system = [GOLD, wrong(GOLD, slice(10, 20))]
    ci = stats.paired_bootstrap(GOLD, system, wrong(GOLD, slice(0, 10)), n_resamples=B)
    assert ci.difference == 25.0


@pytest.mark.parametrize("name", ["accuracy", "f1", "mcc", "pearson", "spearman"])
def test_named_metrics_score_blocks_of_resamples_as_one_call_per_resample_would(name):
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, size=50)
    system = rng.integers(0, 3, size=(3, 50))
    baseline = rng.integers(0, 3, size=(2, 50))
    metric = stats.METRICS[name]

    def one_at_a_time(pred, gold):  # a plain metric: 1-D in, float out
        return metric(pred, gold)

    # 50 resamples: this compares two computations of the same numbers, and the plain
    # path calls scipy once per seed and resample.
    block = stats.paired_bootstrap(gold, system, baseline, name, n_resamples=50, seed=3)
    plain = stats.paired_bootstrap(gold, system, baseline, one_at_a_time, n_resamples=50, seed=3)
    assert plain.difference == pytest.approx(block.difference)
    assert (plain.low, plain.high) == pytest.approx((block.low, block.high))


def test_metrics_of_a_2d_block_are_per_row():
    pred = np.array(
        [[1.0, 2.0, 3.0, 5.0, 4.0], [5.0, 4.0, 3.0, 2.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0]]
    )
    gold = np.tile(np.arange(1.0, 6.0), (3, 1))
    assert stats.pearson(pred, gold) == pytest.approx([90.0, -100.0, 0.0])
    assert stats.spearman(pred, gold) == pytest.approx([90.0, -100.0, 0.0])
    assert stats.accuracy(pred, gold) == pytest.approx([60.0, 20.0, 20.0])


def test_mcc_and_f1_by_hand_and_as_the_trainer_scores_them():
    from sklearn.metrics import f1_score, matthews_corrcoef

    from mt_dnn import metrics as trainer_metrics

    # tp 2, tn 1, fp 1, fn 1: MCC (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6; F1 2*2 / (2*2 + 1 + 1)
    pred, gold = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]
    assert stats.mcc(pred, gold) == pytest.approx(100.0 / 6)
    assert stats.f1(pred, gold) == pytest.approx(200.0 / 3)
    rng = np.random.default_rng(1)
    for k in (2, 3):
        gold = rng.integers(0, k, size=(4, 40))
        pred = np.where(rng.random((4, 40)) < 0.6, gold, rng.integers(0, k, size=(4, 40)))
        pred[3] = 0  # one class predicted: MCC 0, as scikit-learn
        want = [matthews_corrcoef(g, p) * 100.0 for p, g in zip(pred, gold, strict=True)]
        assert stats.mcc(pred, gold) == pytest.approx(want)
        trainer = [trainer_metrics.mcc(p, g) for p, g in zip(pred, gold, strict=True)]
        assert stats.mcc(pred, gold) == pytest.approx(trainer)
        if k == 2:
            want = [f1_score(g, p) * 100.0 for p, g in zip(pred, gold, strict=True)]
            assert stats.f1(pred, gold) == pytest.approx(want)
            trainer = [trainer_metrics.f1(p, g) for p, g in zip(pred, gold, strict=True)]
            assert stats.f1(pred, gold) == pytest.approx(trainer)
    assert stats.f1([0, 0], [0, 0]) == 0.0


def test_bootstrap_of_a_correlation():
    gold = np.arange(1.0, 6.0)
    baseline = np.array([1.0, 2.0, 3.0, 5.0, 4.0])  # Pearson 90
    ci = stats.paired_bootstrap(gold, gold, baseline, "pearson", n_resamples=B)
    assert ci.difference == pytest.approx(10.0)
    assert ci.low >= 0.0  # the system is perfect on every resample, the baseline at most
    with pytest.raises(ValueError, match="unknown metric"):
        stats.paired_bootstrap(gold, gold, baseline, "kendall", n_resamples=B)


def test_bootstrap_rejects_misaligned_predictions():
    with pytest.raises(ValueError, match="system"):
        stats.paired_bootstrap(GOLD, GOLD[:5], GOLD, n_resamples=B)
    with pytest.raises(ValueError, match="baseline"):
        stats.paired_bootstrap(GOLD, GOLD, np.zeros((2, 3)), n_resamples=B)


def test_resampling_seeds_too_widens_an_interval_one_seed_reverses():
    # 400 examples; the baseline's two seeds are right on the first half. The system's
    # seed 1 is right everywhere (+50), its seed 2 only on the first 30% (-20): +15 on
    # average. Over examples alone that is "ahead"; a draw of seed 2 twice (1 in 4)
    # gives -20, so with the seeds drawn too the interval crosses zero.
    gold = np.zeros(400, dtype=int)
    half = np.where(np.arange(400) < 200, 0, 1)
    baseline = [half, half]
    system = [gold.copy(), np.where(np.arange(400) < 120, 0, 1)]
    examples = stats.paired_bootstrap(gold, system, baseline, n_resamples=B)
    both = stats.paired_bootstrap(gold, system, baseline, n_resamples=B, resample_seeds=True)
    assert examples.difference == both.difference == pytest.approx(15.0)
    assert stats.verdict(examples.low, examples.high) == "ahead"
    assert both.low < -10.0 and both.high > 40.0
    assert stats.verdict(both.low, both.high) == "no difference"


@pytest.mark.parametrize("name", ["accuracy", "pearson"])
def test_resampling_identical_seeds_gives_the_examples_only_interval(name):
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, size=60)
    system, baseline = rng.integers(0, 3, size=60), rng.integers(0, 3, size=60)
    examples = stats.paired_bootstrap(gold, system, baseline, name, n_resamples=B, seed=4)
    both = stats.paired_bootstrap(
        gold, [system] * 3, [baseline] * 3, name, n_resamples=B, seed=4, resample_seeds=True
    )
    assert both.difference == pytest.approx(examples.difference)
    assert (both.low, both.high) == pytest.approx((examples.low, examples.high))


def test_resampling_seeds_scores_named_metrics_as_a_plain_metric_would():
    rng = np.random.default_rng(2)
    gold = rng.normal(size=40)
    system, baseline = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))

    def one_at_a_time(pred, gold):
        return stats.pearson(pred, gold)

    kw = {"n_resamples": 50, "seed": 3, "resample_seeds": True}
    block = stats.paired_bootstrap(gold, system, baseline, "pearson", **kw)
    plain = stats.paired_bootstrap(gold, system, baseline, one_at_a_time, **kw)
    assert (plain.difference, plain.low, plain.high) == pytest.approx(
        (block.difference, block.low, block.high)
    )


def test_resampling_seeds_needs_paired_seeds():
    with pytest.raises(ValueError, match="pairs seeds: system has 2 seed"):
        stats.paired_bootstrap(GOLD, [GOLD, GOLD], GOLD, n_resamples=B, resample_seeds=True)


def test_verdict_needs_the_interval_to_exclude_zero():
    assert stats.verdict(0.1, 2.0) == "ahead"
    assert stats.verdict(-2.0, -0.1) == "behind"
    assert stats.verdict(-1.0, 1.0) == "no difference"
    assert stats.verdict(0.0, 1.0) == "no difference"  # touching zero is not excluding it
    assert stats.verdict(-1.0, 0.0) == "no difference"
    with pytest.raises(ValueError):
        stats.verdict(1.0, -1.0)


# --- by difficulty -----------------------------------------------------------


def test_default_buckets_are_half_open_with_a_closed_last_one():
    assert stats.bucket_labels() == ["[0-50)", "[50-80)", "[80-95)", "[95-100]"]


def test_buckets_count_edges_into_the_upper_bucket_and_100_into_the_last():
    difficulty = {"a": 0, "b": 49, "c": 50, "d": 79, "e": 80, "f": 94, "g": 95, "h": 100, "x": 7}
    correct = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0, "e": 0.0, "f": 0.5, "g": 1.0, "h": 1.0}
    buckets = stats.accuracy_by_bucket(correct, difficulty)
    assert [(b.label, b.count, b.accuracy) for b in buckets] == [
        ("[0-50)", 2, 50.0),
        ("[50-80)", 2, 100.0),
        ("[80-95)", 2, 25.0),  # 0 and a seed-averaged 0.5
        ("[95-100]", 2, 100.0),
    ]  # "x" has a score but no prediction: ignored


def test_buckets_are_a_parameter_and_an_empty_one_has_no_accuracy():
    difficulty = {"a": 10, "b": 20, "c": 100}
    correct = {"a": 1.0, "b": 0.0, "c": 1.0}
    buckets = stats.accuracy_by_bucket(correct, difficulty, edges=(0, 30, 60, 100))
    assert [(b.label, b.count, b.accuracy) for b in buckets] == [
        ("[0-30)", 2, 50.0),
        ("[30-60)", 0, None),
        ("[60-100]", 1, 100.0),
    ]


def test_buckets_reject_missing_uids_scores_out_of_range_and_bad_edges():
    with pytest.raises(ValueError, match="no difficulty score"):
        stats.accuracy_by_bucket({"a": 1.0, "z": 1.0}, {"a": 10})
    with pytest.raises(ValueError, match="outside"):
        stats.accuracy_by_bucket({"a": 1.0}, {"a": 101})
    with pytest.raises(ValueError, match="increasing"):
        stats.bucket_labels((0, 50, 50, 100))
    with pytest.raises(ValueError, match="increasing"):
        stats.bucket_labels((0,))
