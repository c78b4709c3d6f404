"""Convert the original GLUE distribution files into canonical TSVs.

    python experiments/glue/glue_prepro.py --glue_dir /path/to/glue_data --out_dir data/canonical_data

Writes ``{out_dir}/{task}_{split}.tsv`` (header ``uid label premise hypothesis``)
for every task/split whose raw file is present; absent files are reported as
"skipped: not found". A malformed file stops the run with one line
``error: <file>:<line>: <problem>`` and exit status 2; files already written
stay complete, the failing one is not written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Scripts are run by path (python experiments/glue/glue_prepro.py), so put the repo
# root on sys.path for `data_utils` without requiring an install.
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.errors import run_script  # noqa: E402
from data_utils.sources import GLUE_SOURCES, convert_all  # noqa: E402
from data_utils.task_def import load_task_defs  # noqa: E402

GLUE_TASKS = sorted({source.task for source in GLUE_SOURCES})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--glue_dir",
        type=Path,
        required=True,
        help="raw GLUE folder holding CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/, RTE/, "
        "WNLI/ and diagnostic/ (as written by download_glue_data.py); missing ones are skipped",
    )
    parser.add_argument(
        "--out_dir",
        type=Path,
        default=Path("data/canonical_data"),
        help="folder for the canonical {task}_{split}.tsv files (created if needed; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help=f"convert only these tasks (default: all of {', '.join(GLUE_TASKS)})",
    )
    parser.add_argument(
        "--task_def",
        type=Path,
        default=REPO_ROOT / "experiments/glue/glue_task_def.yml",
        help="task-definition YAML giving each task's label vocabulary and split names "
        "(default: experiments/glue/glue_task_def.yml)",
    )
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tasks or ()) - set(GLUE_TASKS))
    if unknown:
        parser.error(f"unknown task(s) {unknown}; valid tasks are {GLUE_TASKS}")
    if not args.glue_dir.is_dir():
        parser.error(f"--glue_dir {args.glue_dir} is not a folder")
    task_defs = load_task_defs(args.task_def)
    convert_all([(args.glue_dir, GLUE_SOURCES)], args.out_dir, task_defs, args.tasks)


if __name__ == "__main__":
    sys.exit(run_script(main))
