"""Where each task/split lives in the original distributions, and the raw -> canonical step.

A :class:`Source` is one canonical task/split and the raw files it may come from
(:class:`Candidate`, first one present wins). The tables below are the only
place that knows file names; the conversion code is generic.

Documented choices for quirks of the real files (skipped rows are counted and
printed): MNLI, MultiNLI and SNLI rows whose gold label is missing or ``-``
(annotators did not agree) are skipped; QQP rows with too few fields (a question
broken by a stray newline in the release) are skipped.

The mnli task has two sources with the same pairs: GLUE's ``MNLI.zip`` (uid: its
``index`` column) and the MultiNLI 1.0 release's JSON lines (uid: ``pairID``, as
for SNLI; train and dev only, its test labels were never released).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_utils.canonical import Example, UidChecker, canonical_path, check_label, write_canonical
from data_utils.errors import DataError
from data_utils.readers import READERS, Layout, ReadResult
from data_utils.task_def import TaskDef


@dataclass(frozen=True)
class Candidate:
    paths: tuple[str, ...]  # relative to the dataset folder; ``lines`` takes three
    fmt: str  # key of READERS
    layout: Layout


@dataclass(frozen=True)
class Source:
    task: str
    split: str  # with ``layout.split_column``: the prefix, output split = f"{split}_{value}"
    candidates: tuple[Candidate, ...]


def _one(path: str, fmt: str, layout: Layout) -> tuple[Candidate, ...]:
    return (Candidate((path,), fmt, layout),)


# ---------------------------------------------------------------- GLUE layouts
_NO_GOLD = frozenset({"-", ""})  # MNLI/SNLI: no annotator majority

COLA = Layout(premise=3, label=1, n_fields=4)  # source, label, original-label marker, sentence
SINGLE_TEST = Layout(uid="index", premise="sentence")
SST = Layout(premise="sentence", label="label")
MRPC = Layout(premise="#1 String", hypothesis="#2 String", label="Quality")
MRPC_TEST = Layout(uid="index", premise="#1 String", hypothesis="#2 String")
STSB = Layout(uid="index", premise="sentence1", hypothesis="sentence2", label="score")
PAIR_TEST = Layout(uid="index", premise="sentence1", hypothesis="sentence2")
QQP = Layout(
    uid="id",
    premise="question1",
    hypothesis="question2",
    label="is_duplicate",
    skip_short_rows=True,
)
QQP_TEST = Layout(uid="id", premise="question1", hypothesis="question2", skip_short_rows=True)
MNLI = Layout(
    uid="index",
    premise="sentence1",
    hypothesis="sentence2",
    label="gold_label",
    skip_labels=_NO_GOLD,
)
QNLI = Layout(uid="index", premise="question", hypothesis="sentence", label="label")
QNLI_TEST = Layout(uid="index", premise="question", hypothesis="sentence")
PAIR = Layout(uid="index", premise="sentence1", hypothesis="sentence2", label="label")


def _glue(task: str, folder: str, labelled: Layout, test: Layout, labelled_fmt="tsv"):
    return (
        Source(task, "train", _one(f"{folder}/train.tsv", labelled_fmt, labelled)),
        Source(task, "dev", _one(f"{folder}/dev.tsv", labelled_fmt, labelled)),
        Source(task, "test", _one(f"{folder}/test.tsv", "tsv", test)),
    )


GLUE_SOURCES: tuple[Source, ...] = (
    *_glue("cola", "CoLA", COLA, SINGLE_TEST, labelled_fmt="tsv_noheader"),
    *_glue("sst", "SST-2", SST, SINGLE_TEST),
    *_glue("mrpc", "MRPC", MRPC, MRPC_TEST),
    *_glue("stsb", "STS-B", STSB, PAIR_TEST),
    *_glue("qqp", "QQP", QQP, QQP_TEST),
    Source("mnli", "train", _one("MNLI/train.tsv", "tsv", MNLI)),
    Source("mnli", "dev_matched", _one("MNLI/dev_matched.tsv", "tsv", MNLI)),
    Source("mnli", "dev_mismatched", _one("MNLI/dev_mismatched.tsv", "tsv", MNLI)),
    Source("mnli", "test_matched", _one("MNLI/test_matched.tsv", "tsv", PAIR_TEST)),
    Source("mnli", "test_mismatched", _one("MNLI/test_mismatched.tsv", "tsv", PAIR_TEST)),
    *_glue("qnli", "QNLI", QNLI, QNLI_TEST),
    *_glue("rte", "RTE", PAIR, PAIR_TEST),
    *_glue("wnli", "WNLI", PAIR, PAIR_TEST),
    Source(
        "ax",
        "test",
        tuple(
            Candidate((path,), "tsv", PAIR_TEST)
            for path in ("diagnostic/diagnostic.tsv", "diagnostic/AX.tsv", "AX.tsv", "AX/AX.tsv")
        ),
    ),
)

# ----------------------------------------------------------------- NLI layouts
SNLI_JSONL = Layout(
    uid="pairID",
    premise="sentence1",
    hypothesis="sentence2",
    label="gold_label",
    skip_labels=_NO_GOLD,
)
SNLI_TXT = SNLI_JSONL  # same column names, as a header row
MULTINLI_JSONL = SNLI_JSONL  # MultiNLI 1.0 keeps SNLI's keys (plus genre, promptID)
SNLI_LINES = Layout(premise=0, hypothesis=1, label=2, skip_labels=_NO_GOLD)
SCITAIL = Layout(premise=0, hypothesis=1, label=2, n_fields=3)
HANS = Layout(uid="pairID", premise="sentence1", hypothesis="sentence2", label="gold_label")
XNLI_OFFICIAL = Layout(
    uid="pairID",
    premise="sentence1",
    hypothesis="sentence2",
    label="gold_label",
    split_column="language",
)
# HF `xnli` export: label 0=entailment 1=neutral 2=contradiction.
XNLI_HF = Layout(
    uid="id",
    premise="premise",
    hypothesis="hypothesis",
    label="label",
    label_map={"0": "entailment", "1": "neutral", "2": "contradiction"},
)
# HANS authors' copy of MNLI dev_matched (index premise hypothesis gold_label #correct).
MNLI_HANS_REPO = Layout(
    uid="index",
    premise="premise",
    hypothesis="hypothesis",
    label="gold_label",
    skip_labels=_NO_GOLD,
)


def _snli(split: str) -> Source:
    stem = f"snli_1.0_{split}"
    return Source(
        "snli",
        split,
        (
            *_one(f"{stem}.jsonl", "jsonl", SNLI_JSONL),
            *_one(f"snli_1.0/{stem}.jsonl", "jsonl", SNLI_JSONL),
            *_one(f"{stem}.txt", "tsv", SNLI_TXT),
            *_one(f"snli_1.0/{stem}.txt", "tsv", SNLI_TXT),
            Candidate((f"s1.{split}", f"s2.{split}", f"labels.{split}"), "lines", SNLI_LINES),
        ),
    )


def _multinli(split: str) -> Source:
    """The mnli task from the MultiNLI 1.0 release (multinli_1.0.zip), as it unpacks."""
    stem = f"multinli_1.0_{split}.jsonl"
    return Source(
        "mnli",
        split,
        tuple(
            Candidate((path,), "jsonl", MULTINLI_JSONL) for path in (f"multinli_1.0/{stem}", stem)
        ),
    )


def _scitail(split: str) -> Source:
    name = f"tsv_format/scitail_1.0_{split}.tsv"
    return Source(
        "scitail",
        split,
        tuple(
            Candidate((path,), "tsv_noheader", SCITAIL)
            for path in (f"SciTailV1.1/{name}", f"SciTailV1/{name}", name, Path(name).name)
        ),
    )


def _xnli(task: TaskDef) -> list[Source]:
    """Official XNLI-1.0 ``xnli.{dev,test}.tsv`` (all languages), else the per-language files."""
    sources = []
    for prefix, hf_name, splits in (
        ("dev", "validation", task.dev_splits),
        ("test", "test", task.test_splits),
    ):
        official = tuple(
            Candidate((path,), "tsv", XNLI_OFFICIAL)
            for path in (f"xnli.{prefix}.tsv", f"XNLI-1.0/xnli.{prefix}.tsv")
        )
        per_language = [
            Source(
                "xnli",
                split,
                _one(f"xnli_{hf_name}_{split.removeprefix(prefix + '_')}.tsv", "tsv", XNLI_HF),
            )
            for split in splits
        ]
        sources.append(Source("xnli", prefix, official))
        sources.extend(per_language)
    return sources


def nli_sources(task_defs: Mapping[str, TaskDef]) -> dict[str, tuple[Source, ...]]:
    """Sources per dataset folder (the keys match mtdnn-nli-prepro's ``--{key}_dir`` flags)."""
    return {
        "snli": tuple(_snli(split) for split in ("train", "dev", "test")),
        "scitail": tuple(_scitail(split) for split in ("train", "dev", "test")),
        "hans": (
            Source("hans", "train", _one("heuristics_train_set.txt", "tsv", HANS)),
            Source("hans", "dev", _one("heuristics_evaluation_set.txt", "tsv", HANS)),
        ),
        "xnli": tuple(_xnli(task_defs["xnli"])),
        "mnli": (
            Source(
                "mnli",
                "dev_matched",
                (
                    *_one(
                        "mnli_development_set_number_of_correct_responses.txt",
                        "tsv",
                        MNLI_HANS_REPO,
                    ),
                    *_one("dev_matched.tsv", "tsv", MNLI),
                ),
            ),
            Source("mnli", "dev_mismatched", _one("dev_mismatched.tsv", "tsv", MNLI)),
        ),
        # After "mnli": a split that folder gave is not read again from the release.
        "multinli": tuple(_multinli(split) for split in ("train", "dev_matched", "dev_mismatched")),
    }


# ------------------------------------------------------------------ conversion
def _validate(result: ReadResult, source: Source, task: TaskDef, path: Path, labelled: bool):
    """Check labels and uids; group rows into output splits."""
    splits: dict[str, list[Example]] = defaultdict(list)
    checkers: dict[str, UidChecker] = {}
    for row in result.rows:
        split = f"{source.split}_{row.group}" if row.group else source.split
        if split not in task.splits:
            raise DataError(
                path,
                row.line,
                f"split {split!r} is not a split of task {task.name!r}: {list(task.splits)}",
            )
        if labelled:
            if not row.label:
                raise DataError(path, row.line, "empty label")
            check_label(task, row.label, path, row.line)
        checkers.setdefault(split, UidChecker(path))(row.uid, row.line)
        splits[split].append(Example(row.uid, row.label, row.premise, row.hypothesis))
    return splits


def convert_source(
    source: Source,
    base_dir: Path,
    out_dir: Path,
    task_defs: Mapping[str, TaskDef],
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Convert one source; returns ``{split: rows written}`` (empty when not found)."""
    name = f"{source.task} {source.split}"
    found = next(
        (c for c in source.candidates if all((base_dir / p).is_file() for p in c.paths)), None
    )
    if found is None:
        looked = ", ".join(str(base_dir / c.paths[0]) for c in source.candidates)
        log(f"{name}: skipped: not found ({looked})")
        return {}
    if source.task not in task_defs:
        raise DataError(base_dir / found.paths[0], None, f"task {source.task!r} is not defined")
    paths = [base_dir / p for p in found.paths]
    result = READERS[found.fmt](paths, found.layout)
    splits = _validate(
        result, source, task_defs[source.task], paths[0], labelled=found.layout.label is not None
    )
    written = {}
    for split, examples in splits.items():
        out = canonical_path(out_dir, source.task, split)
        written[split] = write_canonical(out, examples)
        log(f"{source.task} {split}: {written[split]} rows from {paths[0]} -> {out}")
    for reason, count in sorted(result.skipped.items()):
        log(f"{name}: skipped {count} rows: {reason} ({paths[0]})")
    return written


def convert_all(
    jobs: Iterable[tuple[Path, Sequence[Source]]],
    out_dir: Path,
    task_defs: Mapping[str, TaskDef],
    tasks: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[tuple[str, str], int]:
    """Convert every source of every ``(dataset folder, sources)`` job; stop at the first error.

    A split already produced by an earlier source (e.g. XNLI from the official
    all-language file) is not overwritten by a later alternative.
    """
    done: dict[tuple[str, str], int] = {}
    for base_dir, sources in jobs:
        for source in sources:
            if tasks and source.task not in tasks:
                continue
            if (source.task, source.split) in done:
                continue
            for split, count in convert_source(
                source, Path(base_dir), out_dir, task_defs, log
            ).items():
                done[(source.task, split)] = count
    return done
