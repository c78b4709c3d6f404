#!/usr/bin/env python
"""Markdown tables (mean, std and each seed) from run_grid.py results files.

    python experiments/glue/summarize.py experiments/glue/results/*.jsonl

Runs named ``<group>_s<seed>`` are grouped; each cell is the best dev epoch's
primary metric (the first metric of the task), the way run_grid.py records it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("results", nargs="+", type=Path, help="results.jsonl files of run_grid.py")
    args = p.parse_args()
    groups: dict[tuple[str, str], list[tuple[int, float, int]]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    for path in args.results:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            match = re.fullmatch(r"(.+)_s(\d+)", r["name"])
            group, seed = (match.group(1), int(match.group(2))) if match else (r["name"], 0)
            seconds[group].append(r["wall_seconds"])
            for dataset, metrics in r.get("best", {}).items():
                primary = next(k for k in metrics if k != "epoch")
                groups[(group, f"{dataset} {primary}")].append(
                    (seed, metrics[primary], metrics["epoch"])
                )
    print("| run | dev metric | mean | std | seeds: score (best epoch) | wall s per run |")
    print("|---|---|---|---|---|---|")
    for (group, metric), rows in groups.items():
        scores = [s for _, s, _ in rows]
        std = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        seeds = ", ".join(f"s{seed}: {s:.2f} ({e})" for seed, s, e in sorted(rows))
        wall = statistics.mean(seconds[group])
        print(
            f"| {group} | {metric} | {statistics.mean(scores):.2f} | {std:.2f} | {seeds} | {wall:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
