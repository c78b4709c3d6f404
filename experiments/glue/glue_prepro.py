"""Convert the original GLUE distribution files into canonical TSVs.

    python experiments/glue/glue_prepro.py --data_dir /path/to/glue_data --output_dir data/canonical_data

Writes ``{output_dir}/{task}_{split}.tsv`` (header ``uid label premise hypothesis``)
for every task/split whose raw file is present; absent files are reported as
"skipped: not found". A malformed file or a bad flag stops the run with one line
``error: <file>:<line>: <problem>`` and exit status 2; files already written
stay complete, the failing one is not written.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

# Scripts are run by path (python experiments/glue/glue_prepro.py), so put the repo
# root on sys.path for `data_utils` without requiring an install.
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.cli import (  # noqa: E402
    OUTPUT_DIR_ALIASES,
    ConfigError,
    add_dataclass_args,
    option,
    parse_dataclass_args,
)
from data_utils.errors import run_script  # noqa: E402
from data_utils.prepro import DEFAULT_CANONICAL_DIR  # noqa: E402
from data_utils.sources import GLUE_SOURCES, convert_all  # noqa: E402
from data_utils.task_def import load_task_defs  # noqa: E402

GLUE_TASKS = sorted({source.task for source in GLUE_SOURCES})


@dataclass(frozen=True)
class GluePreproConfig:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_dataclass_args(parser, GluePreproConfig, "conversion")
    return parser


def parse_args(argv=None) -> GluePreproConfig:
    return parse_dataclass_args(build_parser(), GluePreproConfig, argv)


def main(argv=None) -> None:
    cfg = parse_args(argv)
    if not Path(cfg.data_dir).is_dir():
        raise ConfigError(f"--data_dir {cfg.data_dir}: is not a folder")
    task_defs = load_task_defs(*cfg.task_def)
    jobs = [(Path(cfg.data_dir), GLUE_SOURCES)]
    convert_all(jobs, Path(cfg.output_dir), task_defs, cfg.tasks or None)


if __name__ == "__main__":
    sys.exit(run_script(main))
