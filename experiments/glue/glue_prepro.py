#!/usr/bin/env python
"""Convert the original GLUE distribution files into canonical TSVs.

    python experiments/glue/glue_prepro.py --data_dir /path/to/glue_data --output_dir data/canonical_data

The command line is data_utils/convert_glue.py's (also ``python -m
data_utils.convert_glue`` and, installed, ``mtdnn-glue-prepro``); ``--help`` lists
every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout: the package two folders up, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_utils.convert_glue import run_glue_prepro  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_glue_prepro(sys.argv[1:]))
