#!/usr/bin/env python
"""Run the TAT study unit by unit, resumably, and commit each finished unit's result.

    python experiments/tat_study/run_study.py experiments/tat_study/grid.yml \
        --code_dir ../study-code --commit

A *unit* is one study (training set) x one method x one seed: ``train.py`` with
model selection on the study's in-domain dev set only, then ``predict.py`` over the
study's evaluation sets with the best epoch's checkpoint (or, for a study whose grid
entry says ``checkpoint: last``, the last epoch's: its dev set is then never used to
select). Its result, with every
per-example prediction, the exact commands, the commit the code ran on, the
machine and the wall time, is written to ``--results/<unit>.json`` and (with
``--commit``) committed at once. A unit whose JSON exists is skipped. A unit cut
off half-way resumes from its newest checkpoint (every ``--save_every``
optimizer steps, exact resume) when the code in ``--code_dir`` can; code older
than the trainer's resume starts it again from scratch.

A method whose flags contain ``{oracle}`` (TAT's oracle experiment) gets there
the path of a confusion-matrix file built from the committed result of the same
study and seed's ``none`` unit: the standard model's confusion matrix on the
in-domain dev set (the study's first prediction set), which ``--tat_oracle``
then keeps fixed as TAT's expected error. Such a unit waits until that result
exists.

``--code_dir`` is the checkout whose ``train.py``/``predict.py`` run (a
``git worktree`` pinned at a commit keeps the code fixed while the main checkout
moves on); results go to ``--results`` in this checkout. Units run in the order
of the grid's ``waves``, seed-major inside a wave so that partial results stay
paired by seed. ``--jobs N`` runs N units at a time (each its own ``train.py``);
a runner stopped with Ctrl-C or SIGTERM stops them too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data_utils.atomic import atomic_write  # noqa: E402


def load_grid(path: Path) -> dict:
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"error: {path}: cannot read the grid: {exc}") from None
    for key in ("common", "studies", "methods", "waves"):
        if key not in grid:
            raise SystemExit(f"error: {path}: missing key '{key}'")
    unknown = set(grid) - {"common", "studies", "methods", "waves"}
    if unknown:
        raise SystemExit(f"error: {path}: unknown key(s) {sorted(unknown)}")
    for name, study in grid["studies"].items():
        if study.get("checkpoint", "best") not in CHECKPOINTS:
            raise SystemExit(
                f"error: {path}: study '{name}': checkpoint must be one of {list(CHECKPOINTS)}"
            )
    for i, wave in enumerate(grid["waves"]):
        for study in wave["studies"]:
            if study not in grid["studies"]:
                raise SystemExit(f"error: {path}: wave {i}: unknown study '{study}'")
        for method in wave["methods"]:
            if method not in grid["methods"]:
                raise SystemExit(f"error: {path}: wave {i}: unknown method '{method}'")
    return grid


# Which checkpoint a study's unit is scored with: the epoch with the best in-domain dev
# score (its dev set then both selects and reports), or the last epoch (the dev set is
# never used for selection: the studies whose only labelled evaluation set is their dev set).
CHECKPOINTS = ("best", "last")


def units(grid: dict, seeds: Sequence[int] = ()) -> list[tuple[str, str, str, int]]:
    """(unit name, study, method, seed) in run order; ``seeds`` replaces every wave's."""
    out = []
    for wave in grid["waves"]:
        for seed in seeds or wave["seeds"]:
            for study in wave["studies"]:
                for method in wave["methods"]:
                    name = f"{study}-{method}-s{seed}"
                    if name not in [u[0] for u in out]:
                        out.append((name, study, method, int(seed)))
    return out


def train_args(
    grid: dict, study: str, flags: list[str], seed: int, extra: Sequence[str] = ()
) -> list[str]:
    """A unit's train.py flags, but for where it writes: the grid's, the method's, the
    seed, then ``extra`` (the runner's --train_flags: where this machine keeps the model)."""
    return [*map(str, grid["common"]), *map(str, grid["studies"][study]["train"]),
            *flags, "--seed", str(seed), "--adv_seed", str(seed), *extra]  # fmt: skip


def git(code_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=code_dir, check=True, capture_output=True, text=True
    ).stdout.strip()


def code_version(args) -> tuple[str, bool]:
    """The commit the units' code is at, and whether tracked files differ from it.

    A copy of a checkout without its .git (another machine's) says so with
    ``--code_commit COMMIT[:dirty]``, as its git checkout said when it was copied.
    """
    if args.code_commit:
        commit, _, state = args.code_commit.partition(":")
        return commit, state == "dirty"
    commit = git(args.code_dir, "rev-parse", "HEAD")
    return commit, bool(git(args.code_dir, "status", "--porcelain", "--untracked-files=no"))


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = ""
    try:  # the units train on a GPU when there is one (train.py's --device auto)
        smi = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        names = subprocess.run(smi, capture_output=True, text=True, timeout=30).stdout.split("\n")
        gpus = ", ".join(n.strip() for n in names if n.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    host = f"{os.cpu_count()}-core CPU ({cpu or platform.processor()})"
    return f"{host}{f', GPU {gpus}' if gpus else ''}, {platform.platform()}"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def eval_record(data_dir: Path, pred_dir: Path, name: str, labels: list[str] | None, metrics):
    """Gold and predicted values of one evaluation set, aligned by uid."""
    gold_rows = {r["uid"]: r["label"] for r in read_jsonl(data_dir / f"{name}.json")}
    preds = read_jsonl(pred_dir / f"{name}.jsonl")
    uids = [p["uid"] for p in preds]
    if labels is None:
        pred = [float(p["prediction"]) for p in preds]
    else:
        pred = [labels.index(p["prediction"]) for p in preds]
    return {
        "metrics": metrics.get(name, {}),
        "labels": labels,
        "uids": uids,
        "gold": [gold_rows[u] for u in uids],
        "pred": pred,
    }


def oracle_file(args, study: str, task: str, seed: int, dev_set: str) -> Path | None:
    """The standard run's dev confusion matrix as a --tat_oracle file, or None if not run yet."""
    from mt_dnn.confusion import save_confusion

    result = args.results / f"{study}-none-s{seed}.json"
    if not result.is_file():
        return None
    dev = json.loads(result.read_text(encoding="utf-8"))["eval"][dev_set]
    n = len(dev["labels"])
    matrix = [[0] * n for _ in range(n)]
    for gold, pred in zip(dev["gold"], dev["pred"], strict=True):
        matrix[gold][pred] += 1
    path = args.runs / f"{study}-oracle-s{seed}.json"
    save_confusion(path, {task: (dev["labels"], matrix)})
    return path


def run_unit(args, grid: dict, name: str, study: str, method: str, seed: int) -> dict | None:
    from data_utils.task_def import BUILTIN_TASK_DEFS, load_task_defs

    spec = grid["studies"][study]
    run_dir = args.runs / name
    flags = [str(f) for f in grid["methods"][method]]
    oracle = None
    if any("{oracle}" in f for f in flags):
        task = spec["train"][spec["train"].index("--train_datasets") + 1]
        oracle = oracle_file(args, study, task, seed, spec["predict"][0])
        if oracle is None:
            print(f"[{name}] waits for {study}-none-s{seed}", flush=True)
            return None
        flags = [f.replace("{oracle}", str(oracle)) for f in flags]
    from mt_dnn.trainer import step_folders

    resumable = can_resume(args.code_dir)
    if run_dir.exists() and not (resumable and step_folders(run_dir)):
        shutil.rmtree(run_dir)  # nothing to resume from: the unit starts again from scratch
    py = args.python
    extra = shlex.split(args.train_flags)
    train_cmd = [py, "train.py", *train_args(grid, study, flags, seed, extra),
                 "--output_dir", str(run_dir), "--progress", "false"]  # fmt: skip
    if resumable:  # cut off, the unit resumes from its newest checkpoint (bit for bit)
        train_cmd += ["--save_every", str(args.save_every)]
    pred_dir = run_dir / "predictions"
    checkpoint = spec.get("checkpoint", "best")

    def predict_cmd() -> list[str]:
        """predict.py on best/, or on the newest step folder (the last epoch's end)."""
        if checkpoint == "best":
            scored = run_dir / "best"
        elif steps := step_folders(run_dir):
            scored = steps[-1]
        else:
            raise RuntimeError(f"{name}: no step checkpoint in {run_dir}/checkpoints to score")
        return [py, "predict.py", "--checkpoint", str(scored),
                "--datasets", ",".join(spec["predict"]), "--output_dir", str(pred_dir),
                "--progress", "0"]  # fmt: skip

    commit, dirty = code_version(args)
    log = args.runs / f"{name}.log"
    args.runs.mkdir(parents=True, exist_ok=True)
    clock = UnitClock(run_dir / CLOCK)
    with log.open("a" if clock.attempts else "w") as fh:
        if clock.attempts:
            fh.write(f"\n--- attempt {len(clock.attempts) + 1}: resuming\n")
            fh.flush()

        def run(cmd: list[str]) -> None:
            rc = clock.run(cmd, cwd=args.code_dir, stdout=fh, stderr=subprocess.STDOUT)
            if rc:
                raise RuntimeError(f"{name}: {cmd[1]} exited {rc}; see {log}")

        clock.start()
        run(train_cmd)
        run(predict := predict_cmd())
    started, wall = clock.attempts[0]["started"], clock.total()
    # The full training state of every step checkpoint is large; predict has scored one.
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    metrics_file = json.loads((run_dir / "metrics.json").read_text())
    predicted = json.loads((pred_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    data_dir = Path(args.code_dir) / config["data_dir"]
    # A built-in name (glue, nli) is the package's file; a path is relative to the code.
    specs = [p if p in BUILTIN_TASK_DEFS else Path(args.code_dir) / p for p in config["task_def"]]
    task_defs = load_task_defs(*specs)
    evals = {}
    for dataset in spec["predict"]:
        task = next(t for t in task_defs.values() if dataset.startswith(t.name + "_"))
        labels = list(task.labels) if task.labels else None
        evals[dataset] = eval_record(data_dir, pred_dir, dataset, labels, predicted)
    best = metrics_file["best"]
    best_epoch = next(iter(best.values()))["epoch"] if best else None
    record = {
        "unit": name,
        "study": study,
        "method": method,
        "seed": seed,
        "commit": commit,
        "dirty": dirty,
        "command": shlex.join(["python", *train_cmd[1:]]),
        "predict_command": shlex.join(["python", *predict[1:]]),
        "checkpoint": checkpoint,
        "machine": machine(),
        "started": started,
        "wall_seconds": round(wall, 1),
        "attempts": len(clock.attempts),  # > 1: resumed after a cut-off; wall sums them all
        "history": metrics_file["history"],
        "best_epoch": best_epoch,
        "scored_epoch": best_epoch
        if checkpoint == "best"
        else metrics_file["history"][-1]["epoch"],
        "eval": evals,
    }
    confusions = {}
    for path in sorted(run_dir.glob("tat_confusion_epoch*.json")):
        epoch = path.stem.removeprefix("tat_confusion_epoch")
        confusions[epoch] = json.loads(path.read_text())
    if confusions:
        record["tat_confusion"] = confusions
    if oracle is not None:  # the fixed e, so the unit is reproducible from committed files
        record["oracle_confusion"] = json.loads(oracle.read_text(encoding="utf-8"))
    return record


CLOCK = "unit_clock.json"
# The scripts the runner's units are running now: killed when the runner is stopped
# (SIGINT, SIGTERM), which with --jobs > 1 only the main thread hears.
LIVE: set[subprocess.Popen] = set()
LIVE_LOCK = threading.Lock()


def partial(args, name: str) -> str:
    """How far a cut-off unit got: its newest checkpoint and its attempts so far."""
    from mt_dnn.trainer import step_folders

    run_dir = args.runs / name
    steps = step_folders(run_dir)
    if not steps:
        return ""
    clock = UnitClock(run_dir / CLOCK)
    newest = steps[-1].name.removeprefix("step-")
    return (
        f"  (resumes from step {newest}; {len(clock.attempts)} attempt(s), {clock.total():.0f} s)"
    )


def can_resume(code_dir: Path) -> bool:
    """Does that checkout's train.py checkpoint inside epochs and resume (``--save_every``)?"""
    config = code_dir / "mt_dnn" / "config.py"
    return config.is_file() and "save_every:" in config.read_text(encoding="utf-8")


class UnitClock:
    """A unit's wall time over all its attempts, kept in the unit's folder.

    The current attempt's seconds are rewritten every ``tick`` seconds while a
    script runs, so an attempt cut off (the machine stopped, the session ended)
    still counts, to within ``tick``. The total includes the work an attempt
    redid after the newest checkpoint.
    """

    def __init__(self, path: Path, tick: float = 30.0):
        self.path = path
        self.tick = tick
        self.attempts: list[dict] = []
        if path.is_file():
            try:
                self.attempts = list(json.loads(path.read_text(encoding="utf-8"))["attempts"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise SystemExit(
                    f"error: {path}: not a unit clock ({exc!r}); delete it to restart the count"
                ) from None
        self._t0 = 0.0

    def start(self) -> None:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.attempts.append({"started": started, "seconds": 0.0})
        self._t0 = time.perf_counter()
        self._save()

    def run(self, cmd: list[str], **popen) -> int:
        proc = subprocess.Popen(cmd, **popen)
        with LIVE_LOCK:
            LIVE.add(proc)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=self.tick)
                except subprocess.TimeoutExpired:
                    self._save()
                    continue
                self._save()
                return rc
        except BaseException:  # the runner is stopped: so is the script, resumable
            proc.kill()
            proc.wait()
            self._save()
            raise
        finally:
            with LIVE_LOCK:
                LIVE.discard(proc)

    def total(self) -> float:
        return sum(a["seconds"] for a in self.attempts)

    def _save(self) -> None:
        self.attempts[-1]["seconds"] = round(time.perf_counter() - self._t0, 1)
        with atomic_write(self.path) as fh:
            json.dump({"attempts": self.attempts}, fh)


def commit_result(path: Path, name: str, record: dict) -> None:
    message = (
        f"TAT study: unit {name} ({record['wall_seconds']:.0f} s, code {record['commit'][:10]})"
    )
    for attempt in range(20):  # another commit may hold the index lock for a moment
        rc = subprocess.call(["git", "add", str(path)], cwd=ROOT)
        rc = rc or subprocess.call(
            ["git", "commit", "-q", "-m", message, "--", str(path)], cwd=ROOT
        )
        if rc == 0:
            return
        time.sleep(3 + attempt)
    print(f"warning: could not commit {path}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("grid", type=Path, help="Study grid YAML (common, studies, methods, waves).")
    p.add_argument("--code_dir", type=Path, default=ROOT, help="Checkout whose scripts run.")
    p.add_argument("--results", type=Path, default=ROOT / "experiments/tat_study/results",
                   help="Folder of finished units' JSON (committed).")  # fmt: skip
    p.add_argument("--runs", type=Path, default=ROOT / "runs/tat_study",
                   help="Checkpoints and logs of each unit (not committed).")  # fmt: skip
    p.add_argument("--only", default="",
                   help="Comma-separated unit names, run in that order (default: every unit "
                        "not done, in the grid's order).")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1,
                   help="Units run at a time (each its own train.py: on a CPU give each a "
                        "thread, OMP_NUM_THREADS=1; many share one GPU well). A unit whose "
                        "oracle needs another unit's result starts after it.")  # fmt: skip
    p.add_argument("--seeds", default="",
                   help="Comma-separated seeds for every wave instead of the grid's (a GPU "
                        "runs 5: 1,2,3,4,5).")  # fmt: skip
    p.add_argument("--train_flags", default="",
                   help="train.py flags added to every unit's command, e.g. "
                        "'--init_checkpoint /models/minilm' on a machine that keeps the "
                        "model elsewhere; they are part of the recorded command.")  # fmt: skip
    p.add_argument("--code_commit", default="",
                   help="COMMIT or COMMIT:dirty: what --code_dir is a copy of, where it has "
                        "no .git (a copy on another machine). Default: ask git.")  # fmt: skip
    p.add_argument("--adopt", type=Path, default=None,
                   help="Take the finished units' JSONs of this folder (run elsewhere) into "
                        "--results, each committed with --commit; runs nothing.")  # fmt: skip
    p.add_argument("--list", action="store_true", help="List units and their state, then exit.")
    p.add_argument("--commit", action="store_true", help="git-commit each finished unit.")
    p.add_argument("--python", default=sys.executable, help="Interpreter for the scripts.")
    p.add_argument("--save_every", type=int, default=100,
                   help="Optimizer steps between a unit's resumable checkpoints (code with "
                        "--save_every only; older code restarts a cut-off unit).")  # fmt: skip
    args = p.parse_args()
    args.runs = args.runs.resolve()
    args.results = args.results.resolve()
    args.code_dir = args.code_dir.resolve()
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x]
    except ValueError:
        p.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    grid = load_grid(args.grid)
    every = units(grid, seeds)
    if args.adopt is not None:
        return adopt(args, every)
    if args.list:
        for name, *_ in every:
            done = (args.results / f"{name}.json").is_file()
            print(f"{'done' if done else 'todo'}  {name}{'' if done else partial(args, name)}")
        return 0
    by_name = {u[0]: u for u in every}
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in by_name]
    if unknown:
        p.error(f"--only: not units of {args.grid}: {', '.join(unknown)} (see --list)")
    todo = [by_name[n] for n in only] if only else every
    todo = [u for u in todo if not (args.results / f"{u[0]}.json").is_file()]
    print(f"{len(todo)} unit(s) to run from {args.code_dir}", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return 1 if run_units(args, grid, todo) else 0


def adopt(args, every: list[tuple[str, str, str, int]]) -> int:
    """Copy the units of ``args.adopt`` that --results lacks, in run order; commit each."""
    if not args.adopt.is_dir():
        raise SystemExit(f"error: --adopt {args.adopt}: not a folder")
    args.results.mkdir(parents=True, exist_ok=True)
    taken = 0
    for name, *_ in every:
        source, path = args.adopt / f"{name}.json", args.results / f"{name}.json"
        if not source.is_file() or path.is_file():
            continue
        try:
            record = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: {source}: not a unit result: {exc}") from None
        if not isinstance(record, dict) or record.get("unit") != name:
            raise SystemExit(f"error: {source}: holds no result of unit {name}")
        with atomic_write(path) as fh:
            fh.write(source.read_text(encoding="utf-8"))
        print(f"[{name}] adopted ({record.get('machine', '?')})", flush=True)
        if args.commit:
            commit_result(path, name, record)
        taken += 1
    print(f"adopted {taken} unit(s) from {args.adopt}", flush=True)
    return 0


def needs(grid: dict, study: str, method: str, seed: int) -> str | None:
    """The unit whose result a unit needs first: the oracle's standard run, or None."""
    if any("{oracle}" in str(f) for f in grid["methods"][method]):
        return f"{study}-none-s{seed}"
    return None


def run_units(args, grid: dict, todo: list[tuple[str, str, str, int]]) -> list[str]:
    """Run ``todo``, ``args.jobs`` units at a time, in order; the units that failed.

    Each finished unit is written (and committed) here, one at a time. A failed unit
    is reported and the others go on. Stopped, the runner kills its units' scripts;
    each unit resumes from its newest checkpoint on the next run.
    """
    pending, running, failed = list(todo), {}, []
    with ThreadPoolExecutor(args.jobs) as pool:
        try:
            while pending or running:
                waiting = set(running.values()) | {u[0] for u in pending}
                for unit in list(pending):
                    name = unit[0]
                    if len(running) == args.jobs:
                        break
                    if needs(grid, *unit[1:]) in waiting:
                        continue
                    pending.remove(unit)
                    if (args.results / f"{name}.json").is_file():  # another runner did it
                        continue
                    print(f"[{name}] started {datetime.now(UTC):%H:%M:%S}", flush=True)
                    running[pool.submit(run_unit, args, grid, *unit)] = name
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        record = future.result()
                    except RuntimeError as exc:
                        print(f"error: {exc}", file=sys.stderr, flush=True)
                        failed.append(name)
                        continue
                    if record is not None:
                        save_result(args, name, record)
        except BaseException:
            with LIVE_LOCK:
                for proc in LIVE:
                    proc.kill()
            raise
    return failed


def save_result(args, name: str, record: dict) -> None:
    path = args.results / f"{name}.json"
    with atomic_write(path) as fh:
        fh.write(json.dumps(record) + "\n")
    best = {k: v["metrics"] for k, v in record["eval"].items()}
    print(f"[{name}] done in {record['wall_seconds']:.0f}s: {json.dumps(best)}", flush=True)
    if args.commit:
        commit_result(path, name, record)


if __name__ == "__main__":
    sys.exit(main())
