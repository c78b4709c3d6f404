#!/usr/bin/env python
"""Download GLUE, SNLI, MultiNLI, SciTail, XNLI and HANS from their official release URLs.

    python experiments/download_data.py --tasks rte,mrpc --output_dir data/raw

The command line is data_utils/download.py's (also ``python -m data_utils.download``
and, installed, ``mtdnn-download``); ``--help`` lists every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout: the package beside this script, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_utils.download import run_download  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_download(sys.argv[1:]))
