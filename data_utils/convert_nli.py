"""Convert the NLI sets used for training / zero-shot evaluation into canonical TSVs.

    mtdnn-nli-prepro --data_dir data/raw --output_dir data/canonical_data
    python -m data_utils.convert_nli ...   python experiments/nli/nli_prepro.py ...   (the same)

Each dataset is read from its own folder (``--snli_dir``, ``--scitail_dir``,
``--hans_dir``, ``--xnli_dir``, ``--mnli_dir``, ``--multinli_dir``; or ``--data_dir``
holding snli/, scitail/, hans/, xnli/, mnli/, multinli/, as mtdnn-download leaves
them). Accepted layouts:

  SNLI     snli_1.0_{train,dev,test}.jsonl or .txt (official), or s1/s2/labels.{split}
           (InferSent / e-SNLI); rows with gold label '-' are skipped and counted
  SciTail  [SciTailV1.1/]tsv_format/scitail_1.0_{train,dev,test}.tsv
  HANS     heuristics_train_set.txt -> train, heuristics_evaluation_set.txt -> dev
  XNLI     xnli.{dev,test}.tsv (official, split per language into dev_{lang}/test_{lang}),
           or per-language xnli_validation_{lang}.tsv / xnli_test_{lang}.tsv (HF export)
  MNLI     mnli_development_set_number_of_correct_responses.txt or dev_matched.tsv
           -> mnli_dev_matched; dev_mismatched.tsv -> mnli_dev_mismatched
  MultiNLI [multinli_1.0/]multinli_1.0_{train,dev_matched,dev_mismatched}.jsonl (the
           official release) -> mnli_train, mnli_dev_matched, mnli_dev_mismatched, uid
           pairID; rows with gold label '-' are skipped and counted. A split the MNLI
           folder gave is not read again. GLUE's MNLI.zip (mtdnn-glue-prepro) holds the
           same pairs with other uids: convert one of the two, or the later run wins.

Absent files are reported as "skipped: not found". A malformed file or a bad flag
stops the run with one line ``error: <file>:<line>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_utils.cli import OUTPUT_DIR_ALIASES, add_dataclass_args, option, parse_dataclass_args
from data_utils.errors import run_script
from data_utils.prepro import DEFAULT_CANONICAL_DIR
from data_utils.sources import Source, convert_all, nli_sources
from data_utils.task_def import load_task_defs

DATASETS = {
    "snli": "SNLI 1.0 folder",
    "scitail": "SciTail folder (the one holding SciTailV1.1/ or tsv_format/)",
    "hans": "HANS folder with heuristics_{train,evaluation}_set.txt",
    "xnli": "XNLI folder (XNLI-1.0/xnli.{dev,test}.tsv or per-language xnli_*_{lang}.tsv)",
    "mnli": "MNLI folder with the dev_matched file (HANS-repo copy or GLUE dev_matched.tsv)",
    "multinli": "MultiNLI 1.0 folder (multinli_1.0/multinli_1.0_{train,dev_*}.jsonl)",
}
_NOT_GIVEN = "; not converted when neither this nor --data_dir is given."


@dataclass(frozen=True)
class NliPreproConfig:
    """The NLI converter's options; each field is a flag (data_utils.cli)."""

    data_dir: str = option(
        "Parent folder; any --{name}_dir not given defaults to DATA_DIR/{name} "
        "(snli, scitail, hans, xnli, mnli, multinli).",
        "",
    )
    snli_dir: str = option(DATASETS["snli"] + _NOT_GIVEN, "")
    scitail_dir: str = option(DATASETS["scitail"] + _NOT_GIVEN, "")
    hans_dir: str = option(DATASETS["hans"] + _NOT_GIVEN, "")
    xnli_dir: str = option(DATASETS["xnli"] + _NOT_GIVEN, "")
    mnli_dir: str = option(DATASETS["mnli"] + _NOT_GIVEN, "")
    multinli_dir: str = option(DATASETS["multinli"] + _NOT_GIVEN, "")
    output_dir: str = option(
        "Folder for the canonical {task}_{split}.tsv files (created if needed).",
        DEFAULT_CANONICAL_DIR,
        aliases=OUTPUT_DIR_ALIASES,
    )
    task_def: tuple[str, ...] = option(
        "Task-definition YAML(s) with label vocabularies and split names, comma-separated: "
        "paths, or the built-in glue and nli (both are needed since mnli is a GLUE task).",
        ("glue", "nli"),
    )


def main(cfg: NliPreproConfig, log: Callable[[str], None] = print) -> dict[tuple[str, str], int]:
    """Convert every dataset whose folder is given or found; returns
    ``{(task, split): rows written}``."""
    task_defs = load_task_defs(*cfg.task_def)
    jobs: list[tuple[Path, Sequence[Source]]] = []
    for name, sources in nli_sources(task_defs).items():
        given = getattr(cfg, f"{name}_dir")
        folder = Path(given) if given else (Path(cfg.data_dir) / name if cfg.data_dir else None)
        if folder is None:
            log(f"{name}: skipped: no --{name}_dir or --data_dir given")
        elif not folder.is_dir():
            log(f"{name}: skipped: not found ({folder} is not a folder)")
        else:
            jobs.append((folder, sources))
    return convert_all(jobs, Path(cfg.output_dir), task_defs, log=log)


def nli_prepro_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a misspelled flag must be an error, not a prefix match
    )
    add_dataclass_args(parser, NliPreproConfig, "conversion")
    return parser


def parse_nli_prepro_args(argv: Sequence[str] | None = None) -> NliPreproConfig:
    return parse_dataclass_args(nli_prepro_parser(), NliPreproConfig, argv)


def run_nli_prepro(argv: Sequence[str] | None = None) -> int:
    """``mtdnn-nli-prepro``, ``python -m data_utils.convert_nli`` and
    experiments/nli/nli_prepro.py: exit status 0, or 2 with one ``error: ...`` line."""
    return run_script(lambda args: main(parse_nli_prepro_args(args)), argv)


if __name__ == "__main__":
    sys.exit(run_nli_prepro())
