"""tat: Targeted Adversarial Training.

Method card
-----------
Paper: Pereira et al. 2021, "Targeted Adversarial Training for Natural Language
Understanding" (NAACL), arXiv:2104.05847, Algorithm 1.

As SMART/VAT, but the perturbation DESCENDS the loss towards a target label
sampled where the model already errs. Per task, e(y, y') is the current
expected rate of predicting y' when the gold label is y::

    y_t ~ e(y, .) restricted to y_t != y              (one target per example)
    delta_0 = Proj_eps(N(0, sigma^2 I))               (sigma = adv_noise_var; padding zero)
    for k in 1..K:
        g     = grad_delta l(f(x + delta), y_t)       (w.r.t. delta only)
        delta = Proj_eps(delta - eta * g / ||g||_p)
    loss = l(f(x), y) + alpha * D(f(x), f(x + delta))  (virtual, the default), or
    loss = l(f(x), y) + alpha * l(f(x + delta), y)     (``tat_adversarial``)

D is the task's divergence (symmetric KL for classification, squared error for
regression), l the task loss for the final term and cross entropy (squared
error for regression) towards the target in the inner steps.

Expected error e:
- initialised uniform; updated from the model's own training predictions (the
  clean forward of every step is tallied per task). ``tat_update=epoch`` (the
  default, as the paper) replaces e at the end of each epoch, row by row, by
  that epoch's tally normalised per gold row; rows with no example that epoch
  keep their previous value. ``tat_update=step`` moves e towards each batch's
  estimate with momentum ``tat_momentum``.
- ``tat_error=counts`` (default): e(y, y') = fraction of gold-y examples whose
  argmax is y' (the confusion matrix of the paper's Figure 1).
  ``tat_error=probs``: the mean predicted probability of y' over gold-y examples.
- Sampling weights are e(y, y') + ``tat_smoothing`` for y' != y and 0 for
  y' = y; a gold label whose weights are all zero (no recorded errors)
  samples uniformly among the wrong labels.
- Regression: ``task_def.label_range`` is cut into ``tat_bins`` equal bins, e
  is a bins x bins table (always counts), a target bin is sampled the same way,
  a target value drawn uniformly inside it, and the inner loss is the squared
  error to that value.
- Oracle mode (``tat_oracle``): e is read once from a confusion-matrix file
  (:mod:`mt_dnn.confusion`, rows normalised) and never updated; the training
  tally is still logged.

Data parallel: the tallies are summed over ranks before they are applied (at the
epoch's end, or every step with ``tat_update=step``), so every rank samples
from the same e, the one a single process would have.

Every epoch ``end_epoch`` logs each task's training confusion tally as
``out_dir/tat_confusion_epoch{N}.json``, ``out_dir/tat_confusion_{task}_epoch{N}.png``
and a TensorBoard figure ``tat_confusion/{task}``. The tallies, e and the random
generator are in ``state_dict``, so a resumed run samples the same targets.

Space, update, noise, dropout masks and the final term's gradient form are
SMART's (see :mod:`mt_dnn.adversarial.smart`).

Defaults: the ``relative`` preset: K=1, alpha=1 (the paper's), eps=0.05 of each
token's embedding size, eta=10 eps (the paper's eta/eps), noise std 0.1 eps, L-inf
per token, shared dropout, mtdnn gradient form. ``--adv_preset paper`` is the
paper's eps=1e-5, eta=1e-4 on raw word embeddings (noise std 1e-6, inside the
ball); ``--adv_preset mtdnn`` is what mt-dnn's code does (a random direction, see
experiments/tat_study/perturbations.md); ``mtdnn_attack`` is that space and size
pointed by the gradient. With two labels there is one wrong label, and TAT's step
equals an untargeted step up the gold loss: targeting matters only with three or
more classes or regression bins.

Cost: K+2 forwards, K perturbation backwards (autograd.grad), 1 parameter
backward. Backward calls: 1. A non-finite perturbation gradient drops the
adversarial term (delta and the term are zeroed on the device, so the task
loss alone drives the update) and counts a skipped step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data_utils.task_def import TaskDef, TaskType
from mt_dnn import confusion, distributed
from mt_dnn.adversarial.base import Objective, Regularizer, StepOutput
from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.losses import task_loss


def target_weights(expected: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Row y: the probability of sampling each target y' for gold y (0 on the diagonal)."""
    n = expected.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=expected.device)
    weights = torch.where(off, expected.double() + smoothing, 0.0).clamp(min=0.0)
    sums = weights.sum(dim=1, keepdim=True)
    uniform = off.double() / (n - 1)
    return torch.where(sums > 0, weights / torch.where(sums > 0, sums, 1.0), uniform)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; an all-zero row becomes uniform."""
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    uniform = np.full_like(matrix, 1.0 / matrix.shape[1])
    return np.where(sums > 0, matrix / np.where(sums > 0, sums, 1.0), uniform)


def bin_ids(values: torch.Tensor, label_range: tuple[float, float], n_bins: int) -> torch.Tensor:
    """:func:`mt_dnn.confusion.bin_index` on the device: the bin of each value, clipped."""
    low, high = label_range
    bins = torch.floor((values.double() - low) / (high - low) * n_bins)
    return torch.nan_to_num(bins, nan=0.0).clamp(0, n_bins - 1).long()


class TargetedRegularizer(Regularizer):
    """Its tables (e, the epoch's tally, examples seen per gold row) are float64 tensors
    kept on the device of the steps: sampling and tallying never wait for the device;
    they are read at the epoch's end (and when saved)."""

    name = "tat"

    def __init__(self, cfg: AdvConfig, task_defs: Mapping[str, TaskDef]):
        super().__init__(cfg, task_defs)
        self.names = {name: confusion.label_names(t, cfg.tat_bins) for name, t in task_defs.items()}
        size = {name: len(names) for name, names in self.names.items()}
        f64 = torch.float64
        self.expected = {name: torch.full((n, n), 1.0 / n, dtype=f64) for name, n in size.items()}
        self.tally = {name: torch.zeros((n, n), dtype=f64) for name, n in size.items()}
        self.seen = {name: torch.zeros(n, dtype=f64) for name, n in size.items()}
        self.oracle = cfg.tat_oracle is not None
        if cfg.tat_oracle is not None:
            self._load_oracle(Path(cfg.tat_oracle))

    def _load_oracle(self, path: Path) -> None:
        matrices = confusion.load_confusion(path)
        for name, task in self.task_defs.items():
            if name not in matrices:
                if task.train_split is None:
                    continue  # never trained, never perturbed
                raise ValueError(
                    f"{path}: no confusion matrix for task '{name}' (the file has "
                    f"{sorted(matrices)})"
                )
            names, matrix = matrices[name]
            if names != self.names[name]:
                raise ValueError(
                    f"{path}: task '{name}' has labels {names}, expected {self.names[name]}"
                )
            self.expected[name] = torch.as_tensor(normalise_rows(matrix))

    def _tables(self, name: str, device: torch.device):
        """(e, tally, seen) of a task, moved to ``device`` once (and kept there)."""
        for table in (self.expected, self.tally, self.seen):
            table[name] = torch.as_tensor(table[name], dtype=torch.float64, device=device)
        return self.expected[name], self.tally[name], self.seen[name]

    # -- targets ------------------------------------------------------------------------

    def gold_ids(self, task: TaskDef, labels: torch.Tensor) -> torch.Tensor:
        if task.task_type is TaskType.REGRESSION:
            return bin_ids(labels, confusion.label_range_of(task), self.cfg.tat_bins)
        return labels.long()

    def sample_targets(
        self, task: TaskDef, labels: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """A target per example: a class id, or for regression a value inside a target bin."""
        expected, _, _ = self._tables(task.name, labels.device)
        weights = target_weights(expected, self.cfg.tat_smoothing).float()
        targets = torch.multinomial(
            weights[self.gold_ids(task, labels)], 1, generator=generator
        ).squeeze(1)
        if task.task_type is not TaskType.REGRESSION:
            return targets
        low, high = confusion.label_range_of(task)
        width = (high - low) / self.cfg.tat_bins
        u = torch.rand(targets.shape, generator=generator, device=labels.device)
        return low + (targets.float() + u) * width

    # -- tallies ------------------------------------------------------------------------

    def batch_tally(self, task: TaskDef, logits: torch.Tensor, labels: torch.Tensor):
        """(tally [n, n], examples per gold row [n]) of one batch's clean predictions."""
        gold = self.gold_ids(task, labels)
        n = len(self.names[task.name])
        logits = logits.detach()
        if task.task_type is TaskType.REGRESSION or self.cfg.tat_error == "counts":
            if task.task_type is TaskType.REGRESSION:
                pred = bin_ids(logits.reshape(-1), confusion.label_range_of(task), n)
            else:
                pred = logits.argmax(dim=-1)
            tally = torch.bincount(gold * n + pred, minlength=n * n).view(n, n).double()
        else:
            probs = F.softmax(logits.float(), dim=-1).double()
            tally = torch.zeros((n, n), dtype=torch.float64, device=logits.device)
            tally.index_add_(0, gold, probs)
        return tally, torch.bincount(gold, minlength=n).double()

    @property
    def moves_every_step(self) -> bool:
        """e is updated from every batch (``tat_update=step``, not oracle)."""
        return self.cfg.tat_update == "step" and not self.oracle

    def record(self, task: TaskDef, logits: torch.Tensor, labels: torch.Tensor) -> None:
        expected, tally_all, seen_all = self._tables(task.name, logits.device)
        tally, seen = self.batch_tally(task, logits, labels)
        if self.moves_every_step:
            # e moves every step: by the whole global batch's tally, the same on every rank.
            both = distributed.all_reduce_sum(torch.cat([tally, seen[:, None]], dim=1))
            tally, seen = both[:, :-1], both[:, -1]
        tally_all += tally
        seen_all += seen
        if self.moves_every_step:
            estimate = tally / seen.clamp(min=1.0)[:, None]
            m = self.cfg.tat_momentum
            rows = (seen > 0)[:, None]  # unseen rows keep their value (no wait for the device)
            expected.copy_(torch.where(rows, m * expected + (1 - m) * estimate, expected))

    # -- the step -----------------------------------------------------------------------

    def targeted_loss(self, task: TaskDef, logits: torch.Tensor, targets: torch.Tensor):
        # Summed, not averaged: each example's gradient is normalised on its own anyway.
        if task.task_type is TaskType.REGRESSION:
            return ((logits.float() - targets) ** 2).sum()
        return F.cross_entropy(logits.float(), targets, reduction="sum")

    def objective(self, task: TaskDef, clean, labels: torch.Tensor, generator) -> Objective:
        """Descend the loss towards a target sampled from e for each example."""
        targets = self.sample_targets(task, labels, generator)
        return Objective(lambda logits: self.targeted_loss(task, logits, targets), -1.0, targets)

    def step(self, model, batch, task, backward) -> StepOutput:
        if task.name not in self.expected:
            raise ValueError(f"TAT was built without task '{task.name}'")
        self.steps += 1
        masks, clean = self.begin(model, batch, task)
        labels = batch["labels"]
        goal = self.objective(task, clean, labels, self.generator(clean.embeds.device))
        self.record(task, clean.logits.detach(), labels)
        delta, ok = self.attack(model, batch, task, clean, masks, goal.loss, goal.direction)
        adv_logits = self.perturbed_logits(model, batch, task, clean, delta, masks)
        if self.cfg.tat_adversarial:
            adv = task_loss(adv_logits, labels, task)
        else:
            adv = self.divergence(adv_logits, clean.logits, task)
        return self.finish(clean, adv, delta, backward, ok)

    # -- epochs and state ---------------------------------------------------------------

    def end_epoch(self, epoch: int, out_dir: Path | None, writer) -> dict:
        """Apply the epoch's tallies to e (tat_update=epoch) and log the confusion matrices."""
        logged, summary = {}, {}
        for name in self.tally:
            expected, tally, seen = self._tables(name, torch.as_tensor(self.tally[name]).device)
            if not self.moves_every_step:  # data parallel: each rank tallied its own slices
                tally.copy_(distributed.all_reduce_sum(tally))
                seen.copy_(distributed.all_reduce_sum(seen))
            matrix, counts = tally.cpu().numpy().copy(), seen.cpu().numpy()  # the epoch's read
            if counts.sum() == 0:
                continue
            if not self.moves_every_step and not self.oracle:
                rows = (seen > 0)[:, None]  # a row with no example this epoch keeps its value
                expected.copy_(torch.where(rows, tally / seen.clamp(min=1.0)[:, None], expected))
            summary[f"tat/{name}/train_error_rate"] = float(1.0 - np.trace(matrix) / counts.sum())
            logged[name] = (self.names[name], matrix)
        if logged and out_dir is not None:
            out_dir = Path(out_dir)
            confusion.save_confusion(out_dir / f"tat_confusion_epoch{epoch}.json", logged)
        for name, (names, matrix) in logged.items():
            if out_dir is None and writer is None:
                break
            try:
                fig = confusion.plot_confusion(matrix, names, f"{name}: training, epoch {epoch}")
            except ImportError:  # matplotlib is optional at run time; the JSON is the record
                print("TAT: matplotlib is not installed; confusion plots skipped")
                break
            if out_dir is not None:
                fig.savefig(Path(out_dir) / f"tat_confusion_{name}_epoch{epoch}.png", dpi=100)
            if writer is not None:
                writer.add_figure(f"tat_confusion/{name}", fig, global_step=epoch, close=False)
        for name in self.tally:
            self.tally[name].zero_()
            self.seen[name].zero_()
        return summary

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["tasks"] = {
            name: {
                "expected": self.expected[name].tolist(),
                "tally": self.tally[name].tolist(),
                "seen": self.seen[name].tolist(),
            }
            for name in self.expected
        }
        return state

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        for name, entry in state["tasks"].items():
            if name not in self.expected:
                continue  # a task no longer trained
            for key in ("expected", "tally", "seen"):
                value = torch.as_tensor(np.asarray(entry[key], dtype=np.float64))
                if tuple(value.shape) != tuple(getattr(self, key)[name].shape):
                    raise ValueError(
                        f"TAT state for task '{name}': {key} has shape {list(value.shape)}"
                    )
                getattr(self, key)[name] = value  # moved to the steps' device on first use
