"""Multi-task batch sampler: every batch holds one task; batches of all tasks are mixed.

Per epoch, for each task ``t`` with ``n_t`` examples and batch size ``B``:

1. **How many batches** (``mix``):

   - ``proportional`` (default, as mt-dnn): ``ceil(n_t / B)`` batches, i.e.
     every example of every task exactly once per epoch.
   - ``temperature``: batch counts proportional to ``n_t ** (1 / temperature)``;
     the epoch keeps the proportional total ``sum_t ceil(n_t / B)``.
   - ``uniform``: equal batch counts (temperature -> infinity), same total.

   Counts are apportioned by largest remainder, and every non-empty task gets
   at least one batch. With ``ratio > 0`` (mt-dnn ``--ratio``) the FIRST task
   is the main task and keeps ``ceil(n_0 / B)`` batches; the auxiliary tasks
   together get ``int(ratio * that)`` batches, capped at their one-pass total
   (as mt-dnn), split among them by the ``mix`` weights (by size for the
   default ``proportional``).

2. **Which examples**: a task whose count equals its one-pass count
   ``ceil(n_t / B)`` uses every example once (its last batch may be short).
   Otherwise batches are full: fewer batches draw a random subset, more
   batches chain fresh random permutations (each example repeats at most once
   more than any other).

3. **Grouping** (``group_by_length``): the task's shuffled indices are cut into
   chunks of ``50 * B``, each chunk is sorted by length and cut into batches;
   batches of similar length need little padding, yet each batch is still a
   random draw. Finally all tasks' batches are shuffled together.

Unlike mt-dnn, which forms the batches once, batches are re-formed every epoch
from ``(seed, epoch)`` only, with local numpy generators: call
:meth:`set_epoch` before each epoch. Same seed and epoch give the same
batches on any machine and any instance.

Data parallel: ``batch_size`` is the global batch. Every rank forms the same
epoch of global batches and rank ``r`` of ``world_size`` ``W`` takes the slice
``batch[r::W]`` of each, so the ranks never overlap, together see each global
batch exactly once, and follow the task mixture of one process step for step
(the slices of a length-grouped batch have similar lengths, so no rank waits on
another's padding). A task's last batch with fewer than ``W`` examples is merged
into the batch before it, so every rank gets at least one example of every
batch; :attr:`global_size` is the size of the global batch the last yielded
slice came from (the trainer weighs unequal slices by it).

Resume: :meth:`state_dict` records how many batches this rank has yielded in
the current epoch; after :meth:`load_state_dict` (then ``set_epoch`` with the
same epoch, or none), iteration continues with exactly the batches an
uninterrupted run would have yielded next. The position counts a batch as
consumed as soon as it is yielded, so save the state after the step on that
batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["MIXES", "MultiTaskBatchSampler", "padding_fraction"]

MIXES = ("proportional", "temperature", "uniform")
CHUNK_BATCHES = 50  # group_by_length sorts chunks of this many batches


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder).

    Every positive weight gets at least 1 when ``total`` allows, taken from the
    largest counts, so no task silently disappears from an epoch.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(w)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    # Ties go to the lower task index (stable sort), so the result is deterministic.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    for t in np.flatnonzero((w > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] <= 1:
            break
        counts[donor] -= 1
        counts[t] = 1
    return [int(c) for c in counts]


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Fraction of the padded [B, T] cells that are padding, over all ``batches``."""
    all_lengths = np.asarray(lengths)
    cells = real = 0
    for batch in batches:
        lens = all_lengths[np.asarray(batch, dtype=np.int64)]
        cells += len(lens) * int(lens.max())
        real += int(lens.sum())
    return 1.0 - real / cells if cells else 0.0


class MultiTaskBatchSampler:
    """Yields ``(task_index, [example indices])``; see the module docstring.

    ``lengths[t][i]`` is the token count of example ``i`` of task ``t``.
    """

    def __init__(
        self,
        lengths: Sequence[Sequence[int]],
        batch_size: int,
        seed: int = 0,
        mix: str = "proportional",
        temperature: float = 1.0,
        ratio: float = 0.0,
        group_by_length: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if mix not in MIXES:
            raise ValueError(f"mix {mix!r} is not one of {list(MIXES)}")
        if not lengths:
            raise ValueError("lengths is empty: no tasks to sample from")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if ratio < 0:
            raise ValueError(f"ratio must be >= 0, got {ratio}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        if batch_size < world_size:
            raise ValueError(
                f"the global batch_size {batch_size} is smaller than the world size "
                f"{world_size}: each rank needs at least one example per batch"
            )
        small = [t for t, task_lengths in enumerate(lengths) if 0 < len(task_lengths) < world_size]
        if small:
            raise ValueError(
                f"task(s) {small} have fewer examples than the world size {world_size}"
            )
        self.lengths = [np.asarray(task_lengths, dtype=np.int64) for task_lengths in lengths]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.mix = mix
        self.temperature = float(temperature)
        self.ratio = float(ratio)
        self.group_by_length = group_by_length
        self.rank = rank
        self.world_size = world_size
        self.sizes = [len(task_lengths) for task_lengths in self.lengths]
        if sum(self.sizes) == 0:
            raise ValueError("every task is empty")
        self.batch_counts = self._batch_counts()
        total = sum(self.batch_counts)
        if total == 0:
            raise ValueError(f"no batches to yield (task sizes {self.sizes}, ratio {ratio})")
        # A one-pass task's short tail (1..W-1 examples) is merged into the batch before it.
        merged = sum(
            1
            for t, count in enumerate(self.batch_counts)
            if count > 1
            and count == self._one_pass(t)
            and 0 < self.sizes[t] % batch_size < world_size
        )
        self._len = total - merged
        self.global_size = 0
        self.epoch = 0
        self.position = 0
        self._resumed = False

    # -- how many batches per task ------------------------------------------------
    def _one_pass(self, t: int) -> int:
        return math.ceil(self.sizes[t] / self.batch_size)

    def _weights(self, tasks: Sequence[int]) -> list[float]:
        sizes = [self.sizes[t] for t in tasks]
        if self.mix == "proportional":
            return [float(n) for n in sizes]
        if self.mix == "uniform":
            return [1.0 if n else 0.0 for n in sizes]
        return [n ** (1.0 / self.temperature) for n in sizes]

    def _batch_counts(self) -> list[int]:
        n_tasks = len(self.sizes)
        one_pass = [self._one_pass(t) for t in range(n_tasks)]
        if self.ratio > 0:
            aux = list(range(1, n_tasks))
            aux_total = min(int(self.ratio * one_pass[0]), sum(one_pass[1:]))
            return [one_pass[0], *_apportion(aux_total, self._weights(aux))]
        if self.mix == "proportional":
            return one_pass
        return _apportion(sum(one_pass), self._weights(range(n_tasks)))

    def __len__(self) -> int:
        """Batches (slices of global batches) this rank yields per epoch: the same on every rank."""
        return self._len

    # -- forming the epoch --------------------------------------------------------
    def _task_batches(self, t: int, rng: np.random.Generator) -> list[list[int]]:
        n, count, bs = self.sizes[t], self.batch_counts[t], self.batch_size
        if count == 0 or n == 0:
            return []
        if count == self._one_pass(t):
            indices = rng.permutation(n)
        else:
            needed = count * bs
            passes = math.ceil(needed / n)
            indices = np.concatenate([rng.permutation(n) for _ in range(passes)])[:needed]
        if self.group_by_length:
            chunk = CHUNK_BATCHES * bs
            lengths = self.lengths[t]
            parts = []
            for start in range(0, len(indices), chunk):
                part = indices[start : start + chunk]
                parts.append(part[np.argsort(lengths[part], kind="stable")])
            indices = np.concatenate(parts)
        batches = [indices[i : i + bs].tolist() for i in range(0, len(indices), bs)]
        if len(batches) > 1 and len(batches[-1]) < self.world_size:
            batches[-2].extend(batches.pop())  # every rank needs an example of each batch
        return batches

    def epoch_batches(self, epoch: int | None = None) -> list[tuple[int, list[int]]]:
        """All batches of ``epoch`` (default: the current one), for every rank, in order."""
        epoch = self.epoch if epoch is None else epoch
        batches: list[tuple[int, list[int]]] = []
        for t in range(len(self.sizes)):
            # One generator per task: a task's batches do not depend on the other tasks.
            rng = np.random.default_rng([self.seed, epoch, 0, t])
            batches.extend((t, batch) for batch in self._task_batches(t, rng))
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(batches))
        return [batches[i] for i in order]

    def rank_batches(self, epoch: int | None = None) -> list[tuple[int, list[int]]]:
        """This rank's slice ``batch[rank::world_size]`` of every global batch of ``epoch``."""
        return [(t, b[self.rank :: self.world_size]) for t, b in self.epoch_batches(epoch)]

    # -- iteration and state ------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate. Restarts at its first batch, except right after
        :meth:`load_state_dict` with the same epoch, where the saved position is kept."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not (self._resumed and epoch == self.epoch):
            self.position = 0
        self.epoch = int(epoch)
        self._resumed = False

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        if self.position >= self._len and not self._resumed:
            raise RuntimeError(
                f"epoch {self.epoch} is exhausted; call set_epoch(next_epoch) before iterating "
                "again (otherwise every epoch would repeat the same batches)"
            )
        self._resumed = False
        batches = self.epoch_batches()
        while self.position < len(batches):
            task, batch = batches[self.position]
            self.position += 1
            self.global_size = len(batch)
            yield task, batch[self.rank :: self.world_size]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        missing = {"epoch", "position", "seed"} - set(state)
        if missing:
            raise ValueError(f"sampler state is missing {sorted(missing)}")
        if int(state["seed"]) != self.seed:
            raise ValueError(
                f"sampler state was saved with seed {state['seed']}, this sampler has seed "
                f"{self.seed}; an exact resume needs the same seed"
            )
        if not 0 <= int(state["position"]) <= self._len:
            raise ValueError(
                f"sampler state position {state['position']} is outside 0..{self._len} "
                "(different data or batch size?)"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._resumed = True
