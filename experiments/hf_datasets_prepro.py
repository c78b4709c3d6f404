"""Convert Hugging Face hub parquet files (GLUE, SNLI, MultiNLI, SciTail, XNLI, HANS) into canonical TSVs.

    python experiments/hf_datasets_prepro.py --hf_dir data/hf --output_dir data/canonical_data

HF_DIR holds one folder per hub dataset, as downloaded from the hub, e.g.
``huggingface-cli download nyu-mll/glue --repo-type dataset --local-dir data/hf/glue``:

  glue/{cola,sst2,mrpc,qqp,stsb,mnli,qnli,rte,wnli,ax}/{split}-NNNNN-of-NNNNN.parquet
  snli/plain_text/   multi_nli/data/   scitail/tsv_format/   xnli/{lang}/   hans/plain_text/

(a split may also be a folder of shards, {split}/0000.parquet, as in the hub's
refs/convert/parquet branch). The output is the same {task}_{split}.tsv that
glue_prepro.py / nli_prepro.py write from the official files; label ids become
the task YAML's label strings (see data_utils/parquet_source.py and docs/data.md).
Absent folders are reported as "skipped: not found". A malformed file stops the
run with one line ``error: <file>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run by path: put the repo root on sys.path for `data_utils` without an install.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.errors import DataError, run_script  # noqa: E402
from data_utils.parquet_source import HUB_CONFIGS, convert_hub  # noqa: E402
from data_utils.task_def import load_task_defs  # noqa: E402

TASKS = sorted({config.task for config in HUB_CONFIGS})
# The task definitions' in-repository paths (resolved to the packaged copies where
# they have moved).
TASK_DEFS = (
    str(REPO_ROOT / "experiments/glue/glue_task_def.yml"),
    str(REPO_ROOT / "experiments/nli/nli_task_def.yml"),
)


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--hf_dir",
        required=True,
        help="folder holding the hub datasets' folders (glue/, snli/, multi_nli/, scitail/, "
        "xnli/, hans/); missing ones are skipped",
    )
    parser.add_argument(
        "--output_dir",
        default="data/canonical_data",
        help="folder for the canonical {task}_{split}.tsv files (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        type=_list,
        default=[],
        help=f"comma-separated tasks to convert (default: all of {', '.join(TASKS)})",
    )
    parser.add_argument(
        "--task_def",
        type=_list,
        default=list(TASK_DEFS),
        help="comma-separated task-definition YAMLs with label vocabularies and split names "
        "(default: the project's GLUE and NLI definitions)",
    )
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        raise DataError("--tasks", None, f"unknown task(s) {unknown}; valid tasks are {TASKS}")
    if not Path(args.hf_dir).is_dir():
        raise DataError(args.hf_dir, None, "--hf_dir is not a folder")
    task_defs = load_task_defs(*args.task_def)
    done = convert_hub(args.hf_dir, args.output_dir, task_defs, args.tasks or None)
    if not done:
        raise DataError(args.hf_dir, None, "no hub parquet files found for the requested tasks")


if __name__ == "__main__":
    sys.exit(run_script(main))
