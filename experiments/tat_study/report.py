#!/usr/bin/env python
"""Render the TAT study's report from the committed unit results, and from nothing else.

    python experiments/tat_study/report.py    # results/*.json -> report.md, figures/*.png

Reads every ``--results/*.json`` (one per study x method x seed, written by
run_study.py) and writes ``--out/report.md`` with PNG figures in
``--out/figures/``:

1. Main results: per study and evaluation set, per method, the seeds, mean and
   sample std of the primary metric (the first of the set's task file: accuracy;
   MCC for CoLA; Pearson for regression), the
   paired per-seed difference against ``--baseline`` and ``--strong_baseline``,
   a paired bootstrap 95% interval of each difference over the examples, and a
   verdict (stats.py says how).
2. The same for the binary tasks, where TAT equals targeted gold-loss ascent. A
   study lands here when every classification set it trains on (the sets in its
   training history) has two labels; its regression sets stay in section 1.
3. ``tat_oracle`` against ``tat``, ``tat`` against ``tat_uniform`` (TAT with
   uniform targets), and ``tat_mtdnn_attack`` against ``tat_mtdnn`` (mt-dnn's
   perturbation pointed by the gradient, or in its code's random direction), and
   ``tat_<setting>`` against ``smart_<setting>`` for every sweep setting both ran,
   when such units exist.
4. Confusion matrices of the baseline and ``tat`` on the held-out set (Figure 1).
5. Accuracy by difficulty bucket on the held-out set (Figure 2).
6. Learning curves on the held-out set.
7. Wall time per unit, and per method.
8. What TAT targeted: per TAT unit and epoch, how the targets it sampled were
   spread over the wrong labels (from its recorded training confusion tallies),
   and how far that is from a uniformly drawn wrong label.
9. The sweep: each method's other settings (``<method>_*`` units, such as
   ``tat_eps0.1``) against its defaults on the in-domain set only, with the train.py
   flags each one changes, and whether any is ahead (only then would it replace
   the defaults).
10. Agreement: on each classification set, the share of examples on which a
    method predicts the same label as the baseline (and as ``--strong_baseline``)
    trained with the same seed: whether two methods differ at all, which equal
    accuracies do not show.
11. Seeds resampled too: every "ahead" or "behind" of the sections above that rests
    on two or more paired seeds, bootstrapped again with the seeds drawn with
    replacement as well as the examples, and whether it holds.

It also renders the unit tables of ``--readme`` (by default ``--out``'s README.md, when
there is one: the study's own README for the default ``--out``): each
unit's code commit, wall time and recorded metrics, between the README's two unit-table
markers; the rest of that file is left as it is.

Predictions are aligned across units by uid, and every metric is recomputed from
the committed gold and predictions with stats.py, so the means and the
intervals come from the same numbers (a recorded metric that disagrees is
noted). A missing method, seed or set is reported as not run yet; nothing is
filled in.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import stats  # noqa: E402

from data_utils.atomic import atomic_write  # noqa: E402

METHODS = ("none", "smart", "tat", "freelb", "r3f", "random")  # the study's methods, in order
ORACLE = "tat_oracle"
UNIFORM = "tat_uniform"  # TAT with uniform targets: targeting ablated
MTDNN = "tat_mtdnn"  # what mt-dnn's code did: a large perturbation in a random direction
MTDNN_ATTACK = "tat_mtdnn_attack"  # the same size, pointed by the gradient
MIN_SEEDS = 3
LEGEND_COLUMNS = 6
FIGURE_PREFIXES = ("confusion_", "difficulty_", "curves_", "targets_", "tat_vs_smart")
PROXY_SENTENCE = (
    "The difficulty column is `number of correct responses (out of 100)` of the MNLI "
    "dev file: how many of 100 fine-tuned BERT runs got the example right. It is a "
    "model-agreement proxy, not the human annotator agreement the TAT paper bucketed by."
)
REQUIRED = ("unit", "study", "method", "seed", "commit", "machine", "wall_seconds", "history")


class ReportError(ValueError):
    """A results file that cannot be read as a unit; main() prints it on one line."""


@dataclass(frozen=True)
class EvalSet:
    labels: list[str] | None
    uids: list[str]
    gold: list | None
    pred: list
    metrics: dict  # as recorded by the runner; only cross-checked


@dataclass(frozen=True)
class Unit:
    name: str
    study: str
    method: str
    seed: int
    commit: str
    dirty: bool
    machine: str
    started: str
    wall_seconds: float
    attempts: int  # > 1: cut off and resumed; the wall time sums the attempts
    best_epoch: int | None
    scored_epoch: int | None  # the epoch whose checkpoint was scored (best, or last)
    history: list[dict]
    evals: dict[str, EvalSet]
    command: str = ""
    checkpoint: str = "best"  # scored with the best epoch's checkpoint, or the last one's
    # TAT: each epoch's training confusion tally {epoch: (labels, matrix)}, and the oracle's e
    tallies: dict[int, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    oracle: tuple[list[str], np.ndarray] | None = None


Study = dict[str, dict[int, Unit]]  # method -> seed -> unit


@dataclass
class Scored:
    """One evaluation set of one study, aligned by uid across every unit that has it."""

    name: str
    labels: list[str] | None
    metric: str
    uids: list[str]
    gold: np.ndarray
    preds: dict[str, dict[int, np.ndarray]]  # method -> seed -> predictions
    values: dict[str, dict[int, float]]  # method -> seed -> metric on those predictions
    notes: list[str] = field(default_factory=list)


# --- reading -----------------------------------------------------------------


def load_unit(path: Path) -> Unit:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    missing = [key for key in (*REQUIRED, "eval") if key not in data]
    if missing:
        raise ReportError(f"{path}: missing key(s) {missing}")
    evals = {}
    for name, record in (data["eval"] or {}).items():
        try:
            labels, uids, gold, pred = (record[k] for k in ("labels", "uids", "gold", "pred"))
        except (KeyError, TypeError):
            raise ReportError(f"{path}: eval '{name}' needs labels, uids, gold, pred") from None
        if len(uids) != len(pred) or (gold is not None and len(gold) != len(uids)):
            raise ReportError(f"{path}: eval '{name}': uids, gold and pred differ in length")
        if len(set(uids)) != len(uids):
            raise ReportError(f"{path}: eval '{name}': repeated uids")
        values = [*pred, *(gold or [])]
        if labels is not None and any(
            not isinstance(v, int) or not 0 <= v < len(labels) for v in values
        ):
            raise ReportError(
                f"{path}: eval '{name}': class ids must be ints in [0, {len(labels)})"
            )
        if labels is None and any(not isinstance(v, int | float) for v in values):
            raise ReportError(f"{path}: eval '{name}': regression values must be numbers")
        evals[name] = EvalSet(labels, [str(u) for u in uids], gold, pred, record.get("metrics", {}))
    try:
        tallies = {
            int(epoch): one_task_matrix(record)
            for epoch, record in (data.get("tat_confusion") or {}).items()
        }
        oracle = one_task_matrix(data["oracle_confusion"]) if data.get("oracle_confusion") else None
        best_epoch = None if data.get("best_epoch") is None else int(data["best_epoch"])
        scored_epoch = data.get("scored_epoch", best_epoch)  # older units: always the best
        return Unit(
            name=str(data["unit"]),
            study=str(data["study"]),
            method=str(data["method"]),
            seed=int(data["seed"]),
            commit=str(data["commit"]),
            dirty=bool(data.get("dirty", False)),
            machine=str(data["machine"]),
            started=str(data.get("started", "")),
            wall_seconds=float(data["wall_seconds"]),
            attempts=int(data.get("attempts", 1)),
            best_epoch=best_epoch,
            scored_epoch=None if scored_epoch is None else int(scored_epoch),
            history=list(data["history"] or []),
            evals=evals,
            command=str(data.get("command", "")),
            checkpoint=str(data.get("checkpoint", "best")),
            tallies=tallies,
            oracle=oracle,
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ReportError(f"{path}: malformed unit field: {exc}") from None


def one_task_matrix(record: dict) -> tuple[list[str], np.ndarray]:
    """(labels, square matrix) of a one-task confusion file's JSON (mt_dnn.confusion)."""
    (task,) = record["tasks"].values()
    matrix = np.asarray(task["matrix"], dtype=float)
    if matrix.shape != (len(task["labels"]), len(task["labels"])):
        raise ValueError(f"a {matrix.shape} confusion matrix for {len(task['labels'])} labels")
    return list(task["labels"]), matrix


def load_studies(folder: Path) -> dict[str, Study]:
    studies: dict[str, Study] = {}
    for path in sorted(folder.glob("*.json")):
        unit = load_unit(path)
        seeds = studies.setdefault(unit.study, {}).setdefault(unit.method, {})
        if unit.seed in seeds:
            raise ReportError(
                f"{path}: study '{unit.study}', method '{unit.method}', seed {unit.seed} "
                f"is also unit '{seeds[unit.seed].name}'"
            )
        seeds[unit.seed] = unit
    return studies


def load_difficulty(path: Path) -> dict[str, int]:
    """uid (the ``index`` column) -> number of correct responses out of 100 (last column)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].split("\t")[-1].startswith("number of correct responses"):
        raise ReportError(f"{path}:1: expected a header ending in 'number of correct responses'")
    scores = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            score = int(cols[-1])
        except ValueError:
            raise ReportError(f"{path}:{number}: '{cols[-1]}' is not a count") from None
        if not 0 <= score <= 100 or len(cols) < 2:
            raise ReportError(f"{path}:{number}: expected index ... count in [0, 100]")
        scores[cols[0]] = score
    return scores


# --- aligning and scoring ----------------------------------------------------


def ordered(methods) -> list[str]:
    """The study's methods in their usual order, then any others; never the oracle."""
    known = [m for m in METHODS if m in methods]
    return known + sorted(m for m in methods if m not in METHODS and m != ORACLE)


def in_domain(study: Study) -> list[str]:
    """Sets the study selects its model on: the dev sets in its training history."""
    names: list[str] = []
    for seeds in study.values():
        for unit in seeds.values():
            for record in unit.history:
                names += [n for n in record.get("dev", {}) if n not in names]
    return names


def checkpoint_rules(study: Study) -> set[str]:
    """Which checkpoints the study's units were scored with: {"best"}, {"last"} or both."""
    return {u.checkpoint for seeds in study.values() for u in seeds.values()}


def in_domain_role(study: Study) -> str:
    """How the in-domain set was used: to select the scored epoch, or (last epoch) not at all."""
    rules = checkpoint_rules(study)
    if rules == {"last"}:
        return "in-domain (last epoch scored, no model selection)"
    if rules == {"best"}:
        return "in-domain (model selection)"
    return "in-domain (some units selected on it, some scored their last epoch)"


def eval_sets(study: Study) -> list[str]:
    names = [
        n for n in in_domain(study) if any(n in u.evals for s in study.values() for u in s.values())
    ]
    for method in [*ordered(study), ORACLE]:
        for unit in study.get(method, {}).values():
            names += [n for n in unit.evals if n not in names]
    return names


def is_binary(study: Study) -> bool:
    """Every classification set the study trains on has two labels."""
    counts = []
    for name in in_domain(study):
        for seeds in study.values():
            for unit in seeds.values():
                labels = unit.evals[name].labels if name in unit.evals else None
                if labels is not None:
                    counts.append(len(labels))
    return bool(counts) and all(c == 2 for c in counts)


def score_set(study: Study, name: str) -> Scored | None:
    """Align ``name`` by uid over the units that scored it and recompute its metric.

    None when no unit has gold labels for it. Only uids every unit scored count
    (a note says when a unit had more); different labels or gold are an error.
    """
    holders = [
        (m, s, u) for m, seeds in study.items() for s, u in sorted(seeds.items()) if name in u.evals
    ]
    if not holders or any(u.evals[name].gold is None for _, _, u in holders):
        return None
    first = holders[0][2].evals[name]
    common = set(first.uids)
    for _, _, unit in holders:
        if unit.evals[name].labels != first.labels:
            raise ReportError(
                f"unit {unit.name}: '{name}' labels differ from unit {holders[0][2].name}"
            )
        common &= set(unit.evals[name].uids)
    uids = [u for u in first.uids if u in common]
    if not uids:
        raise ReportError(f"'{name}': no uid is shared by all units that scored it")
    metric = primary_metric(name, first.labels is not None)
    pos = {u: i for i, u in enumerate(first.uids)}
    gold = np.asarray(first.gold)[[pos[u] for u in uids]]
    scored = Scored(name, first.labels, metric, uids, gold, {}, {})
    for method, seed, unit in holders:
        ev = unit.evals[name]
        pos = {u: i for i, u in enumerate(ev.uids)}
        idx = [pos[u] for u in uids]
        if not np.array_equal(np.asarray(ev.gold)[idx], gold):
            raise ReportError(
                f"unit {unit.name}: '{name}' gold differs from unit {holders[0][2].name}"
            )
        pred = np.asarray(ev.pred)[idx]
        value = stats.METRICS[metric](pred, gold)
        scored.preds.setdefault(method, {})[seed] = pred
        scored.values.setdefault(method, {})[seed] = value
        recorded = ev.metrics.get(metric)
        if len(uids) < len(ev.uids):
            scored.notes.append(
                f"{unit.name}: scored on the {len(uids)} uids all units share "
                f"(it has {len(ev.uids)})."
            )
        elif recorded is not None and abs(recorded - value) > 0.01:
            scored.notes.append(
                f"{unit.name}: recorded {metric} {recorded:.2f} but its predictions give "
                f"{value:.2f}; the tables use the predictions."
            )
    return scored


# --- formatting --------------------------------------------------------------


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def mean_std_text(values: dict[int, float]) -> str:
    mean, std = stats.mean_std(list(values.values()))
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f} ± n/a"


@dataclass
class Difference:
    """One method minus another on one set: per-seed Δ, their mean, the bootstrap interval."""

    per_seed: dict[int, float]
    mean: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return stats.verdict(self.low, self.high)


def bound_text(value: float) -> str:
    """An interval bound to two decimals, or to its first digit when two show only zeros.

    The verdict reads the bounds unrounded: an interval of [-0.40, -0.003] is "behind",
    and printing its upper bound as -0.00 would hide that it only just excludes zero.
    """
    digits = 2
    while value != 0 and round(value, digits) == 0 and digits < 6:
        digits += 1
    return f"{value:+.{digits}f}"


class Comparer:
    """Table cells comparing two methods on one set: per-seed Δ, bootstrap CI, verdict."""

    def __init__(self, n_resamples: int, seed: int):
        self.n_resamples, self.seed = n_resamples, seed
        # (id(scored), method, ref, seeds_too) -> (scored, difference): section 1's tables,
        # section 3's pair tables and its plot ask for the same pairs; each bootstrap runs
        # once. The Scored is kept so that its id cannot be reused by another set.
        self._done: dict[tuple[int, str, str, bool], tuple[Scored, Difference | None]] = {}

    def compare(
        self, scored: Scored, method: str, ref: str, seeds_too: bool = False
    ) -> Difference | None:
        """``method`` minus ``ref`` over the seeds both ran; None when they share none.

        ``seeds_too``: the bootstrap draws the paired seeds as well as the examples
        (section 11); otherwise the examples only, as every other section.
        """
        key = (id(scored), method, ref, seeds_too)
        if key not in self._done:
            self._done[key] = (scored, self._compare(scored, method, ref, seeds_too))
        return self._done[key][1]

    def compared(self) -> list[tuple[Scored, str, str, Difference]]:
        """Every comparison made so far over the examples only, in the order made."""
        return [
            (scored, method, ref, diff)
            for (_, method, ref, seeds_too), (scored, diff) in self._done.items()
            if not seeds_too and diff is not None
        ]

    def _compare(self, scored: Scored, method: str, ref: str, seeds_too: bool) -> Difference | None:
        diffs = stats.paired_differences(scored.values[method], scored.values.get(ref, {}))
        if not diffs:
            return None
        seeds = list(diffs)
        ci = stats.paired_bootstrap(
            scored.gold,
            [scored.preds[method][s] for s in seeds],
            [scored.preds[ref][s] for s in seeds],
            scored.metric,
            n_resamples=self.n_resamples,
            seed=self.seed,
            resample_seeds=seeds_too,
        )
        return Difference(diffs, float(np.mean(list(diffs.values()))), ci.low, ci.high)

    def cells(self, scored: Scored, method: str, ref: str) -> list[str]:
        if method == ref:
            return ["—", "—", "—"]
        if ref not in scored.values:
            return ["not run yet", "—", "—"]
        diff = self.compare(scored, method, ref)
        if diff is None:
            return ["no common seed", "—", "—"]
        per_seed = ", ".join(f"s{s} {d:+.2f}" for s, d in diff.per_seed.items())
        return [
            f"{diff.mean:+.2f} ({per_seed})",
            f"[{bound_text(diff.low)}, {bound_text(diff.high)}]",
            diff.verdict,
        ]


def set_heading(study_name: str, scored: Scored, role: str) -> str:
    kind = f"{len(scored.labels)} labels" if scored.labels is not None else "regression"
    return (
        f"#### `{study_name}` / `{scored.name}`: {role}, {scored.metric}, "
        f"{len(scored.uids)} examples, {kind}"
    )


def results_block(
    study_name: str, study: Study, scored: Scored, role: str, refs: list[str], comparer: Comparer
) -> list[str]:
    header = ["method", "seeds", "mean ± std"]
    for ref in refs:
        header += [f"Δ vs {ref}, per seed", f"95% CI vs {ref}", f"vs {ref}"]
    rows = []
    for method in ordered(scored.values):
        row = [method, str(len(scored.values[method])), mean_std_text(scored.values[method])]
        for ref in refs:
            row += comparer.cells(scored, method, ref)
        rows.append(row)
    lines = ["", set_heading(study_name, scored, role), "", *table(header, rows)]
    absent = [m for m in ordered(study) if m not in scored.values]
    if absent:
        lines.append(f"\nNot run yet on `{scored.name}`: {', '.join(absent)}.")
    lines += [f"\nNote: {n}" for n in scored.notes]
    return lines


def study_notes(study: Study) -> list[str]:
    notes = []
    absent = [m for m in METHODS if m not in study]
    if absent:
        notes.append(f"Methods not run yet: {', '.join(absent)}.")
    few = [f"{m} ({len(study[m])})" for m in ordered(study) if len(study[m]) < MIN_SEEDS]
    if few:
        notes.append(f"Fewer than {MIN_SEEDS} seeds: {', '.join(few)}.")
    unlabeled = []
    for name in eval_sets(study):
        if any(
            name in u.evals and u.evals[name].gold is None
            for s in study.values()
            for u in s.values()
        ):
            unlabeled.append(name)
    if unlabeled:
        notes.append(f"No gold labels, not scored: {', '.join(unlabeled)}.")
    return notes


# --- figures -----------------------------------------------------------------


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # Agg, without pyplot's global state
    return fig


@dataclass
class Figures:
    """The figures folder, and the names of the figures this run drew in it."""

    folder: Path
    written: list[str] = field(default_factory=list)

    def save(self, fig, name: str, caption: str) -> str:
        """Write ``fig`` as ``name`` and return the Markdown line that shows it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(self.folder / name, dpi=110)
        self.written.append(name)
        return f"![{caption}]({self.folder.name}/{name})"

    def remove_stale(self) -> None:
        """Delete figures of ours this run did not draw: they would contradict the report."""
        for path in self.folder.glob("*.png") if self.folder.is_dir() else []:
            if path.name.startswith(FIGURE_PREFIXES) and path.name not in self.written:
                path.unlink()


def confusion_counts(scored: Scored, method: str) -> np.ndarray:
    k = len(scored.labels or [])
    matrix = np.zeros((k, k))
    for pred in scored.preds[method].values():
        np.add.at(matrix, (scored.gold.astype(int), pred.astype(int)), 1)
    return matrix


def row_rates(matrix: np.ndarray) -> np.ndarray:
    rows = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) * 100.0


def confusion_section(scored: Scored, study_name: str, base: str, figures: Figures) -> list[str]:
    lines = ["", f"### `{study_name}` / `{scored.name}`"]
    absent = [m for m in (base, "tat") if m not in scored.preds]
    if absent or scored.labels is None:
        why = f"not run yet: {', '.join(absent)}" if absent else "not a classification set"
        return lines + ["", f"Figure 1 skipped ({why})."]
    labels = scored.labels
    rates = {m: row_rates(confusion_counts(scored, m)) for m in (base, "tat")}
    change = rates["tat"] - rates[base]
    fig = new_figure(15, 4.6)
    bound = max(1.0, float(np.abs(change).max()))
    panels: list[tuple[np.ndarray, str, str, float, float, str]] = [
        (rates[base], f"{base} ({len(scored.preds[base])} seeds)", "Blues", 0, 100, "{:.1f}"),
        (rates["tat"], f"tat ({len(scored.preds['tat'])} seeds)", "Blues", 0, 100, "{:.1f}"),
        (change, f"tat minus {base} (points)", "RdBu", -bound, bound, "{:+.1f}"),
    ]
    for i, (values, title, cmap, vmin, vmax, fmt) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title)
        for r in range(len(labels)):
            for c in range(len(labels)):
                dark = abs(values[r, c]) > 0.6 * max(abs(vmin), abs(vmax))
                ax.text(c, r, fmt.format(values[r, c]), ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")  # fmt: skip
    image_line = figures.save(
        fig, f"confusion_{study_name}.png", f"Figure 1: confusion matrices on {scored.name}"
    )
    header = ["gold \\ predicted", *labels]
    rows = [
        [labels[r]]
        + [
            f"{rates[base][r, c]:.1f} → {rates['tat'][r, c]:.1f} ({change[r, c]:+.1f})"
            for c in range(len(labels))
        ]
        for r in range(len(labels))
    ]
    return lines + [
        "",
        f"Predictions summed over seeds, each gold row normalised to 100%: "
        f"{base} → tat (change in points).",
        "",
        *table(header, rows),
        "",
        image_line,
    ]


def difficulty_section(
    scored: Scored, study_name: str, difficulty: dict[str, int], edges, figures: Figures
) -> list[str]:
    lines = ["", f"### `{study_name}` / `{scored.name}`", ""]
    if scored.labels is None:
        return lines + ["Figure 2 skipped (not a classification set)."]
    methods = ordered(scored.preds)
    buckets = {}
    for method in methods:
        correct = np.mean([p == scored.gold for p in scored.preds[method].values()], axis=0)
        try:
            buckets[method] = stats.accuracy_by_bucket(
                dict(zip(scored.uids, correct.tolist(), strict=True)), difficulty, edges
            )
        except ValueError as exc:
            return lines + [f"Figure 2 skipped: {exc}"]
    labels = stats.bucket_labels(edges)
    counts = [b.count for b in buckets[methods[0]]]
    rows = []
    for i, label in enumerate(labels):
        accs = [buckets[m][i].accuracy for m in methods]
        rows.append([label, str(counts[i]), *("—" if a is None else f"{a:.2f}" for a in accs)])
    # the figure: each method at its defaults, and TAT with uniform targets (the sweep's
    # settings would be bars too many to tell apart); the table above has them all
    drawn = [m for m in methods if m in METHODS or m == UNIFORM] or methods
    fig = new_figure(max(6.0, 1.6 * len(labels) + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(drawn)
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(drawn) <= 10 else "tab20"]  # no colour twice up to 20
    for j, method in enumerate(drawn):
        heights = [np.nan if b.accuracy is None else b.accuracy for b in buckets[method]]
        ax.bar(
            np.arange(len(labels)) + (j - (len(drawn) - 1) / 2) * width,
            heights,
            width,
            label=method,
            color=palette(j),
        )
    ax.set_xticks(
        range(len(labels)), labels=[f"{lab}\nn={n}" for lab, n in zip(labels, counts, strict=True)]
    )
    ax.set_xlabel("number of correct responses out of 100 (model-agreement proxy)")
    ax.set_ylabel("accuracy (%), mean over seeds")
    ax.set_ylim(0, 100)
    # at most LEGEND_COLUMNS per row: with many sweep settings one row is wider than the figure
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(drawn), LEGEND_COLUMNS),
        frameon=False,
    )
    image_line = figures.save(
        fig, f"difficulty_{study_name}.png", f"Figure 2: accuracy by difficulty on {scored.name}"
    )
    return lines + [
        PROXY_SENTENCE,
        "Buckets are half-open `[low-high)`, the last one closed; accuracy is the mean over "
        "seeds of each method's accuracy on the bucket's examples. The figure draws each "
        "method at its defaults (and TAT with uniform targets); the table has every setting.",
        "",
        *table(["bucket", "examples", *methods], rows),
        "",
        image_line,
    ]


def curve_panels(methods: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The learning-curve figure's panels: one per method family (a method of METHODS with
    its settings and variants, ``tat`` with ``tat_eps0.02`` and ``tat_uniform``), in
    ``methods``' order; a method of no family is a panel of its own. Standard training is
    the reference drawn in every panel, so it has a panel only when it is alone."""
    panels: dict[str, list[str]] = {}
    for method in methods:
        if method == "none":
            continue
        family = next((b for b in METHODS if method == b or method.startswith(f"{b}_")), method)
        panels.setdefault(family, []).append(method)
    if not panels and "none" in methods:
        panels["none"] = ["none"]
    return list(panels.items())


def per_epoch(seeds: dict[int, dict[int, float]]) -> dict[int, list[float]]:
    """A method's values per epoch, over the seeds that reached it (seed -> epoch -> value)."""
    epochs = sorted({e for pts in seeds.values() for e in pts})
    return {e: [pts[e] for pts in seeds.values() if e in pts] for e in epochs}


def draw_curves(ax, curves: dict[str, dict[int, dict[int, float]]], methods: list[str]) -> None:
    """Each method's mean per epoch (bold) and its single seeds (faint) on ``ax``; standard
    training, when it ran, in black as every panel's reference."""
    shown = (["none"] if "none" in curves and "none" not in methods else []) + methods
    for i, method in enumerate(shown):
        seeds = curves[method]
        color = "black" if method == "none" else f"C{i}"
        for pts in seeds.values():
            ax.plot(list(pts), list(pts.values()), color=color, alpha=0.25, linewidth=1)
        values = per_epoch(seeds)
        means = [float(np.mean(v)) for v in values.values()]
        label = f"{method} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
        ax.plot(list(values), means, color=color, linewidth=2, marker="o", label=label)


def curves_section(study: Study, study_name: str, scored: Scored, figures: Figures) -> list[str]:
    lines = ["", f"### `{study_name}` / `{scored.name}` ({scored.metric} per epoch)", ""]
    curves: dict[str, dict[int, dict[int, float]]] = {}  # method -> seed -> epoch -> value
    for method in ordered(study):
        for seed, unit in sorted(study[method].items()):
            points = {
                int(r["epoch"]): float(r["dev"][scored.name][scored.metric])
                for r in unit.history
                if scored.metric in r.get("dev", {}).get(scored.name, {})
            }
            if points:
                curves.setdefault(method, {})[seed] = points
    if not curves:
        return lines + ["No per-epoch values recorded yet."]
    epochs = sorted({e for seeds in curves.values() for pts in seeds.values() for e in pts})
    rows = []
    for method, seeds in curves.items():
        row = [method, str(len(seeds))]
        values = per_epoch(seeds)
        for epoch in epochs:
            vals = values.get(epoch, [])
            n = "" if len(vals) == len(seeds) else f" (n={len(vals)})"
            row.append(f"{np.mean(vals):.2f}{n}" if vals else "—")
        rows.append(row)
    panels = curve_panels(list(curves))
    columns = min(3, len(panels))
    height = -(-len(panels) // columns)  # panel rows, rounded up
    fig = new_figure(4.2 * columns, 3.4 * height + 0.4)
    for k, (family, methods) in enumerate(panels):
        ax = fig.add_subplot(height, columns, k + 1)
        draw_curves(ax, curves, methods)
        ax.set_title(family)
        ax.set_xticks(epochs)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{scored.name} {scored.metric}")
        ax.legend(fontsize="small")
    image_line = figures.save(fig, f"curves_{study_name}.png", f"Learning curves on {scored.name}")
    return lines + [
        "Mean over seeds per epoch (faint lines: single seeds), as recorded during training. "
        "The figure has a panel per method family (its settings and variants beside its "
        "defaults), each with standard training in black.",
        "",
        *table(["method", "seeds", *(f"epoch {e}" for e in epochs)], rows),
        "",
        image_line,
    ]


# --- the report --------------------------------------------------------------


WALL_HEADER = ["unit", "commit", "dirty", "machine", "started", "wall s", "attempts",
               "scored epoch"]  # fmt: skip


def wall_section(studies: dict[str, Study], base: str) -> list[str]:
    rows, cost = [], []
    for study_name, study in studies.items():
        methods = [*ordered(study), *([ORACLE] if ORACLE in study else [])]
        means = {m: float(np.mean([u.wall_seconds for u in study[m].values()])) for m in methods}
        for method in methods:
            for _, unit in sorted(study[method].items()):
                rows.append([
                    unit.name, unit.commit[:7], "yes" if unit.dirty else "no",
                    unit.machine, unit.started, f"{unit.wall_seconds:.1f}", str(unit.attempts),
                    "—" if unit.scored_epoch is None else str(unit.scored_epoch),
                ])  # fmt: skip
            ratio = f"{means[method] / means[base]:.2f}" if base in means else "—"
            cost.append(
                [study_name, method, str(len(study[method])), f"{means[method]:.1f}", ratio]
            )
    return [
        "",
        "## 7. Wall time",
        "",
        *table(WALL_HEADER, rows),
        "",
        "Wall s sums a unit's attempts: one cut off (by the end of a session) resumes from "
        "its newest checkpoint, and redoes the steps after it. Scored epoch: the epoch whose "
        "checkpoint was scored, the best on the in-domain dev set, or the last for a study "
        "whose grid says `checkpoint: last`.",
        "",
        "Mean wall seconds per unit (training, then prediction on every evaluation set):",
        "",
        *table(["study", "method", "units", "mean wall s", f"x {base}"], cost),
    ]


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it: the report names no home folders."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def header(args, units: list[Unit]) -> list[str]:
    lines = [
        "# TAT study: results",
        "",
        f"Rendered by `experiments/tat_study/report.py` from {len(units)} unit result(s) in "
        f"`{shown(args.results)}/`; every number below is computed from those files.",
    ]
    if not units:
        return lines + ["", "No finished units yet: nothing to report."]
    commits: dict[str, int] = {}
    for unit in units:
        commits[unit.commit[:7]] = commits.get(unit.commit[:7], 0) + 1
    listed = ", ".join(
        f"`{c}` ({n} unit{'s' if n > 1 else ''})" for c, n in sorted(commits.items())
    )
    lines += [
        "",
        f"Code commits: {listed}.",
        "",
        "How to read the tables. Metric: the first of the set's task file (accuracy in %, "
        "MCC x100 for CoLA, Pearson x100 for regression), recomputed "
        "from the committed predictions. Δ: method minus reference, paired by seed (only seeds "
        f"both have): the mean, then each seed. 95% CI: paired bootstrap over the examples "
        f"({args.bootstrap} resamples, numpy seed {args.bootstrap_seed}); each resample scores "
        "every paired seed of both methods on the same resampled examples and averages over "
        "seeds. It covers example sampling only; the std and per-seed Δ show the seeds. "
        "Verdict: `ahead` when the whole interval is above 0, `behind` when below, else "
        "`no difference`.",
    ]
    dirty = sorted(u.name for u in units if u.dirty)
    if dirty:
        lines += ["", f"Ran on a modified checkout (dirty): {', '.join(dirty)}."]
    return lines


def results_sections(
    args, studies: dict[str, Study], comparer: Comparer
) -> tuple[list[str], dict[str, dict[str, Scored]]]:
    """Sections 1 and 2, and every scored set by study for the later sections."""
    refs = list(dict.fromkeys([args.baseline, args.strong_baseline]))
    blocks: dict[bool, list[str]] = {False: [], True: []}  # binary table or not
    scored_sets: dict[str, dict[str, Scored]] = {}
    for study_name, study in studies.items():
        domain = in_domain(study)
        binary = is_binary(study)
        parts: dict[bool, list[str]] = {False: [], True: []}
        for name in eval_sets(study):
            scored = score_set(study, name)
            if scored is None:
                continue
            scored_sets.setdefault(study_name, {})[name] = scored
            if not ordered(scored.values):
                continue  # only the oracle scored it
            role = "zero-shot" if name not in domain else in_domain_role(study)
            block = results_block(study_name, study, scored, role, refs, comparer)
            parts[binary and scored.labels is not None] += block
        notes = [f"\n{n}" for n in study_notes(study)]
        for is_binary_table, part in parts.items():
            if part:
                blocks[is_binary_table] += ["", f"### Study `{study_name}`", *notes, *part]
    lines = ["", "## 1. Main results", *(blocks[False] or ["", "Not run yet."])]
    lines += [
        "",
        "## 2. Binary tasks: the case where TAT equals targeted gold-loss ascent "
        "(two labels: one wrong label)",
        *(blocks[True] or ["", "Not run yet."]),
    ]
    return lines, scored_sets


def heldout_sections(args, studies, scored_sets, figures: Figures) -> list[str]:
    """Sections 4 to 6: figures on the held-out set of every study that scored it."""
    held = [(s, sets[args.heldout]) for s, sets in scored_sets.items() if args.heldout in sets]
    not_yet = [] if held else ["", f"No unit has scored `{args.heldout}` yet: not run yet."]
    lines = ["", f"## 4. Figure 1: confusion matrices on held-out `{args.heldout}`", *not_yet]
    for study_name, scored in held:
        lines += confusion_section(scored, study_name, args.baseline, figures)
    lines += ["", f"## 5. Figure 2: accuracy by difficulty on held-out `{args.heldout}`", *not_yet]
    if held:
        try:
            difficulty = load_difficulty(args.mnli_file)
        except (OSError, ReportError) as exc:
            lines += ["", f"Figure 2 skipped: cannot read the difficulty file: {exc}"]
        else:
            for study_name, scored in held:
                lines += difficulty_section(scored, study_name, difficulty, args.buckets, figures)
    lines += ["", f"## 6. Learning curves on held-out `{args.heldout}`", *not_yet]
    for study_name, scored in held:
        lines += curves_section(studies[study_name], study_name, scored, figures)
    return lines


def render(args, studies: dict[str, Study], figures: Figures) -> list[str]:
    units = [u for st in studies.values() for seeds in st.values() for u in seeds.values()]
    lines = header(args, units)
    if not units:
        return lines
    comparer = Comparer(args.bootstrap, args.bootstrap_seed)
    results, scored_sets = results_sections(args, studies, comparer)
    lines += results
    lines += oracle_section(studies, scored_sets, comparer, figures)
    lines += heldout_sections(args, studies, scored_sets, figures)
    lines += wall_section(studies, args.baseline)
    lines += targets_section(args, studies, scored_sets, figures)
    lines += sweep_section(studies, scored_sets, comparer, args.repo, args.baseline)
    lines += agreement_section(args, scored_sets)
    return lines + seeds_section(scored_sets, comparer)


def pair_table(studies, scored_sets, comparer: Comparer, method: str, ref: str) -> list[str]:
    """``method`` against ``ref`` on every set both scored, paired by seed."""
    rows = []
    for study_name, sets in scored_sets.items():
        for name, scored in sets.items():
            if method in scored.values and ref in scored.values:
                same = agreement(scored, method, ref) if scored.labels is not None else None
                rows.append([
                    study_name, name, mean_std_text(scored.values[method]),
                    mean_std_text(scored.values[ref]), *comparer.cells(scored, method, ref),
                    "—" if same is None else f"{same:.1f}",
                ])  # fmt: skip
    if not any(method in st for st in studies.values()):
        return [f"No `{method}` units: not run yet."]
    if not rows:
        return [f"`{method}` units exist but no set has both it and `{ref}` yet."]
    header = ["study", "set", method, ref, f"Δ {method} − {ref}, per seed", "95% CI", "verdict",
              "same predictions, %"]  # fmt: skip
    return table(header, rows)


# Section 3's pairs: (method, reference, what the comparison isolates).
TARGETING_PAIRS = (
    (
        ORACLE,
        "tat",
        "e fixed to the same seed's standard model's confusion matrix on the "
        "in-domain dev set, against e tallied online.",
    ),
    (
        "tat",
        UNIFORM,
        "TAT against TAT with every wrong label (bin) equally likely as its "
        "target: the effect of targeting itself, everything else equal.",
    ),
    (
        MTDNN_ATTACK,
        MTDNN,
        "Both perturb the embedding block's post-LayerNorm output at about "
        "the same size. `tat_mtdnn` is what mt-dnn's code did: the noise swamps the gradient, so "
        "the direction is random. `tat_mtdnn_attack` points it by the gradient. The difference is "
        "the adversarial direction's, at that size.",
    ),
)


def tat_smart_pairs(studies) -> list[tuple[str, str]]:
    """(TAT setting, SMART setting) for the defaults and every changed setting both ran."""
    present = {m for study in studies.values() for m in study}
    pairs = [("tat", "smart")]
    for setting in sorted(m.removeprefix("tat_") for m in present if m.startswith("tat_")):
        if f"smart_{setting}" in present:
            pairs.append((f"tat_{setting}", f"smart_{setting}"))
    return pairs


def oracle_section(studies, scored_sets, comparer: Comparer, figures: Figures) -> list[str]:
    """Section 3: the oracle's e, targeting ablated, mt-dnn's recipe pointed or not, and
    TAT against SMART at every setting both ran."""
    lines = [
        "",
        "## 3. TAT's targeting: the oracle, targeting ablated, mt-dnn's direction, TAT against SMART",
    ]
    for method, ref, blurb in TARGETING_PAIRS:
        lines += ["", f"### `{method}` against `{ref}`", "", blurb, ""]
        lines += pair_table(studies, scored_sets, comparer, method, ref)
    pairs = tat_smart_pairs(studies)
    for method, ref in pairs[1:]:
        lines += ["", f"### `{method}` against `{ref}`", ""]
        lines += ["TAT against SMART with the same changed setting, paired by seed.", ""]
        lines += pair_table(studies, scored_sets, comparer, method, ref)
    return lines + tat_smart_figure(scored_sets, comparer, pairs, figures)


def tat_smart_figure(scored_sets, comparer: Comparer, pairs, figures: Figures) -> list[str]:
    """A forest plot: TAT minus SMART on every set, one mark per setting both ran."""
    rows: list[tuple[str, int, Difference]] = []  # (study/set, pair index, difference)
    for study_name, sets in scored_sets.items():
        for name, scored in sets.items():
            for i, (method, ref) in enumerate(pairs):
                if method in scored.values and ref in scored.values:
                    diff = comparer.compare(scored, method, ref)
                    if diff is not None:
                        metric = METRIC_NAMES.get(scored.metric, scored.metric)
                        rows.append((f"{study_name} / {name} ({metric})", i, diff))
    if not rows:
        return []
    names = list(dict.fromkeys(label for label, _, _ in rows))
    used = sorted({i for _, i, _ in rows})
    fig = new_figure(7, 1.6 + 0.3 * len(names) * len(used))
    ax = fig.add_subplot()
    step = 0.8 / len(used)
    for label, i, diff in rows:
        here = [k for name, k, _ in rows if name == label]  # the settings this set has, centred
        y = names.index(label) + (here.index(i) - (len(here) - 1) / 2) * step
        color = f"C{used.index(i)}"
        ax.plot([diff.low, diff.high], [y, y], color=color, linewidth=2)
        ax.plot(diff.mean, y, "o", color=color)
    for k in used:  # legend entries, one per setting, in order
        setting = pairs[k][0].removeprefix("tat").removeprefix("_") or "defaults"
        ax.plot([], [], "o-", color=f"C{used.index(k)}", label=setting)
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first set on top
    ax.set_xlabel("Δ TAT − SMART (points of each set's metric, x100)")
    ax.legend(title="setting", fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1),
              ncol=min(len(used), 4))  # fmt: skip
    image = figures.save(fig, "tat_vs_smart.png", "TAT against SMART on every set, per setting")
    return [
        "",
        "### TAT against SMART, every setting at once",
        "",
        "Each mark is TAT minus SMART at one setting (the defaults, then each changed setting "
        "both ran): the dot is the mean Δ over the paired seeds, the bar the 95% bootstrap "
        "interval over examples. A bar wholly left of the dashed line is TAT behind.",
        "",
        image,
    ]


# Flags under which e is not the previous epoch's tally, row-normalised, as rebuilt below.
TAT_RULE_FLAGS = ("--tat_update", "--tat_error", "--tat_smoothing")
SHARES_UP_TO = 4  # labels: above this (regression bins) only the summary columns are shown
TAT_BINS = 10  # TAT's default --tat_bins, which the study's units use


def uniform_targets(k: int) -> np.ndarray:
    """Target shares with every wrong label equally likely (the diagonal, gold, is 0)."""
    return (1.0 - np.eye(k)) / (k - 1)


def target_shares(matrix: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """P(target = y' | gold = y) that e = ``matrix`` gives TAT (tat_error=counts, no smoothing).

    The off-diagonal of each row, normalised; a row with errors but all of them zero
    samples uniformly among the wrong labels; a row with no example keeps ``previous``.
    """
    k = matrix.shape[0]
    wrong = np.where(np.eye(k, dtype=bool), 0.0, matrix)
    errors = wrong.sum(axis=1, keepdims=True)
    shares = np.where(errors > 0, wrong / np.where(errors > 0, errors, 1.0), uniform_targets(k))
    return np.where(matrix.sum(axis=1, keepdims=True) > 0, shares, previous)


def spread(shares: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(distance from uniform, share of the most likely target), averaged over gold rows.

    Distance: the total-variation distance between a row's target distribution and the
    uniform one over its wrong labels (0: every wrong label as likely, as an untargeted
    pick; 1 - 1/(k-1): always the same one). Rows are weighed by ``weights``, the
    examples per gold label that drew targets.
    """
    k = shares.shape[0]
    distance = 0.5 * np.abs(shares - uniform_targets(k)).sum(axis=1)
    w = weights if weights.sum() > 0 else np.ones(k)
    return float(np.average(distance, weights=w)), float(np.average(shares.max(axis=1), weights=w))


def share_cell(shares: np.ndarray, labels: list[str], gold: int) -> str:
    return " / ".join(
        f"{labels[c][:4]} {shares[gold, c] * 100:.0f}" for c in range(len(labels)) if c != gold
    )


def targets_figure(
    study_name: str, labels: list[str], last: dict[str, list[np.ndarray]], figures: Figures
) -> str:
    """Heatmaps of the target shares of each method's last epoch, averaged over its seeds."""
    k = len(labels)
    size = 4.2 if k <= SHARES_UP_TO else 6.5
    fig = new_figure(size * len(last) + 1.0, size)
    for i, (method, shares) in enumerate(sorted(last.items())):
        mean = np.mean(shares, axis=0) * 100.0
        ax = fig.add_subplot(1, len(last), i + 1)
        image = ax.imshow(mean, cmap="Oranges", vmin=0, vmax=100)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(k), labels=labels, rotation=45 if k > SHARES_UP_TO else 30, ha="right")
        ax.set_yticks(range(k), labels=labels)
        ax.set_xlabel("target")
        ax.set_ylabel("gold")
        seeds = f"{len(shares)} seed{'s' if len(shares) > 1 else ''}"
        ax.set_title(f"{method}, last epoch ({seeds})")
        for r in range(k):
            for c in range(k):
                if r != c:
                    ax.text(c, r, f"{mean[r, c]:.0f}", ha="center", va="center",
                            fontsize=9 if k <= SHARES_UP_TO else 6,
                            color="white" if mean[r, c] > 60 else "black")  # fmt: skip
    return figures.save(
        fig, f"targets_{study_name}.png", f"TAT's target shares (%) on {study_name}"
    )


@functools.cache
def task_of(set_name: str):
    """The built-in task whose evaluation set ``set_name`` is (``rte_dev`` -> rte), or None."""
    from data_utils.task_def import load_task_defs

    tasks = [t for t in load_task_defs("glue", "nli").values() if set_name.startswith(t.name + "_")]
    return max(tasks, key=lambda t: len(t.name), default=None)


def label_range(set_name: str) -> tuple[float, float] | None:
    """The label range of a regression set's task (built-in task files), to bin it as TAT does."""
    task = task_of(set_name)
    return None if task is None else task.label_range


def primary_metric(set_name: str, classification: bool) -> str:
    """The first metric of the set's task file (GLUE's: MCC for CoLA), when the report
    can score it; otherwise accuracy, or Pearson for regression."""
    task = task_of(set_name)
    if task is not None and task.metrics and task.metrics[0] in stats.METRICS:
        return task.metrics[0]
    return "accuracy" if classification else "pearson"


def baseline_errors(args, scored_sets: dict[str, dict[str, Scored]], studies) -> list[str]:
    """How concentrated the baseline's in-domain errors are: what targeting could follow."""
    from mt_dnn.confusion import bin_index

    rows = []
    for study_name, sets in scored_sets.items():
        for name in in_domain(studies[study_name]):
            scored = sets.get(name)
            if scored is None or args.baseline not in scored.preds:
                continue
            preds = scored.preds[args.baseline]
            if scored.labels is not None:
                k, gold, binned = len(scored.labels), scored.gold.astype(int), preds
            elif (bounds := label_range(name)) is not None:
                k = TAT_BINS
                gold = bin_index(scored.gold, bounds, k)
                binned = {seed: bin_index(p, bounds, k) for seed, p in preds.items()}
            else:
                continue
            matrix = np.zeros((k, k))
            for pred in binned.values():
                np.add.at(matrix, (gold, np.asarray(pred).astype(int)), 1)
            distance, top = spread(target_shares(matrix, uniform_targets(k)), matrix.sum(axis=1))
            wrong = matrix.sum() - np.trace(matrix)
            gap = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
            near = matrix[gap == 1].sum() / wrong * 100 if wrong and scored.labels is None else None
            rows.append([
                study_name, name, str(len(preds)), f"{k} {'labels' if scored.labels else 'bins'}",
                f"{int(wrong)}", f"{distance:.3f}", f"{top * 100:.1f}",
                "—" if near is None else f"{near:.1f}",
            ])  # fmt: skip
    if not rows:
        return []
    header = ["study", "set", "seeds", "classes", "errors", "distance", "top",
              "% of errors one bin off"]  # fmt: skip
    return [
        "",
        f"What targeting could follow: the errors of `{args.baseline}` on each in-domain set "
        f"(its seeds summed; regression binned into {TAT_BINS} bins over the task's label "
        "range, as TAT bins), read as the target shares an e equal to that confusion would give.",
        "",
        *table(header, rows),
    ]


def targets_section(args, studies, scored_sets, figures: Figures) -> list[str]:
    lines = [
        "",
        "## 8. What TAT targeted",
        "",
        "TAT samples a wrong label (bin) per example in proportion to how often the model "
        "predicts it for the gold one. How far that is from an untargeted pick: distance, the "
        "total-variation distance between a gold row's target distribution and the uniform one "
        "over its wrong labels (0: every wrong label as likely; at most 1 - 1/(k-1) with k "
        "labels), and top, the share of a row's most likely target, both averaged over gold "
        "rows weighed by their examples.",
        *baseline_errors(args, scored_sets, studies),
    ]
    if not any(u.tallies for st in studies.values() for s in st.values() for u in s.values()):
        return lines + ["", "No unit recorded TAT's training confusion tallies yet."]
    lines += [
        "",
        "What TAT followed, per TAT unit and epoch. Epoch 1's targets are drawn from TAT's "
        "initial e (uniform over the wrong labels); each later epoch's from the previous "
        "epoch's training confusion tally (the model's own clean predictions on the training "
        "batches); an oracle unit's from its fixed e, every epoch. Cells: the % of a gold "
        "label's targets that each wrong label got (first four letters of its name); "
        "distance and top weighed by that epoch's examples per gold label.",
    ]
    for study_name, study in studies.items():
        units = [u for seeds in study.values() for u in seeds.values() if u.tallies]
        if not units:
            continue
        labels = units[0].tallies[min(units[0].tallies)][0]
        k = len(labels)
        per_label = k <= SHARES_UP_TO
        header = ["unit", "epoch", "targets from"]
        header += [f"gold {name}" for name in labels] if per_label else []
        header += ["distance", "top"]
        rows, skipped = [], []
        last: dict[str, list[np.ndarray]] = {}  # method -> each seed's last-epoch shares
        for unit in sorted(units, key=lambda u: (u.method, u.seed)):
            if any(flag in unit.command.split() for flag in TAT_RULE_FLAGS):
                skipped.append(unit.name)
                continue
            shares = uniform_targets(k)
            for epoch in sorted(unit.tallies):
                _, tally = unit.tallies[epoch]
                if unit.oracle is not None:
                    source = "oracle (fixed)"
                    shares = target_shares(unit.oracle[1], shares)
                elif epoch == 1:
                    source = "initial e (uniform)"
                else:
                    source = f"epoch {epoch - 1} tally"
                    shares = target_shares(unit.tallies[epoch - 1][1], shares)
                distance, top = spread(shares, tally.sum(axis=1))
                cells = [share_cell(shares, labels, g) for g in range(k)] if per_label else []
                rows.append(
                    [unit.name, str(epoch), source, *cells, f"{distance:.3f}", f"{top * 100:.1f}"]
                )
            last.setdefault(unit.method, []).append(shares)
        lines += ["", f"### Study `{study_name}` ({k} {'labels' if per_label else 'bins'})", ""]
        lines += table(header, rows) if rows else ["No unit with the default update rule."]
        if last and k == 2:
            lines += ["", "Two labels: the one wrong label is every target, so no figure."]
        elif last:
            lines += ["", targets_figure(study_name, labels, last, figures)]
        if skipped:
            lines += [
                "",
                f"Not rebuilt (their command changes how e is made): {', '.join(skipped)}.",
            ]
    return lines


# --- section 9: the sweep ----------------------------------------------------

# Where a unit ran, its seed and its checkpoint cadence (resume is exact): not how it trained.
RUN_FLAGS = ("--output_dir", "--seed", "--adv_seed", "--save_every")


def flag_values(command: str) -> dict[str, str]:
    """A train.py command's flags, each with its value ('' for a bare flag)."""
    flags: dict[str, list[str]] = {}
    current = None
    for token in shlex.split(command):
        if token.startswith("--"):
            current = token
            flags[current] = []
        elif current is not None:
            flags[current].append(token)
    return {flag: " ".join(values) for flag, values in flags.items() if flag not in RUN_FLAGS}


# train.py settings added after some of the study's units had run, with what the code
# did before each one existed (mt_dnn.trainer.BEFORE_ADDED as flags; a test keeps the two
# the same).
BEFORE_ADDED = {"--fast_dropout": "false"}


@functools.cache
def code_has_setting(repo: Path, commit: str, flag: str) -> bool:
    """Whether train.py at ``commit`` has ``flag`` (a field of mt_dnn/config.py's config).

    True when git cannot tell (no repository, an unknown commit): the flag then shows
    as a change, which is what the table said before it could look.
    """
    try:
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:mt_dnn/config.py"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except OSError:  # no git
        return True
    if shown.returncode != 0:
        return True
    return re.search(rf"^\s+{re.escape(flag[2:])}\s*:", shown.stdout, re.MULTILINE) is not None


def changed_flags(unit: Unit, default: Unit, repo: Path = ROOT) -> str:
    """The flags ``unit``'s command sets differently from ``default``'s.

    A flag one command sets to what the code did before the flag existed is no change
    against a command that ran on that older code (``repo``'s history says which).
    """
    try:
        mine, theirs = flag_values(unit.command), flag_values(default.command)
    except ValueError as exc:  # shlex: an unbalanced quote in a hand-edited results file
        raise ReportError(
            f"unit {unit.name} or {default.name}: cannot read its command: {exc}"
        ) from exc
    for flag, before in BEFORE_ADDED.items():
        for have, lack, older in ((mine, theirs, default), (theirs, mine, unit)):
            if have.get(flag) == before and flag not in lack:
                if not code_has_setting(repo, older.commit, flag):
                    lack[flag] = before
    changed = [f"{f} {v}".strip() for f, v in mine.items() if theirs.get(f) != v]
    changed += [f"{f} (removed)" for f in theirs if f not in mine]
    return " ".join(changed) or "nothing"


def settings_of(study: Study, base: str) -> list[str]:
    """The study's other settings of ``base``: its ``base_*`` units, the oracle aside."""
    return sorted(m for m in study if m.startswith(f"{base}_") and m != ORACLE)


def sweep_table(
    study: Study, scored: Scored, base: str, comparer: Comparer, repo: Path
) -> list[str]:
    default = study[base][min(study[base])]
    rows = [[f"{base} (defaults)", default.commit[:7], "—", str(len(scored.values[base])),
             mean_std_text(scored.values[base]), "—", "—", "—"]]  # fmt: skip
    ahead = []
    for name in settings_of(study, base):
        if name not in scored.values:
            continue
        unit = study[name][min(study[name])]
        cells = comparer.cells(scored, name, base)
        rows.append([name, unit.commit[:7], f"`{changed_flags(unit, default, repo)}`",
                     str(len(scored.values[name])), mean_std_text(scored.values[name]),
                     *cells])  # fmt: skip
        ahead += [name] if cells[-1] == "ahead" else []
    header = ["setting", "code", "changes", "seeds", "mean ± std", "Δ vs defaults, per seed",
              "95% CI", "verdict"]  # fmt: skip
    verdict = (
        f"Ahead of the defaults: {', '.join(f'`{a}`' for a in ahead)}."
        if ahead
        else "No setting is ahead of the defaults: the defaults stand."
    )
    return [*table(header, rows), "", verdict]


def settings_vs_reference(
    study: Study, scored_sets: dict[str, Scored], base: str, comparer: Comparer, reference: str
) -> list[str]:
    """``base`` and each of its settings against ``reference`` on every set, paired by seed.

    Not used to choose (that is the in-domain table above): what a setting does on the
    zero-shot sets, where the defaults' gains and losses are.
    """
    names = [n for n in (base, *settings_of(study, base)) if n != reference]
    sets = [(n, sc) for n, sc in scored_sets.items() if reference in sc.values]
    if not sets or not names:
        return []
    rows = []
    for name in names:
        cells = []
        for _, scored in sets:
            diff = comparer.compare(scored, name, reference) if name in scored.values else None
            cells.append(
                "—" if diff is None
                else f"{diff.mean:+.2f} [{bound_text(diff.low)}, {bound_text(diff.high)}]"
                + ("" if diff.verdict == "no difference" else f" {diff.verdict}")
            )  # fmt: skip
        rows.append([name, str(len(study.get(name, {}))), *cells])
    header = ["setting", "seeds", *(n for n, _ in sets)]
    return [
        "",
        f"Each setting against `{reference}` on every set: Δ over the seeds both ran, its "
        '95% CI, and the verdict where it is not "no difference". Not used to choose a '
        "setting:",
        "",
        *table(header, rows),
    ]


def sweep_section(
    studies, scored_sets, comparer: Comparer, repo: Path, reference: str
) -> list[str]:
    """Section 9: each method's other settings against its defaults, in-domain only."""
    lines = [
        "",
        "## 9. The sweep: each method's settings on the in-domain set",
        "",
        "Each setting of a method against the method's defaults, paired by seed, on the "
        "in-domain set only: the zero-shot sets never choose a setting. `changes`: the "
        "train.py flags it sets differently from the defaults' unit; a flag train.py gained "
        "later is no change where the unit sets it to what the older code did (the "
        "repository's history says which code had it). Below each table, every setting "
        "against standard training on every set, zero-shot sets included, for what the "
        "settings do there; the choice stays the in-domain table's. A study scored at "
        "its last epoch has no set to choose on (its dev set is its only labelled set) and "
        "is left out.",
    ]
    blocks = []
    for study_name, study in studies.items():
        if checkpoint_rules(study) != {"best"}:
            continue
        for set_name in in_domain(study):
            scored = scored_sets.get(study_name, {}).get(set_name)
            if scored is None:
                continue
            for base in METHODS:
                if base not in scored.values or not any(
                    m in scored.values for m in settings_of(study, base)
                ):
                    continue
                heading = f"### `{study_name}` / `{set_name}`: `{base}`, {scored.metric}"
                blocks += ["", heading, "", *sweep_table(study, scored, base, comparer, repo)]
                blocks += settings_vs_reference(
                    study, scored_sets[study_name], base, comparer, reference
                )
    return lines + (blocks or ["", "No method has a setting besides its defaults yet."])


# --- section 10: agreement ---------------------------------------------------


def agreement(scored: Scored, method: str, ref: str) -> float | None:
    """% of examples where ``method`` predicts as ``ref`` does, averaged over paired seeds."""
    seeds = sorted(scored.preds.get(method, {}).keys() & scored.preds.get(ref, {}).keys())
    if not seeds:
        return None
    same = [np.mean(scored.preds[method][s] == scored.preds[ref][s]) for s in seeds]
    return 100.0 * float(np.mean(same))


def agreement_section(args, scored_sets: dict[str, dict[str, Scored]]) -> list[str]:
    """Section 10: how often each method predicts what each reference predicts."""
    lines = [
        "",
        "## 10. Agreement: the same predictions as the reference",
        "",
        "% of examples on which a method predicts the same label as the reference trained "
        "with the same seed, averaged over the seeds both have (—: no common seed). Two "
        "methods with equal accuracy may still predict differently; near 100 they are the "
        "same model. Regression sets are left out.",
    ]
    refs = list(dict.fromkeys([args.baseline, args.strong_baseline]))
    found = False
    for study_name, sets in scored_sets.items():
        labelled = {name: sc for name, sc in sets.items() if sc.labels is not None}
        present = {m for sc in labelled.values() for m in sc.preds}
        methods = ordered(present) + ([ORACLE] if ORACLE in present else [])
        for ref in refs:
            if not any(ref in sc.preds for sc in labelled.values()):
                continue
            found = True
            rows = []
            for method in (m for m in methods if m != ref):
                shares = [agreement(sc, method, ref) for sc in labelled.values()]
                rows.append([method, *("—" if a is None else f"{a:.1f}" for a in shares)])
            lines += ["", f"### Study `{study_name}`: against `{ref}`", ""]
            lines += table(["method", *labelled], rows)
    return lines + ([] if found else ["", "No classification set has a reference yet."])


# --- section 11: seeds resampled too -----------------------------------------


def seeds_section(scored_sets: dict[str, dict[str, Scored]], comparer: Comparer) -> list[str]:
    """Section 11: each verdict of the sections above that rests on two or more paired
    seeds, with the seeds drawn in the bootstrap too."""
    lines = [
        "",
        "## 11. Seeds resampled too: which verdicts hold across seeds",
        "",
        "The intervals above resample the evaluation examples only; how much the seeds "
        "disagree shows only in the per-seed Δ. Here every `ahead` or `behind` above that "
        "rests on two or more paired seeds is bootstrapped again with the paired seeds drawn "
        "with replacement too (a two-level bootstrap, the same example draws, "
        "`stats.paired_bootstrap(..., resample_seeds=True)`). A verdict that holds here holds "
        "across the seeds run, not only across examples. With two or three seeds the seed "
        "draw is coarse (three seeds give ten distinct draws), so a verdict that does not "
        "hold here says that one seed disagrees with the others, not that the difference "
        "is absent.",
    ]
    study_of = {id(sc): name for name, sets in scored_sets.items() for sc in sets.values()}
    rows = []
    held = 0
    claims = [c for c in comparer.compared() if len(c[3].per_seed) >= 2]
    made = {(id(scored), method, ref) for scored, method, ref, _ in claims}
    for scored, method, ref, diff in claims:
        if diff.verdict == "no difference":
            continue
        if (id(scored), ref, method) in made and ordered([method, ref])[0] == method:
            continue  # its mirror is listed: ``smart`` - ``none``, not ``none`` - ``smart``
        both = comparer.compare(scored, method, ref, seeds_too=True)
        assert both is not None  # the same seeds as ``diff``
        held += both.verdict == diff.verdict
        per_seed = ", ".join(f"s{s} {d:+.2f}" for s, d in diff.per_seed.items())
        rows.append([
            study_of.get(id(scored), "?"), scored.name, f"`{method}` − `{ref}`",
            f"{diff.mean:+.2f} ({per_seed})",
            f"[{bound_text(diff.low)}, {bound_text(diff.high)}] {diff.verdict}",
            f"[{bound_text(both.low)}, {bound_text(both.high)}] {both.verdict}",
            "yes" if both.verdict == diff.verdict else "**no**",
        ])  # fmt: skip
    if not rows:
        return [*lines, "", "No verdict above rests on two or more paired seeds yet."]
    header = ["study", "set", "comparison", "Δ, per seed", "95% CI over examples",
              "95% CI over seeds and examples", "holds"]  # fmt: skip
    summary = f"{held} of {len(rows)} verdicts hold with the seeds resampled too."
    return [*lines, "", *table(header, rows), "", summary]


# --- the README's unit tables ------------------------------------------------

README_BEGIN = (
    "<!-- unit tables: rendered by report.py from results/ (--readme); "
    "an edit between these markers is overwritten -->"
)
README_END = "<!-- end of unit tables -->"
METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "mcc": "MCC", "pearson": "Pearson",
                "spearman": "Spearman"}  # fmt: skip


def recorded_metrics(set_name: str, units: list[Unit]) -> list[str]:
    """The metrics the units recorded for ``set_name``, in its task file's order."""
    task = task_of(set_name)
    recorded = list(dict.fromkeys(m for u in units for m in u.evals[set_name].metrics))
    first = [m for m in (task.metrics if task is not None else []) if m in recorded]
    return first + [m for m in recorded if m not in first]


def value_text(unit: Unit, set_name: str, metric: str) -> str:
    evals = unit.evals.get(set_name)
    value = None if evals is None else evals.metrics.get(metric)
    return "—" if value is None else f"{value:.2f}"


def epochs_text(unit: Unit, set_name: str, metric: str) -> str:
    values = [(h.get("dev") or {}).get(set_name, {}).get(metric) for h in unit.history]
    return ", ".join("—" if v is None else f"{v:.2f}" for v in values) or "—"


def study_unit_table(study_name: str, study: Study) -> list[str]:
    """One study's units, by method (as the report orders them) and seed: the code, the wall
    time and the recorded metrics (the first of each set's task file when the study has
    several sets; every metric, and the first after each epoch, when it has one)."""
    methods = [*ordered(study), *([ORACLE] if ORACLE in study else [])]
    units = [unit for m in methods for _, unit in sorted(study[m].items())]
    sets = eval_sets(study)
    metrics = {name: recorded_metrics(name, [u for u in units if name in u.evals]) for name in sets}
    rules = checkpoint_rules(study)  # as in_domain_role reads them
    scored = (
        "the last epoch's checkpoint" if rules == {"last"}
        else "the best epoch's checkpoint" if rules == {"best"}
        else "the best epoch's checkpoint or the last one's"
    )  # fmt: skip
    if len(sets) == 1:
        (name,) = sets
        names = [METRIC_NAMES.get(m, m) for m in metrics[name]]
        head = [*names, f"{names[0]} per epoch"]
        rows = [
            [*unit_cells(u), *(value_text(u, name, m) for m in metrics[name]),
             epochs_text(u, name, metrics[name][0])]
            for u in units
        ]  # fmt: skip
        what = f"`{study_name}` on `{name}`"
    else:
        head = [f"`{name}`" for name in sets]
        rows = [
            [*unit_cells(u), *(value_text(u, name, metrics[name][0]) for name in sets)]
            for u in units
        ]
        firsts = list(dict.fromkeys(metrics[n][0] for n in sets))
        what = f"`{study_name}`, " + (
            f"{METRIC_NAMES.get(firsts[0], firsts[0])} on each set"
            if len(firsts) == 1
            else "the first metric of each set's task file"
        )
    caption = f"{what}, x100, scored with {scored}:"
    return [caption, "", *table(["unit", "code", "wall", *head], rows), ""]


def unit_cells(unit: Unit) -> list[str]:
    dirty = " (dirty)" if unit.dirty else ""
    resumed = f" ({unit.attempts} attempts)" if unit.attempts > 1 else ""
    return [unit.name, unit.commit[:7] + dirty, f"{unit.wall_seconds:.0f} s{resumed}"]


def unit_tables(studies: dict[str, Study]) -> list[str]:
    """Every study's unit table, the studies in the order their first unit started."""
    first = {
        name: min(u.started for seeds in study.values() for u in seeds.values())
        for name, study in studies.items()
    }
    lines = []
    for name in sorted(studies, key=lambda n: (first[n], n)):
        lines += study_unit_table(name, studies[name])
    return lines


def splice(text: str, block: list[str], where: Path) -> str:
    """``text`` with the lines between README_BEGIN and README_END replaced by ``block``."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ReportError(
            f"{where}: no unit-table markers (a line '{README_BEGIN}', then '{README_END}')"
        )
    head = text[: begin + len(README_BEGIN)]
    return head + "\n" + "\n".join(block) + "\n" + text[end:]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--results", type=Path, default=HERE / "results", help="Unit result JSONs.")
    p.add_argument("--out", type=Path, default=HERE, help="Writes report.md and figures/ here.")
    p.add_argument(
        "--mnli_file",
        type=Path,
        default=ROOT.parent
        / "shared/data/mnli/mnli_development_set_number_of_correct_responses.txt",
        help="MNLI dev file with the number of correct responses (out of 100) per index.",
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=ROOT,
        help="Git repository holding the units' commits: section 9 reads which train.py "
        "flags each commit had.",
    )
    p.add_argument(
        "--readme",
        default=None,
        help="Markdown file whose unit tables (the lines between its two unit-table "
        "markers) are rendered again from the results (default: --out's README.md when "
        "there is one); '' leaves every README alone.",
    )
    p.add_argument("--baseline", default="none", help="Reference method for Δ and Figure 1.")
    p.add_argument("--strong_baseline", default="smart", help="Second reference method for Δ.")
    p.add_argument("--heldout", default="mnli_dev_matched", help="Held-out set for figures.")
    p.add_argument("--bootstrap", type=int, default=1000, help="Bootstrap resamples.")
    p.add_argument("--bootstrap_seed", type=int, default=0, help="numpy Generator seed.")
    p.add_argument(
        "--buckets",
        default="0,50,80,95,100",
        help="Difficulty bucket edges: [a-b) each, the last one closed.",
    )
    args = p.parse_args(argv)
    try:
        args.buckets = [float(x) for x in args.buckets.split(",")]
        stats.bucket_labels(args.buckets)
    except ValueError as exc:
        p.error(f"--buckets: {exc}")
    if args.bootstrap < 1:
        p.error("--bootstrap must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures = Figures(args.out / "figures")
    try:
        studies = load_studies(args.results) if args.results.is_dir() else {}
        readme = Path(args.readme) if args.readme else None
        if args.readme is None and (args.out / "README.md").is_file():
            readme = args.out / "README.md"
        if readme is not None:  # before any figure is drawn: a bad README writes nothing
            try:
                old = readme.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReportError(f"--readme {readme}: {exc.strerror or exc}") from None
            spliced = splice(old, unit_tables(studies), readme)
        lines = render(args, studies, figures)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures.remove_stale()
    with atomic_write(args.out / "report.md") as fh:
        fh.write("\n".join(lines) + "\n")
    if readme is not None and spliced != old:
        with atomic_write(readme) as fh:
            fh.write(spliced)
        print(f"rendered the unit tables in {readme}")
    print(
        f"wrote {args.out / 'report.md'} and {len(figures.written)} figure(s) in {figures.folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
