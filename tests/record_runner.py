"""train.py that also records which training rows this process trained on: distributed tests only.

    python tests/record_runner.py OUT_JSON train.py-flags...
    torchrun --standalone --nproc_per_node 2 tests/record_runner.py OUT_JSON train.py-flags...

Every micro-batch the trainer collates is recorded as ``(epoch, task, [uids])``;
at the end each rank writes ``OUT_JSON`` with ``{rank}`` replaced by its rank.
Nothing else about training changes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

torch.set_num_threads(1)

from mt_dnn import trainer  # noqa: E402
from mt_dnn.cli import run_train  # noqa: E402


def main() -> int:
    out = sys.argv[1]
    seen: list[tuple[int, str, list[str]]] = []
    real_collate, real_train_epoch = trainer.collate, trainer.train_epoch
    current = {"epoch": 0}

    def train_epoch(run, state):
        current["epoch"] = state.epoch
        return real_train_epoch(run, state)

    def collate(rows, pad_id, task):
        seen.append((current["epoch"], task.name, [row["uid"] for row in rows]))
        return real_collate(rows, pad_id, task)

    trainer.collate, trainer.train_epoch = collate, train_epoch
    rank = os.environ.get("RANK", "0")  # read before the trainer leaves the process group
    code = run_train(sys.argv[2:])
    Path(out.format(rank=rank)).write_text(json.dumps(seen), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
