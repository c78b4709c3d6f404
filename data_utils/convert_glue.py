"""Convert the original GLUE distribution files into canonical TSVs.

    mtdnn-glue-prepro --data_dir /path/to/glue_data --output_dir data/canonical_data
    python -m data_utils.convert_glue ...   python experiments/glue/glue_prepro.py ...   (the same)

Writes ``{output_dir}/{task}_{split}.tsv`` (header ``uid label premise hypothesis``)
for every task/split whose raw file is present; absent files are reported as
"skipped: not found". A malformed file or a bad flag stops the run with one line
``error: <file>:<line>: <problem>`` and exit status 2; files already written
stay complete, the failing one is not written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_utils.cli import (
    OUTPUT_DIR_ALIASES,
    ConfigError,
    add_dataclass_args,
    option,
    parse_dataclass_args,
)
from data_utils.errors import run_script
from data_utils.prepro import DEFAULT_CANONICAL_DIR
from data_utils.sources import GLUE_SOURCES, convert_all
from data_utils.task_def import load_task_defs

GLUE_TASKS = sorted({source.task for source in GLUE_SOURCES})


@dataclass(frozen=True)
class GluePreproConfig:
    """The GLUE converter's options; each field is a flag (data_utils.cli)."""

    data_dir: str = option(
        "Raw GLUE folder holding CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/, RTE/, "
        "WNLI/ and diagnostic/ (as written by download_glue_data.py); missing ones are skipped.",
        aliases=("--glue_dir",),
    )
    output_dir: str = option(
        "Folder for the canonical {task}_{split}.tsv files (created if needed).",
        DEFAULT_CANONICAL_DIR,
        aliases=OUTPUT_DIR_ALIASES,
    )
    tasks: tuple[str, ...] = option(
        f"Convert only these tasks, comma-separated; default: all of {', '.join(GLUE_TASKS)}.",
        (),
    )
    task_def: tuple[str, ...] = option(
        "Task-definition YAML(s) giving each task's label vocabulary and split names, "
        "comma-separated: paths, or the built-in glue and nli.",
        ("glue",),
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(GLUE_TASKS))
        if unknown:
            raise ValueError(f"tasks: unknown task(s) {unknown}; valid tasks are {GLUE_TASKS}")


def main(cfg: GluePreproConfig, log: Callable[[str], None] = print) -> dict[tuple[str, str], int]:
    """Convert what ``cfg`` selects; returns ``{(task, split): rows written}``."""
    if not Path(cfg.data_dir).is_dir():
        raise ConfigError(f"--data_dir {cfg.data_dir}: is not a folder")
    task_defs = load_task_defs(*cfg.task_def)
    jobs = [(Path(cfg.data_dir), GLUE_SOURCES)]
    return convert_all(jobs, Path(cfg.output_dir), task_defs, cfg.tasks or None, log)


def glue_prepro_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a misspelled flag must be an error, not a prefix match
    )
    add_dataclass_args(parser, GluePreproConfig, "conversion")
    return parser


def parse_glue_prepro_args(argv: Sequence[str] | None = None) -> GluePreproConfig:
    return parse_dataclass_args(glue_prepro_parser(), GluePreproConfig, argv)


def run_glue_prepro(argv: Sequence[str] | None = None) -> int:
    """``mtdnn-glue-prepro``, ``python -m data_utils.convert_glue`` and
    experiments/glue/glue_prepro.py: exit status 0, or 2 with one ``error: ...`` line."""
    return run_script(lambda args: main(parse_glue_prepro_args(args)), argv)


if __name__ == "__main__":
    sys.exit(run_glue_prepro())
