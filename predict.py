#!/usr/bin/env python
"""Predict with a trained checkpoint; optionally write GLUE leaderboard files.

    python predict.py --checkpoint checkpoints/run/best --datasets rte_test,rte_dev \
        --glue_submission submission/
"""

import sys

from mt_dnn.predict import run_predict

if __name__ == "__main__":
    sys.exit(run_predict(sys.argv[1:]))
