#!/usr/bin/env python
"""Fine-tune one shared encoder on one or more GLUE/NLI tasks.

    python train.py --train_datasets rte,mrpc --data_dir data/canonical_data/all-MiniLM-L6-v2

Every flag is also a key of the --config YAML; flags override the YAML.
"""

import sys

from mt_dnn.cli import run_train

if __name__ == "__main__":
    sys.exit(run_train(sys.argv[1:]))
