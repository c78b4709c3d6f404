#!/usr/bin/env python
"""Convert Hugging Face hub parquet files (GLUE, SNLI, MultiNLI, SciTail, XNLI, HANS) into canonical TSVs.

    python experiments/hf_datasets_prepro.py --data_dir data/hf --output_dir data/canonical_data

The command line is data_utils/parquet_source.py's (also ``python -m
data_utils.parquet_source`` and, installed, ``mtdnn-hf-prepro``); ``--help`` lists
every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout: the package beside this script, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_utils.parquet_source import run_hf_prepro  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_hf_prepro(sys.argv[1:]))
