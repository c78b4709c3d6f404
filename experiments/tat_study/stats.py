"""Statistics for the TAT study's report: pure functions of numbers, no files.

Metrics are percentages, as the trainer records them (accuracy 63.1, Pearson
85.1 for r = 0.851).

Over seeds
    :func:`mean_std` gives the mean and the *sample* standard deviation (ddof=1;
    undefined, ``None``, for one seed). :func:`paired_differences` pairs a method
    with a reference by seed and keeps only the seeds both have.

Over evaluation examples
    :func:`paired_bootstrap` gives a percentile confidence interval of
    ``metric(system) - metric(baseline)``. Each resample draws example indices
    with replacement, and the *same* indices score both systems. With several
    seeds, each seed's predictions are scored on the resampled examples and the
    scores are averaged over seeds, separately for each system; the statistic is
    the difference of those averages. This works for any metric of a set of
    examples (Pearson and Spearman are not means of per-example scores). For
    accuracy it equals the mean over resampled examples of the seed-averaged
    per-example correctness, and is computed that way (one gather per
    resample). The interval reflects example sampling only; seed-to-seed
    variation is what :func:`mean_std` and the per-seed differences show.

    With ``resample_seeds=True`` each resample also draws the paired seeds with
    replacement (a two-level bootstrap: seeds, then examples), and the statistic
    is the mean of the drawn seeds' differences on the resampled examples. A
    difference that one seed carries and another reverses then gets an interval
    across zero. The example draws are the same as without it (the seed draws
    come from a second generator), so with identical seeds the two intervals are
    equal.

    :func:`verdict` calls a system "ahead" only when the whole interval is above
    zero, "behind" when it is wholly below, and "no difference" otherwise
    (an interval touching zero included).

By difficulty
    :func:`accuracy_by_bucket` splits examples by a per-example score (for MNLI
    the number of correct responses out of 100) at ``edges``: bucket ``i`` holds
    scores ``edges[i] <= s < edges[i + 1]``, and the last bucket also holds its
    upper edge, so the default ``(0, 50, 80, 95, 100)`` gives
    ``[0, 50) [50, 80) [80, 95) [95, 100]``. A score outside
    ``[edges[0], edges[-1]]`` is an error.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    "DEFAULT_EDGES",
    "METRICS",
    "BootstrapCI",
    "Bucket",
    "accuracy",
    "accuracy_by_bucket",
    "bucket_labels",
    "f1",
    "mcc",
    "mean_std",
    "paired_bootstrap",
    "paired_differences",
    "pearson",
    "spearman",
    "verdict",
]

Metric = Callable[[np.ndarray, np.ndarray], float]
DEFAULT_EDGES: tuple[float, ...] = (0, 50, 80, 95, 100)


# --- metrics of a set of examples: (pred, gold) -> percent ------------------
#
# Each takes 1-D ``pred`` and ``gold`` and returns a float, or 2-D arrays (one
# set of examples per row, e.g. one bootstrap resample per row) and returns one
# score per row: the bootstrap scores many resamples in one call.


def _per_row(scores: np.ndarray, pred) -> float | np.ndarray:
    return float(scores[0]) if np.ndim(pred) == 1 else scores


def accuracy(pred, gold):
    return _per_row(np.mean(np.atleast_2d(pred) == np.atleast_2d(gold), axis=1) * 100.0, pred)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.broadcast_arrays(x, y)
    # A constant row has no correlation; score it 0 as mt_dnn.metrics does,
    # instead of scipy's NaN and warning (a bootstrap resample can be constant).
    ok = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0)
    r = np.zeros(len(x))
    if ok.any():
        r[ok] = scipy_stats.pearsonr(x[ok], y[ok], axis=1).statistic
    return r * 100.0


def pearson(pred, gold):
    x = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    y = np.atleast_2d(np.asarray(gold, dtype=np.float64))
    return _per_row(_pearson_rows(x, y), pred)


def spearman(pred, gold):
    """Pearson correlation of the ranks, ties averaged (as scipy.stats.spearmanr)."""
    x = scipy_stats.rankdata(np.atleast_2d(pred), axis=1)
    y = scipy_stats.rankdata(np.atleast_2d(gold), axis=1)
    return _per_row(_pearson_rows(x, y), pred)


def f1(pred, gold):
    """F1 of class 1 (GLUE's MRPC); 0 when no row is predicted or gold positive."""
    p, g = np.atleast_2d(pred) == 1, np.atleast_2d(gold) == 1
    tp = np.sum(p & g, axis=1)
    denominator = np.sum(p, axis=1) + np.sum(g, axis=1)  # = 2tp + fp + fn
    scores = np.divide(2.0 * tp, denominator, out=np.zeros(len(p)), where=denominator > 0)
    return _per_row(scores * 100.0, pred)


def mcc(pred, gold):
    """Matthews correlation (GLUE's CoLA), multiclass form as scikit-learn and
    ``mt_dnn.metrics.mcc``; 0 when either side has a single class."""
    p, g = np.broadcast_arrays(np.atleast_2d(pred), np.atleast_2d(gold))
    n = p.shape[1]
    classes = np.union1d(p, g)
    t_sum = np.stack([np.sum(g == c, axis=1) for c in classes], axis=1).astype(np.float64)
    p_sum = np.stack([np.sum(p == c, axis=1) for c in classes], axis=1).astype(np.float64)
    cov_tp = np.sum(p == g, axis=1) * float(n) - np.sum(t_sum * p_sum, axis=1)
    cov_pp = float(n) ** 2 - np.sum(p_sum * p_sum, axis=1)
    cov_tt = float(n) ** 2 - np.sum(t_sum * t_sum, axis=1)
    denominator = np.sqrt(cov_tt * cov_pp)
    scores = np.divide(cov_tp, denominator, out=np.zeros(len(p)), where=denominator > 0)
    return _per_row(scores * 100.0, pred)


METRICS: dict[str, Callable] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


# --- over seeds --------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1); the std is ``None`` for one value."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a non-empty list of numbers, got shape {arr.shape}")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return float(np.mean(arr)), std


def paired_differences(
    system: Mapping[int, float], baseline: Mapping[int, float]
) -> dict[int, float]:
    """``{seed: system[seed] - baseline[seed]}`` for the seeds both have, in seed order."""
    return {seed: float(system[seed] - baseline[seed]) for seed in sorted(system.keys() & baseline)}


# --- over examples -----------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    """Observed difference (system minus baseline) and its percentile interval."""

    difference: float
    low: float
    high: float
    confidence: float
    n_resamples: int


def _seed_matrix(preds, n: int, name: str) -> np.ndarray:
    """Predictions as (seeds, examples): one seed may be passed as a flat list."""
    arr = np.asarray(preds)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != n:
        raise ValueError(
            f"{name}: expected predictions of shape (seeds, {n}) or ({n},), got {arr.shape}"
        )
    return arr


def paired_bootstrap(
    gold,
    system,
    baseline,
    metric: str | Metric = "accuracy",
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    resample_seeds: bool = False,
) -> BootstrapCI:
    """Paired bootstrap interval of ``metric(system) - metric(baseline)`` over examples.

    ``gold`` has one value per example; ``system`` and ``baseline`` are one
    prediction list per seed (or a flat list for one seed), aligned with
    ``gold``. ``metric`` is a name in :data:`METRICS` (scored a block of
    resamples per call) or any function ``(pred, gold) -> float`` of 1-D arrays
    (called once per seed and resample). The resampled indices come from
    ``numpy.random.default_rng(seed)``, so the same call gives the same interval.
    ``resample_seeds`` draws the seeds too (module docstring); it pairs
    ``system[j]`` with ``baseline[j]``, so both need the same number of seeds.
    """
    gold = np.asarray(gold)
    n = len(gold)
    if gold.ndim != 1 or n == 0:
        raise ValueError(f"gold: expected a non-empty 1-D list, got shape {gold.shape}")
    sys_preds = _seed_matrix(system, n, "system")
    base_preds = _seed_matrix(baseline, n, "baseline")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(metric, str) and metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; valid: {sorted(METRICS)}")
    if resample_seeds and len(sys_preds) != len(base_preds):
        raise ValueError(
            f"resample_seeds pairs seeds: system has {len(sys_preds)} seed(s), "
            f"baseline {len(base_preds)}"
        )

    # block_difference(idx): system minus baseline, seed-averaged, on each row of
    # resampled example indices ``idx`` (resamples, n).
    if metric == "accuracy":
        # A mean over examples: difference each example once, then resample.
        per_example = (sys_preds == gold).mean(axis=0) - (base_preds == gold).mean(axis=0)

        def block_difference(idx: np.ndarray) -> np.ndarray:
            return per_example[idx].mean(axis=1) * 100.0

    elif isinstance(metric, str):
        score = METRICS[metric]

        def block_difference(idx: np.ndarray) -> np.ndarray:
            gold_rows = gold[idx]
            s = np.mean([score(p[idx], gold_rows) for p in sys_preds], axis=0)
            return s - np.mean([score(p[idx], gold_rows) for p in base_preds], axis=0)

    else:
        plain = metric

        def block_difference(idx: np.ndarray) -> np.ndarray:
            s = np.mean([[plain(p[i], gold[i]) for i in idx] for p in sys_preds], axis=0)
            return s - np.mean([[plain(p[i], gold[i]) for i in idx] for p in base_preds], axis=0)

    observed = float(block_difference(np.arange(n)[None, :])[0])
    if resample_seeds:
        block_difference = _seed_resampled(gold, sys_preds, base_preds, metric, seed)
    rng = np.random.default_rng(seed)
    diffs = []
    block = max(1, min(n_resamples, 2_000_000 // n))  # bounds the (resamples, n) index block
    for start in range(0, n_resamples, block):
        diffs.append(
            block_difference(rng.integers(0, n, size=(min(block, n_resamples - start), n)))
        )
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.concatenate(diffs), [tail, 100.0 - tail])
    return BootstrapCI(observed, float(low), float(high), confidence, n_resamples)


def _seed_resampled(
    gold: np.ndarray,
    sys_preds: np.ndarray,
    base_preds: np.ndarray,
    metric: str | Metric,
    seed: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """``idx (resamples, n) -> (resamples,)``: the mean over seeds drawn with replacement
    of each paired seed's difference on the resampled examples."""
    pairs = list(zip(sys_preds, base_preds, strict=True))
    if metric == "accuracy":
        per_example = [(s == gold).astype(np.float64) - (b == gold) for s, b in pairs]

        def per_seed(idx: np.ndarray) -> np.ndarray:
            return np.stack([d[idx].mean(axis=1) * 100.0 for d in per_example])

    elif isinstance(metric, str):
        score = METRICS[metric]

        def per_seed(idx: np.ndarray) -> np.ndarray:
            gold_rows = gold[idx]
            return np.stack([score(s[idx], gold_rows) - score(b[idx], gold_rows) for s, b in pairs])

    else:
        plain = metric

        def per_seed(idx: np.ndarray) -> np.ndarray:
            return np.array(
                [[plain(s[i], gold[i]) - plain(b[i], gold[i]) for i in idx] for s, b in pairs]
            )

    # A generator of its own, so that the example draws are those of the plain bootstrap.
    seed_rng = np.random.default_rng([seed, 1])
    k = len(pairs)

    def block_difference(idx: np.ndarray) -> np.ndarray:
        counts = seed_rng.multinomial(k, np.full(k, 1.0 / k), size=len(idx))  # (resamples, k)
        return (counts * per_seed(idx).T).sum(axis=1) / k

    return block_difference


def verdict(low: float, high: float) -> str:
    """The interval's verdict: "ahead" above zero, "behind" below, else "no difference"."""
    if low > high:
        raise ValueError(f"interval low {low} > high {high}")
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "no difference"


# --- by difficulty -----------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    label: str
    count: int
    accuracy: float | None  # percent; None for an empty bucket


def _check_edges(edges: Sequence[float]) -> None:
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"bucket edges must be >= 2 strictly increasing numbers, got {edges}")


def bucket_labels(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """``["[0-50)", ..., "[95-100]"]``: half-open buckets, the last one closed."""
    _check_edges(edges)
    last = len(edges) - 2
    return [
        f"[{edges[i]:g}-{edges[i + 1]:g}{']' if i == last else ')'}" for i in range(len(edges) - 1)
    ]


def accuracy_by_bucket(
    correct: Mapping[str, float],
    difficulty: Mapping[str, float],
    edges: Sequence[float] = DEFAULT_EDGES,
) -> list[Bucket]:
    """Accuracy and example count per difficulty bucket (rule in the module docstring).

    ``correct`` maps uid -> correctness in [0, 1] (1/0 for one seed; the
    seed-averaged correctness for several, so bucket accuracy is the mean of the
    seeds' bucket accuracies). ``difficulty`` maps uid -> score; every uid of
    ``correct`` must have one (uids only in ``difficulty`` are ignored).
    """
    labels = bucket_labels(edges)
    missing = [uid for uid in correct if uid not in difficulty]
    if missing:
        raise ValueError(
            f"{len(missing)} uid(s) have no difficulty score, e.g. {missing[:3]}; "
            "is it the right difficulty file?"
        )
    sums = [0.0] * len(labels)
    counts = [0] * len(labels)
    for uid, value in correct.items():
        score = difficulty[uid]
        if not edges[0] <= score <= edges[-1]:
            raise ValueError(f"uid {uid}: difficulty {score} outside [{edges[0]}, {edges[-1]}]")
        i = min(bisect.bisect_right(edges, score) - 1, len(labels) - 1)
        sums[i] += value
        counts[i] += 1
    return [
        Bucket(label, count, total / count * 100.0 if count else None)
        for label, count, total in zip(labels, counts, sums, strict=True)
    ]
