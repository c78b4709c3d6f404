#!/usr/bin/env python
"""Convert SNLI, SciTail, HANS, XNLI, MNLI and MultiNLI files into canonical TSVs.

    python experiments/nli/nli_prepro.py --data_dir data/raw --output_dir data/canonical_data

The command line is data_utils/convert_nli.py's (also ``python -m
data_utils.convert_nli`` and, installed, ``mtdnn-nli-prepro``); ``--help`` lists
every flag and the layouts each dataset may come in.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout: the package two folders up, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_utils.convert_nli import run_nli_prepro  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_nli_prepro(sys.argv[1:]))
