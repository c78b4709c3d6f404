"""Convert the NLI sets used for training / zero-shot evaluation into canonical TSVs.

    python experiments/nli/nli_prepro.py --data_dir /work/shared/data --output_dir data/canonical_data

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
           folder gave is not read again. GLUE's MNLI.zip (glue_prepro.py) holds the
           same pairs with other uids: convert one of the two, or the later run wins.

Absent files are reported as "skipped: not found". A malformed file or a bad flag
stops the run with one line ``error: <file>:<line>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

# Run by path: put the repo root on sys.path for `data_utils` without an install.
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.cli import (  # noqa: E402
    OUTPUT_DIR_ALIASES,
    add_dataclass_args,
    option,
    parse_dataclass_args,
)
from data_utils.errors import run_script  # noqa: E402
from data_utils.prepro import DEFAULT_CANONICAL_DIR  # noqa: E402
from data_utils.sources import convert_all, nli_sources  # noqa: E402
from data_utils.task_def import load_task_defs  # noqa: E402

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_dataclass_args(parser, NliPreproConfig, "conversion")
    return parser


def parse_args(argv=None) -> NliPreproConfig:
    return parse_dataclass_args(build_parser(), NliPreproConfig, argv)


def main(argv=None) -> None:
    cfg = parse_args(argv)
    task_defs = load_task_defs(*cfg.task_def)
    jobs = []
    for name, sources in nli_sources(task_defs).items():
        given = getattr(cfg, f"{name}_dir")
        folder = Path(given) if given else (Path(cfg.data_dir) / name if cfg.data_dir else None)
        if folder is None:
            print(f"{name}: skipped: no --{name}_dir or --data_dir given")
        elif not folder.is_dir():
            print(f"{name}: skipped: not found ({folder} is not a folder)")
        else:
            jobs.append((folder, sources))
    convert_all(jobs, Path(cfg.output_dir), task_defs)


if __name__ == "__main__":
    sys.exit(run_script(main))
