#!/usr/bin/env python
"""Run a grid of train.py (and predict.py) jobs, resumably, a few at a time.

    python experiments/run_grid.py experiments/glue/grid_minilm.yml --out runs/grid --jobs 4

The grid YAML has ``common`` (flags for every run) and ``runs``: a mapping of run
name -> {args: [train.py flags...], predict: [predict.py flags...] (optional)}.
Each run writes its checkpoint folder under ``--out/<name>`` and one JSON line
to ``--out/results.jsonl`` with its exact command, wall time and best dev
metrics. A run already in results.jsonl is skipped, so a killed grid resumes
where it stopped. ``--summary`` prints a Markdown table of the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_grid(path: Path) -> tuple[list[str], dict[str, dict]]:
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"error: {path}: cannot read the grid: {exc}") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("runs"), dict):
        raise SystemExit(f"error: {path}: expected keys 'common' (list) and 'runs' (mapping)")
    unknown = set(grid) - {"common", "runs"}
    if unknown:
        raise SystemExit(f"error: {path}: unknown key(s) {sorted(unknown)}")
    runs = {}
    for name, spec in grid["runs"].items():
        if not isinstance(spec, dict) or set(spec) - {"args", "predict"}:
            raise SystemExit(f"error: {path}: run '{name}' needs 'args' and optionally 'predict'")
        runs[str(name)] = spec
    return [str(a) for a in grid.get("common") or []], runs


def done_runs(results: Path) -> set[str]:
    if not results.is_file():
        return set()
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {r["name"] for r in records if r["returncode"] == 0}  # failed runs are retried


def run_one(name: str, spec: dict, common: list[str], out: Path, python: str) -> dict:
    run_dir = out / name
    train_cmd = [python, "train.py", *common, *map(str, spec["args"])]
    train_cmd += ["--output_dir", str(run_dir), "--progress", "false"]
    log = out / f"{name}.log"
    started = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.call(train_cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    record = {
        "name": name,
        "command": shlex.join(train_cmd[1:]),
        "returncode": rc,
        "wall_seconds": round(seconds, 1),
    }
    metrics_file = run_dir / "metrics.json"
    if rc == 0 and metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        record["best"] = {
            k: v["metrics"] | {"epoch": v["epoch"]} for k, v in metrics["best"].items()
        }
        record["last"] = metrics["history"][-1]["dev"]
        record["train_examples_per_s"] = metrics["history"][-1]["train_examples_per_s"]
    if rc == 0 and spec.get("predict"):
        predict_cmd = [
            python,
            "predict.py",
            "--checkpoint",
            str(run_dir / "best"),
            "--progress",
            "0",
            *map(str, spec["predict"]),
        ]
        predict_cmd = [a.replace("{run_dir}", str(run_dir)) for a in predict_cmd]
        with log.open("a") as fh:
            record["predict_returncode"] = subprocess.call(
                predict_cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
            )
        record["predict_command"] = shlex.join(predict_cmd[1:])
    status = "ok" if rc == 0 else f"FAILED rc={rc} (see {log})"
    print(f"[{name}] {status} in {seconds:.0f}s: {json.dumps(record.get('best', {}))}", flush=True)
    return record


def summary(results: Path) -> str:
    lines = ["| run | best dev (epoch) | wall s | ex/s |", "|---|---|---|---|"]
    for line in results.read_text().splitlines():
        r = json.loads(line)
        best = (
            "; ".join(
                f"{k}: "
                + ", ".join(f"{m}={v:.2f}" for m, v in d.items() if m != "epoch")
                + f" ({d['epoch']})"
                for k, d in r.get("best", {}).items()
            )
            or f"failed rc={r['returncode']}"
        )
        lines.append(
            f"| {r['name']} | {best} | {r['wall_seconds']} | {r.get('train_examples_per_s', '')} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("grid", type=Path, help="Grid YAML (common flags + named runs).")
    p.add_argument("--out", type=Path, default=Path("runs/grid"), help="Folder for all runs.")
    p.add_argument("--jobs", type=int, default=1, help="Runs at once (share one GPU well).")
    p.add_argument("--only", default="", help="Comma-separated run names to run (default all).")
    p.add_argument("--summary", action="store_true", help="Print the results table and exit.")
    p.add_argument("--python", default=sys.executable, help="Interpreter for the scripts.")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    if args.summary:
        print(summary(results))
        return 0
    common, runs = load_grid(args.grid)
    only = {n for n in args.only.split(",") if n}
    todo = [n for n in runs if n not in done_runs(results) and (not only or n in only)]
    print(f"{len(todo)} run(s) to do, {args.jobs} at a time -> {results}", flush=True)
    env_threads = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    os.environ.setdefault("OMP_NUM_THREADS", str(env_threads))

    def job(name: str) -> None:
        record = run_one(name, runs[name], common, args.out, args.python)
        with results.open("a") as fh:  # one short write per line: safe across threads
            fh.write(json.dumps(record) + "\n")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(job, todo))
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
