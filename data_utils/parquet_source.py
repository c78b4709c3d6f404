"""Hugging Face hub parquet files -> canonical TSVs, for data users already have in that form.

The hub stores each dataset config as parquet shards, in one of two layouts::

    HF_DIR/glue/rte/train-00000-of-00001.parquet          # the repository's own files
    HF_DIR/glue/mnli/validation_matched-00000-of-00001.parquet
    HF_DIR/snli/plain_text/test-00000-of-00001.parquet
    HF_DIR/hans/plain_text/validation/0000.parquet         # refs/convert/parquet layout

``HF_DIR/<dataset>`` is the folder a user downloaded the hub repository into
(``huggingface-cli download nyu-mll/glue --repo-type dataset --local-dir
HF_DIR/glue``). :data:`HUB_CONFIGS` says, for each (dataset, config), which
columns hold premise/hypothesis/label/uid, which hub split is which canonical
split, and how label ids map to the task's label strings.

Labels. Hub ``ClassLabel`` columns store ids; id ``i`` is the ``i``-th of the
config's ClassLabel names, and :data:`CLASS_LABELS` maps each name to the label
string of the task YAML, in the YAML's order (``tests/test_parquet_source.py``
checks the two agree). ``-1`` means "no label": an unlabelled test row (written
with an empty label, as the GLUE test files are), or, for SNLI/MultiNLI, a pair
without an annotator majority (skipped and counted, like ``-`` in the official
files). STS-B scores are float32 on the hub and are written as the shortest
decimal that reads back as the same float32 (``3.8``, where the official file
says ``3.800``). SciTail's ``tsv_format`` keeps its label strings.

uids: the ``idx`` column where the config has one (GLUE; equal to the official
``index`` column for RTE, STS-B, QNLI, WNLI, MNLI and the test files, but not to
QQP's Quora pair ids), otherwise the 0-based row number over the split's shards.
Texts are the hub's, with tabs and newlines turned into spaces as every reader does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_utils.canonical import Example, canonical_path, check_label, write_canonical
from data_utils.errors import DataError
from data_utils.readers import _clean
from data_utils.task_def import TaskDef

NO_LABEL = -1

# Hub ClassLabel names (id = position) -> this project's label string (task YAML).
# Copied from each config's `features` in huggingface/datasets dataset_infos.json.
CLASS_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "glue/cola": (("unacceptable", "0"), ("acceptable", "1")),
    "glue/sst2": (("negative", "0"), ("positive", "1")),
    "glue/mrpc": (("not_equivalent", "0"), ("equivalent", "1")),
    "glue/qqp": (("not_duplicate", "0"), ("duplicate", "1")),
    "glue/mnli": (
        ("entailment", "entailment"),
        ("neutral", "neutral"),
        ("contradiction", "contradiction"),
    ),
    "glue/qnli": (("entailment", "entailment"), ("not_entailment", "not_entailment")),
    "glue/rte": (("entailment", "entailment"), ("not_entailment", "not_entailment")),
    "glue/wnli": (("not_entailment", "0"), ("entailment", "1")),
    "glue/ax": (
        ("entailment", "entailment"),
        ("neutral", "neutral"),
        ("contradiction", "contradiction"),
    ),
    "nli3": (
        ("entailment", "entailment"),
        ("neutral", "neutral"),
        ("contradiction", "contradiction"),
    ),  # snli, multi_nli, xnli
    "hans": (("entailment", "entailment"), ("non-entailment", "non-entailment")),
}


@dataclass(frozen=True)
class HubConfig:
    """One hub dataset config and the canonical task it becomes.

    ``folders``: candidates under HF_DIR, the first that exists is read.
    ``labels``: key of :data:`CLASS_LABELS` for ClassLabel ids; ``"value"`` for a
    column holding the label itself (a string, or a regression score).
    ``no_label``: what id -1 means: ``"unlabelled"`` (a test row without a label;
    an error in any other split) or ``"skip"`` (a pair without a gold label,
    skipped and counted in every split, as the official readers do with ``-``).
    """

    name: str  # "glue/rte", for messages and --tasks
    folders: tuple[str, ...]
    task: str
    splits: Mapping[str, str]  # hub split -> canonical split
    premise: str
    hypothesis: str | None
    labels: str
    uid: str | None = "idx"
    no_label: str = "unlabelled"

    @property
    def columns(self) -> list[str]:
        wanted = [self.premise, self.hypothesis, "label", self.uid]
        return [c for c in wanted if c is not None]


_TDT = {"train": "train", "validation": "dev", "test": "test"}
_PAIR = {"premise": "sentence1", "hypothesis": "sentence2"}
XNLI_LANGUAGES = (
    "ar",
    "bg",
    "de",
    "el",
    "en",
    "es",
    "fr",
    "hi",
    "ru",
    "sw",
    "th",
    "tr",
    "ur",
    "vi",
    "zh",
)


def _glue(config: str, task: str, labels: str, splits=_TDT, **columns: Any) -> HubConfig:
    return HubConfig(f"glue/{config}", (f"glue/{config}",), task, splits, labels=labels, **columns)


HUB_CONFIGS: tuple[HubConfig, ...] = (
    _glue("cola", "cola", "glue/cola", premise="sentence", hypothesis=None),
    _glue("sst2", "sst", "glue/sst2", premise="sentence", hypothesis=None),
    _glue("mrpc", "mrpc", "glue/mrpc", **_PAIR),
    _glue("qqp", "qqp", "glue/qqp", premise="question1", hypothesis="question2"),
    _glue("stsb", "stsb", "value", **_PAIR),
    _glue(
        "mnli",
        "mnli",
        "glue/mnli",
        {
            "train": "train",
            "validation_matched": "dev_matched",
            "validation_mismatched": "dev_mismatched",
            "test_matched": "test_matched",
            "test_mismatched": "test_mismatched",
        },
        premise="premise",
        hypothesis="hypothesis",
    ),
    _glue("qnli", "qnli", "glue/qnli", premise="question", hypothesis="sentence"),
    _glue("rte", "rte", "glue/rte", **_PAIR),
    _glue("wnli", "wnli", "glue/wnli", **_PAIR),
    _glue("ax", "ax", "glue/ax", {"test": "test"}, premise="premise", hypothesis="hypothesis"),
    HubConfig(
        "snli",
        ("snli/plain_text",),
        "snli",
        _TDT,
        "premise",
        "hypothesis",
        "nli3",
        uid=None,
        no_label="skip",
    ),
    HubConfig(
        "multi_nli",
        ("multi_nli/data", "multi_nli/default"),
        "mnli",
        {
            "train": "train",
            "validation_matched": "dev_matched",
            "validation_mismatched": "dev_mismatched",
        },
        "premise",
        "hypothesis",
        "nli3",
        uid=None,
        no_label="skip",
    ),
    HubConfig(
        "scitail",
        ("scitail/tsv_format",),
        "scitail",
        _TDT,
        "premise",
        "hypothesis",
        "value",
        uid=None,
    ),
    *(
        HubConfig(
            f"xnli/{lang}",
            (f"xnli/{lang}",),
            "xnli",
            {
                "validation": f"dev_{lang}",
                "test": f"test_{lang}",
            },  # train: MNLI, machine-translated
            "premise",
            "hypothesis",
            "nli3",
            uid=None,
        )
        for lang in XNLI_LANGUAGES
    ),
    HubConfig(
        "hans",
        ("hans/plain_text",),
        "hans",
        {"train": "train", "validation": "dev"},
        "premise",
        "hypothesis",
        "hans",
        uid=None,
    ),
)


def split_files(folder: Path, split: str) -> list[Path]:
    """The shards of ``split``: ``{split}-*.parquet`` or ``{split}/*.parquet``, in name order."""
    files = sorted(folder.glob(f"{split}-*.parquet")) + sorted((folder / split).glob("*.parquet"))
    return [f for f in files if f.is_file()]


def float32_text(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (``3.799999952316284`` -> ``3.8``)."""
    import numpy as np

    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def _read_table(path: Path, config: HubConfig):
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DataError(path, None, f"not a readable parquet file: {exc}") from None
    missing = [c for c in config.columns if c not in schema.names]
    if missing:
        raise DataError(
            path,
            None,
            f"missing column(s) {missing}; columns are {schema.names} "
            f"(is this the hub's {config.name} file?)",
        )
    return pq.read_table(path, columns=config.columns)


def _label_of(value: Any, config: HubConfig, kind: str, path: Path, row: int) -> str:
    """The label string; "" for id -1 (no label)."""
    if config.labels == "value":
        if value is None:
            raise DataError(path, None, f"row {row}: empty label")
        if isinstance(value, float):
            return (
                "" if value == NO_LABEL else float32_text(value) if kind == "float" else repr(value)
            )
        return str(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(
            path, None, f"row {row}: label {value!r} is not a class id (expected an integer column)"
        )
    names = CLASS_LABELS[config.labels]
    if value == NO_LABEL:
        return ""
    if not 0 <= value < len(names):
        raise DataError(
            path,
            None,
            f"row {row}: label id {value} is not one of 0..{len(names) - 1} "
            f"(ClassLabel names {[n for n, _ in names]}) or -1",
        )
    return names[value][1]


def read_split(
    config: HubConfig, files: Sequence[Path], split: str, task: TaskDef
) -> tuple[list[Example], Counter]:
    """Rows of one split (all its shards) as canonical examples; skipped rows counted by reason."""
    examples: list[Example] = []
    skipped: Counter = Counter()
    test = split in task.test_splits
    seen: dict[str, tuple[Path, int]] = {}  # uid -> where first seen, over all shards
    index = 0  # row number over all shards: the uid when the config has no uid column
    for path in files:
        table = _read_table(path, config)
        kind = "float" if str(table.schema.field("label").type) == "float" else "other"
        columns = {name: table.column(name).to_pylist() for name in config.columns}
        for row in range(table.num_rows):
            number = row + 1
            label = _label_of(columns["label"][row], config, kind, path, number)
            uid = _clean(str(columns[config.uid][row]) if config.uid else str(index))
            index += 1
            if label == "":
                if config.no_label == "skip":
                    skipped["label -1 (no gold label)"] += 1
                    continue
                if not test:
                    raise DataError(
                        path,
                        None,
                        f"row {number}: label -1 (unlabelled) in {split!r}, not a test split",
                    )
            else:
                try:
                    check_label(task, label, path, number)
                except DataError as exc:
                    raise DataError(path, None, f"row {number}: {exc.message}") from None
            first = seen.setdefault(uid, (path, number))
            if first != (path, number):
                raise DataError(
                    path,
                    None,
                    f"row {number}: duplicate uid {uid!r} (first in {first[0].name} row {first[1]})",
                )
            premise = columns[config.premise][row]
            hypothesis = columns[config.hypothesis][row] if config.hypothesis else ""
            if premise is None or hypothesis is None:
                raise DataError(path, None, f"row {number}: empty text")
            examples.append(Example(uid, label, _clean(premise), _clean(hypothesis)))
    return examples, skipped


def convert_hub(
    hf_dir: str | Path,
    out_dir: str | Path,
    task_defs: Mapping[str, TaskDef],
    tasks: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
    configs: Sequence[HubConfig] = HUB_CONFIGS,
) -> dict[tuple[str, str], int]:
    """Convert every config found under ``hf_dir``; returns ``{(task, split): rows}``.

    ``tasks`` filters by canonical task name (``mnli`` takes glue/mnli, else
    multi_nli). A split already written by an earlier config is not overwritten.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    wanted = set(tasks or ())
    done: dict[tuple[str, str], int] = {}
    for config in configs:
        if wanted and config.task not in wanted:
            continue
        folder = next((hf_dir / f for f in config.folders if (hf_dir / f).is_dir()), None)
        if folder is None:
            log(
                f"{config.name}: skipped: not found ({', '.join(str(hf_dir / f) for f in config.folders)})"
            )
            continue
        if config.task not in task_defs:
            raise DataError(folder, None, f"task {config.task!r} is not defined")
        task = task_defs[config.task]
        for hub_split, split in config.splits.items():
            if (config.task, split) in done:
                continue
            files = split_files(folder, hub_split)
            if not files:
                log(f"{config.name} {hub_split}: skipped: no {hub_split}-*.parquet in {folder}")
                continue
            if split not in task.splits:
                raise DataError(
                    files[0], None, f"split {split!r} is not a split of task {task.name!r}"
                )
            examples, skipped = read_split(config, files, split, task)
            if not examples:
                raise DataError(files[0], None, "no data rows")
            out = canonical_path(out_dir, config.task, split)
            done[(config.task, split)] = write_canonical(out, examples)
            log(
                f"{config.task} {split}: {len(examples)} rows from {len(files)} file(s) in {folder} -> {out}"
            )
            for reason, count in sorted(skipped.items()):
                log(f"{config.name} {hub_split}: skipped {count} rows: {reason}")
    return done
