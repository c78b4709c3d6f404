"""MultiTaskBatchSampler: batch counts per mix, coverage, determinism, padding, sharding, resume."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from data_utils.sampler import MultiTaskBatchSampler, padding_fraction

BS = 8


def make_lengths(sizes, seed=0):
    """Token counts with a long-tailed spread, roughly like GLUE sentence pairs."""
    rng = np.random.default_rng(seed)
    return [np.clip(rng.lognormal(3.5, 0.5, n), 5, 256).astype(int).tolist() for n in sizes]


SIZES = (400, 100, 37)
LENGTHS = make_lengths(SIZES)


def epoch(sampler, e):
    sampler.set_epoch(e)
    return list(sampler)


def task_counts(batches):
    counts = Counter(t for t, _ in batches)
    return [counts[t] for t in range(len(SIZES))]


def test_proportional_uses_every_example_exactly_once():
    sampler = MultiTaskBatchSampler(LENGTHS, BS, seed=3)
    batches = epoch(sampler, 0)
    assert task_counts(batches) == [math.ceil(n / BS) for n in SIZES] == [50, 13, 5]
    assert len(sampler) == len(batches)
    for t, n in enumerate(SIZES):
        seen = sorted(i for task, batch in batches if task == t for i in batch)
        assert seen == list(range(n))
    assert all(len(batch) <= BS for _, batch in batches)
    # Batches of different tasks are interleaved, not grouped by task.
    assert {t for t, _ in batches[:10]} != {batches[0][0]}


def test_temperature_counts_follow_size_power():
    temperature = 2.0
    sampler = MultiTaskBatchSampler(LENGTHS, BS, mix="temperature", temperature=temperature)
    total = sum(math.ceil(n / BS) for n in SIZES)
    batches = epoch(sampler, 0)
    counts = task_counts(batches)
    assert sum(counts) == total == len(sampler)
    weights = np.array(SIZES) ** (1 / temperature)
    expected = total * weights / weights.sum()
    assert np.all(np.abs(np.array(counts) - expected) < 1)
    # Up- and down-sampled tasks get full batches; the small task repeats examples.
    assert all(len(batch) == BS for _, batch in batches)
    small = Counter(i for t, batch in batches if t == 2 for i in batch)
    assert sum(small.values()) == counts[2] * BS > SIZES[2]
    assert max(small.values()) - min(small.values()) <= 1  # chained permutations
    big = [i for t, batch in batches if t == 0 for i in batch]
    assert len(big) == len(set(big)) == counts[0] * BS < SIZES[0]  # a random subset


def test_temperature_one_is_proportional_and_uniform_is_equal():
    proportional = MultiTaskBatchSampler(LENGTHS, BS).batch_counts
    assert MultiTaskBatchSampler(LENGTHS, BS, mix="temperature").batch_counts == proportional
    uniform = MultiTaskBatchSampler(LENGTHS, BS, mix="uniform")
    assert sum(uniform.batch_counts) == sum(proportional)
    assert max(uniform.batch_counts) - min(uniform.batch_counts) <= 1
    assert task_counts(epoch(uniform, 0)) == uniform.batch_counts


def test_ratio_gives_aux_tasks_a_share_of_the_main_task():
    sampler = MultiTaskBatchSampler(LENGTHS, BS, ratio=0.3)
    batches = epoch(sampler, 0)
    counts = task_counts(batches)
    assert counts[0] == 50  # the main task is used exactly once
    assert sorted(i for t, b in batches if t == 0 for i in b) == list(range(SIZES[0]))
    assert counts[1:] == [11, 4]  # int(0.3 * 50) = 15 split 100:37 -> 10.9, 4.1
    # Capped at what the auxiliary tasks have, as mt-dnn.
    capped = MultiTaskBatchSampler(LENGTHS, BS, ratio=10.0)
    assert capped.batch_counts == [50, 13, 5]


def test_same_seed_same_batches_and_each_epoch_reshuffles():
    a = MultiTaskBatchSampler(LENGTHS, BS, seed=7)
    b = MultiTaskBatchSampler(LENGTHS, BS, seed=7)
    assert epoch(a, 0) == epoch(b, 0)
    assert epoch(a, 1) == epoch(b, 1)
    assert epoch(a, 0) != epoch(a, 1)
    assert epoch(a, 0) != epoch(MultiTaskBatchSampler(LENGTHS, BS, seed=8), 0)
    # Batch contents (not just their order) change between epochs.
    assert {tuple(b) for _, b in epoch(a, 0)} != {tuple(b) for _, b in epoch(a, 1)}


def test_iterating_again_without_set_epoch_is_an_error():
    sampler = MultiTaskBatchSampler(LENGTHS, BS)
    epoch(sampler, 0)
    with pytest.raises(RuntimeError, match="set_epoch"):
        list(sampler)


def test_group_by_length_reduces_padding():
    lengths = make_lengths((2000, 800), seed=1)
    flat = {0: lengths[0], 1: lengths[1]}

    def pad(group):
        sampler = MultiTaskBatchSampler(lengths, 32, seed=0, group_by_length=group)
        fractions = []
        for e in range(3):
            batches = epoch(sampler, e)
            for t in (0, 1):
                fractions.append(padding_fraction([b for task, b in batches if task == t], flat[t]))
        return float(np.mean(fractions))

    grouped, random = pad(True), pad(False)
    assert random > 0.25
    assert grouped < random / 4


def test_group_by_length_still_covers_every_example():
    batches = epoch(MultiTaskBatchSampler(LENGTHS, BS, group_by_length=True), 0)
    for t, n in enumerate(SIZES):
        assert sorted(i for task, b in batches if task == t for i in b) == list(range(n))


@pytest.mark.parametrize("world_size", [2, 3, 4, 6])  # W=6: tails of 4 and 5 are merged
def test_ranks_split_every_global_batch_without_overlap(world_size):
    one = MultiTaskBatchSampler(LENGTHS, BS, seed=5, world_size=world_size)
    full = one.epoch_batches(2)
    samplers = [
        MultiTaskBatchSampler(LENGTHS, BS, seed=5, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    shards = [epoch(s, 2) for s in samplers]
    # Every rank yields one slice of every global batch, in the same order, same task.
    assert {len(shard) for shard in shards} == {len(full)} == {len(samplers[0])}
    for i, (task, batch) in enumerate(full):
        slices = [shard[i] for shard in shards]
        assert {t for t, _ in slices} == {task}
        together = [j for _, part in slices for j in part]
        assert sorted(together) == sorted(batch)  # disjoint, and the whole global batch
        assert all(len(part) >= 1 for _, part in slices)
    # Each example of each task exactly once per epoch (proportional mix), over all ranks.
    for t, n in enumerate(SIZES):
        seen = [j for shard in shards for task, part in shard if task == t for j in part]
        assert sorted(seen) == list(range(n))
    # A short last batch (fewer examples than ranks) joins the batch before it.
    short = [len(b) for _, b in full if len(b) < world_size]
    assert not short
    if world_size == 6:
        assert max(len(b) for _, b in full) > BS
    # The same task mixture, batch for batch, as one process when no tail is merged.
    if world_size <= 4:
        assert full == MultiTaskBatchSampler(LENGTHS, BS, seed=5).epoch_batches(2)


def test_global_size_weighs_uneven_slices():
    samplers = [MultiTaskBatchSampler(LENGTHS, BS, seed=2, rank=r, world_size=3) for r in range(3)]
    for sampler in samplers:
        sampler.set_epoch(0)
    for slices in zip(*samplers, strict=True):
        sizes = {s.global_size for s in samplers}
        assert len(sizes) == 1
        (size,) = sizes
        assert sum(len(part) for _, part in slices) == size
        weights = [len(part) * 3 / size for _, part in slices]
        assert sum(weights) == pytest.approx(3.0)


def test_world_size_needs_a_batch_and_tasks_as_large_as_it():
    with pytest.raises(ValueError, match="smaller than the world size"):
        MultiTaskBatchSampler(LENGTHS, 2, world_size=4)
    with pytest.raises(ValueError, match="fewer examples than the world size"):
        MultiTaskBatchSampler([[5] * 10, [5] * 2], 4, world_size=3)


def test_resume_mid_epoch_yields_exactly_the_remaining_batches():
    reference = epoch(MultiTaskBatchSampler(LENGTHS, BS, seed=11, world_size=2, rank=1), 3)
    sampler = MultiTaskBatchSampler(LENGTHS, BS, seed=11, world_size=2, rank=1)
    sampler.set_epoch(3)
    it = iter(sampler)
    first = [next(it) for _ in range(5)]
    state = json.loads(json.dumps(sampler.state_dict()))  # must survive JSON
    assert state == {"epoch": 3, "position": 5, "seed": 11}

    resumed = MultiTaskBatchSampler(LENGTHS, BS, seed=11, world_size=2, rank=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # the trainer's usual call must not rewind the loaded position
    rest = list(resumed)
    assert first + rest == reference
    assert resumed.state_dict()["position"] == len(reference)
    # The next epoch starts from its beginning.
    assert epoch(resumed, 4) == epoch(
        MultiTaskBatchSampler(LENGTHS, BS, seed=11, world_size=2, rank=1), 4
    )


def test_resume_without_set_epoch_and_seed_mismatch():
    sampler = MultiTaskBatchSampler(LENGTHS, BS, seed=1)
    sampler.load_state_dict({"epoch": 2, "position": 4, "seed": 1})
    assert list(sampler) == MultiTaskBatchSampler(LENGTHS, BS, seed=1).rank_batches(2)[4:]
    with pytest.raises(ValueError, match="seed"):
        sampler.load_state_dict({"epoch": 2, "position": 4, "seed": 2})
    with pytest.raises(ValueError, match="position"):
        sampler.load_state_dict({"epoch": 2, "position": 10_000, "seed": 1})


def test_bad_arguments_name_the_valid_choices():
    with pytest.raises(ValueError, match="proportional"):
        MultiTaskBatchSampler(LENGTHS, BS, mix="temp")
    with pytest.raises(ValueError, match="rank"):
        MultiTaskBatchSampler(LENGTHS, BS, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        MultiTaskBatchSampler(LENGTHS, 0)
