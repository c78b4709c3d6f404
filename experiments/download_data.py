"""Download GLUE, SNLI, MultiNLI, SciTail, XNLI and HANS from their official release URLs.

    python experiments/download_data.py                      # everything, into data/raw
    python experiments/download_data.py --tasks glue,snli --output_dir data/raw
    python experiments/download_data.py --list               # the table: files, sizes, pins

Every file is checked against the size and checksum pinned in
data_utils/dataset_catalog.py (the source of each pin is listed there and in
docs/data.md) before it is unpacked; a mismatch stops with the file's name and
deletes it. Downloads resume: an interrupted file stays as
OUTPUT/downloads/NAME.part and the next run continues it. The result is the
layout the converters read:

    python experiments/glue/glue_prepro.py --glue_dir data/raw/glue
    python experiments/nli/nli_prepro.py --data_dir data/raw

--mirror BASE fetches https://any.host/any/path/FILE from BASE/FILE instead
(BASE: an http(s) URL, a file:// URL or a local folder holding the files).
Errors print one line ``error: <file>: <problem>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run by path: put the repo root on sys.path for `data_utils` without an install.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.dataset_catalog import CATALOG  # noqa: E402
from data_utils.download import download, format_table, select  # noqa: E402
from data_utils.errors import run_script  # noqa: E402

_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}


def _bool(text: str) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(d.name for d in CATALOG)
    groups = sorted({tag for d in CATALOG for tag in d.tags} | {"all"})
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--output_dir",
        default="data/raw",
        help="folder for the unpacked datasets (glue/, snli/, multinli/, scitail/, xnli/, "
        "hans/) and for downloads/ (archives, .part files); default: %(default)s",
    )
    parser.add_argument(
        "--tasks",
        default="all",
        help=f"comma-separated names: {names}; or the groups {', '.join(groups)} (default: all)",
    )
    parser.add_argument(
        "--mirror",
        default="",
        help="fetch every file from BASE/<file name> instead of its official URL "
        "(BASE: http(s) URL, file:// URL or local folder); checksums are still verified",
    )
    parser.add_argument(
        "--progress",
        type=_bool,
        default=True,
        help="show a progress bar per file (true/false; default: true)",
    )
    parser.add_argument(
        "--allow_unverified",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="use files whose checksum is not pinned (marked UNKNOWN in --list); their "
        "sha256 is printed so it can be pinned (default: false)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the table of files, sizes and pinned checksums, and exit",
    )
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    datasets = select(args.tasks.split(","))
    if args.list:
        print(format_table(datasets))
        return
    download(
        datasets,
        Path(args.output_dir),
        mirror=args.mirror or None,
        progress=args.progress,
        allow_unverified=args.allow_unverified,
    )
    print(f"done: {', '.join(d.name for d in datasets)} in {args.output_dir}")


if __name__ == "__main__":
    sys.exit(run_script(main))
