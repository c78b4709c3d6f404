"""``python -m mt_dnn.train``: train.py's command line, from any folder (see mt_dnn/cli.py)."""

import sys

from mt_dnn.cli import run_train

if __name__ == "__main__":
    sys.exit(run_train())
