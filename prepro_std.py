#!/usr/bin/env python
"""Tokenize canonical TSVs into JSON lines for training and prediction.

    python prepro_std.py --model bert-base-uncased --data_dir data/canonical_data

The command line is data_utils/prepro.py's (also ``python -m data_utils.prepro`` and,
installed, ``mtdnn-prepro``); ``--help`` lists every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout: the package beside this script, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_utils.prepro import run_prepro  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_prepro(sys.argv[1:]))
