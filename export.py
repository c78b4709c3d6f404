#!/usr/bin/env python
"""Export one task of a trained checkpoint as a HuggingFace model folder.

    python export.py --checkpoint checkpoints/run/best --task rte --output_dir export/rte

The folder loads with AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True) or pipeline("text-classification", model=folder,
trust_remote_code=True); see docs/export.md.
"""

import sys

from mt_dnn.export import run_export

if __name__ == "__main__":
    sys.exit(run_export(sys.argv[1:]))
