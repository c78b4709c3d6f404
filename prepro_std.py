"""Tokenize canonical TSVs into JSON lines for training and prediction.

    python prepro_std.py --model bert-base-uncased --root_dir data/canonical_data

Reads ``{root_dir}/{task}_{split}.tsv`` (made by experiments/*/..._prepro.py) and
writes ``{output_dir}/{task}_{split}.json``, one object per line:

    {"uid": "17", "label": 1, "input_ids": [...], "token_type_ids": [...]}

label: class id (index into the task's labels), a float for regression, or null
for unlabeled test rows; token_type_ids only if the tokenizer has them.
The default output_dir is {root_dir}/{tag}, tag = the model's last path component
(a generic folder name such as "model" is replaced by its parent's name), made
filesystem-safe. Unchanged inputs are skipped (see the .json.meta sidecars).
A malformed canonical file stops the run with one line
``error: <file>:<line>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT))  # importable when run from another directory

from data_utils import prepro  # noqa: E402
from data_utils.errors import run_script  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    defaults = prepro.PreproConfig(model="")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        required=True,
        help="HuggingFace hub name or local folder; its tokenizer is loaded with "
        "AutoTokenizer.from_pretrained",
    )
    parser.add_argument(
        "--task_def",
        nargs="+",
        default=[str(REPO_ROOT / p) for p in defaults.task_defs],
        help="task-definition YAML file(s) giving label vocabularies and split names "
        "(default: experiments/glue/glue_task_def.yml experiments/nli/nli_task_def.yml)",
    )
    parser.add_argument(
        "--root_dir",
        default=defaults.root_dir,
        help="folder with the canonical {task}_{split}.tsv files (default: %(default)s)",
    )
    parser.add_argument(
        "--output_dir",
        help="folder for the {task}_{split}.json files (default: ROOT_DIR/TAG, TAG derived "
        "from --model as described above)",
    )
    parser.add_argument(
        "--max_seq_len",
        type=int,
        default=defaults.max_seq_len,
        help="maximum tokens per example including special tokens; pairs are truncated "
        "longest-first so both sentences are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="tokenize only these tasks (all their splits with a canonical file); "
        "default: every defined task with a canonical file",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=defaults.batch_size,
        help="examples per call of the (fast, batched) tokenizer (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="re-tokenize even when an output's .meta sidecar says it is up to date",
    )
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_seq_len < 2 or args.batch_size < 1:
        parser.error("--max_seq_len must be >= 2 and --batch_size >= 1")
    prepro.main(
        prepro.PreproConfig(
            model=args.model,
            task_defs=tuple(args.task_def),
            root_dir=args.root_dir,
            output_dir=args.output_dir,
            max_seq_len=args.max_seq_len,
            tasks=tuple(args.tasks) if args.tasks else None,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
        )
    )


if __name__ == "__main__":
    sys.exit(run_script(main))
