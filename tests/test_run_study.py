"""The study runner: a unit cut off half-way resumes and gives the uncut unit's result.

A tiny BERT (dropout on) and a one-unit grid. The code the runner runs is a
git checkout of its own whose ``train.py`` SIGKILLs itself after optimizer
step 3 on its first call (``tests/kill_runner.py``), as a pre-empted job or
the end of a session would; the second call of the runner resumes the unit.
Marked ``integration``: subprocesses, a few seconds each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tiny import tiny_grid, write_tiny_run_inputs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
UNIT = "t-none-s1"

KILLING_TRAIN = """\
import os, runpy, sys
from pathlib import Path
marker = Path(os.environ["KILL_MARKER"])
if marker.exists():
    sys.argv = ["train.py", *sys.argv[1:]]
    runpy.run_path({train!r}, run_name="__main__")
else:
    marker.touch()
    sys.argv = ["kill_runner.py", "step:3", *sys.argv[1:]]
    runpy.run_path({killer!r}, run_name="__main__")
"""


def checkout(root: Path, killing: bool) -> Path:
    """A git repository with this project's package and scripts (linked), and its own train.py."""
    code = root / ("code_killing" if killing else "code")
    code.mkdir()
    for name in ("mt_dnn", "data_utils", "predict.py"):
        (code / name).symlink_to(ROOT / name)
    if killing:
        text = KILLING_TRAIN.format(
            train=str(ROOT / "train.py"), killer=str(ROOT / "tests" / "kill_runner.py")
        )
        (code / "train.py").write_text(text)
    else:
        (code / "train.py").symlink_to(ROOT / "train.py")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "pinned"]):
        subprocess.run(["git", *cmd], cwd=code, check=True, env=env, capture_output=True)
    return code


def grid(root: Path, methods=None, seeds=(1,), **study) -> Path:
    model, yml, data = write_tiny_run_inputs(root, dropout=0.1)
    common = ["--task_def", str(yml), "--data_dir", str(data), "--init_checkpoint", str(model),
              "--epochs", "2"]  # fmt: skip
    return tiny_grid(root / "grid.yml", common, methods, seeds, **study)


def import_run_study():
    """experiments/tat_study/run_study.py as a module (it is a script, not a package)."""
    sys.path.insert(0, str(ROOT / "experiments" / "tat_study"))
    try:
        import run_study
    finally:
        sys.path.pop(0)
    return run_study


def runner(grid_file: Path, code: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "experiments/tat_study/run_study.py"), str(grid_file),
           "--code_dir", str(code), "--results", str(out / "results"), "--runs",
           str(out / "runs"), "--save_every", "2", *extra]  # fmt: skip
    env = {**os.environ, "KILL_MARKER": str(out / "killed"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_a_cut_off_unit_resumes_to_the_uncut_result(tmp_path):
    grid_file = grid(tmp_path)
    plain, killing = checkout(tmp_path, False), checkout(tmp_path, True)

    ref = runner(grid_file, plain, tmp_path / "ref")
    assert ref.returncode == 0, ref.stdout + ref.stderr
    cut = runner(grid_file, killing, tmp_path / "cut")
    assert cut.returncode != 0 and "exited -9" in cut.stderr, cut.stdout + cut.stderr
    unit_dir = tmp_path / "cut" / "runs" / UNIT
    assert (unit_dir / "checkpoints" / "step-2").is_dir()
    assert not (tmp_path / "cut" / "results" / f"{UNIT}.json").exists()
    listed = runner(grid_file, killing, tmp_path / "cut", "--list")
    assert f"todo  {UNIT}  (resumes from step 2; 1 attempt(s)" in listed.stdout, listed.stdout
    resumed = runner(grid_file, killing, tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    a = json.loads((tmp_path / "ref" / "results" / f"{UNIT}.json").read_text())
    b = json.loads((tmp_path / "cut" / "results" / f"{UNIT}.json").read_text())
    assert a["attempts"] == 1 and b["attempts"] == 2
    assert "--save_every 2" in b["command"]
    assert b["eval"] == a["eval"]  # every per-example prediction
    assert [h["dev"] for h in b["history"]] == [h["dev"] for h in a["history"]]
    clock = json.loads((unit_dir / "unit_clock.json").read_text())["attempts"]
    assert len(clock) == 2 and all(t["seconds"] > 0 for t in clock)
    assert b["wall_seconds"] == pytest.approx(sum(t["seconds"] for t in clock), abs=0.2)
    log = (tmp_path / "cut" / "runs" / f"{UNIT}.log").read_text()
    assert "attempt 2: resuming" in log and "resumed from" in log


def test_a_study_scored_at_its_last_epoch_predicts_with_the_last_step_checkpoint(tmp_path):
    grid_file = grid(tmp_path, checkpoint="last")
    out = tmp_path / "out"
    done = runner(grid_file, checkout(tmp_path, False), out)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "results" / f"{UNIT}.json").read_text())
    assert record["checkpoint"] == "last" and record["scored_epoch"] == 2
    log = (out / "runs" / f"{UNIT}.log").read_text()
    per_epoch = int(re.search(r"\| (\d+) batches/epoch", log).group(1))
    last = out / "runs" / UNIT / "checkpoints" / f"step-{2 * per_epoch}"
    assert f"--checkpoint {last} " in record["predict_command"]
    # scored with the last epoch's weights: its dev metrics are the last epoch's
    assert record["eval"]["tcls_dev"]["metrics"] == pytest.approx(
        record["history"][-1]["dev"]["tcls_dev"]
    )


def test_a_grid_with_an_unknown_checkpoint_rule_is_refused(tmp_path):
    run_study = import_run_study()
    with pytest.raises(SystemExit, match="checkpoint must be one of"):
        run_study.load_grid(grid(tmp_path, checkpoint="final"))


def test_can_resume_tells_code_with_save_every_from_older_code(tmp_path):
    run_study = import_run_study()
    old = tmp_path / "old"
    (old / "mt_dnn").mkdir(parents=True)
    (old / "mt_dnn" / "config.py").write_text("epochs: int = 3\n")
    assert not run_study.can_resume(old)
    assert run_study.can_resume(ROOT)


def test_a_damaged_unit_clock_is_refused_saying_which_file(tmp_path):
    run_study = import_run_study()
    clock = tmp_path / "unit_clock.json"
    for text in ('{"seconds": 3}', "{not json"):
        clock.write_text(text)
        with pytest.raises(SystemExit, match=r"unit_clock\.json: not a unit clock"):
            run_study.UnitClock(clock)


def test_every_unit_of_the_committed_grid_is_a_valid_train_command(tmp_path):
    """A misspelled flag in grid.yml would otherwise surface hours into a run."""
    from mt_dnn.cli import parse_train_args

    run_study = import_run_study()
    grid_file = ROOT / "experiments" / "tat_study" / "grid.yml"
    study_grid = run_study.load_grid(grid_file)
    names = set()
    for name, study, method, seed in run_study.units(study_grid):
        flags = [str(f).replace("{oracle}", str(tmp_path / "oracle.json"))
                 for f in study_grid["methods"][method]]  # fmt: skip
        argv = run_study.train_args(study_grid, study, flags, seed)
        cfg, adv = parse_train_args([*argv, "--output_dir", str(tmp_path / name)])
        assert cfg.seed == seed and adv.adv == flags[flags.index("--adv") + 1], name
        names.add(name)
    assert {"mnli-tat-s1", "stsb-tat_uniform-s3", "cola-tat-s3"} <= names
    _, adv = parse_train_args(["--adv", *study_grid["methods"]["tat_uniform"][1:]])
    assert adv.adv == "tat" and adv.tat_smoothing == 1e9


def test_jobs_run_units_side_by_side_and_an_oracle_after_the_run_it_needs(tmp_path):
    methods = {
        "none": ["--adv", "none"],
        "tat_oracle": ["--adv", "tat", "--tat_oracle", "{oracle}"],
    }
    grid_file = grid(tmp_path, methods=methods, seeds=(1, 2))
    out = tmp_path / "out"
    # the oracle first: it still starts only once the standard run of its seed is done
    only = "t-tat_oracle-s1,t-none-s1,t-none-s2"
    done = runner(grid_file, checkout(tmp_path, False), out, "--jobs", "2", "--only", only)
    assert done.returncode == 0, done.stdout + done.stderr
    events = re.findall(r"\[(t-\w+-s\d)\] (started|done)", done.stdout)
    assert events[:2] == [("t-none-s1", "started"), ("t-none-s2", "started")], done.stdout
    assert events.index(("t-none-s1", "done")) < events.index(("t-tat_oracle-s1", "started"))
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        "t-none-s1.json", "t-none-s2.json", "t-tat_oracle-s1.json"
    ]  # fmt: skip
    oracle = json.loads((out / "results" / "t-tat_oracle-s1.json").read_text())
    standard = json.loads((out / "results" / "t-none-s1.json").read_text())["eval"]["tcls_dev"]
    matrix = [[0] * 3 for _ in range(3)]
    for gold, pred in zip(standard["gold"], standard["pred"], strict=True):
        matrix[gold][pred] += 1
    assert oracle["oracle_confusion"]["tasks"]["tcls"]["matrix"] == matrix


def test_only_with_a_unit_not_in_the_grid_is_refused_naming_it(tmp_path):
    grid_file = grid(tmp_path)
    refused = runner(grid_file, checkout(tmp_path, False), tmp_path / "out", "--only", "t-none-s9")
    assert refused.returncode == 2 and "--only: not units of" in refused.stderr
    assert "t-none-s9" in refused.stderr and not (tmp_path / "out" / "results").exists()


def test_a_stopped_runner_stops_the_scripts_of_every_unit_it_runs(tmp_path):
    """SIGTERM reaches only the runner; with --jobs 2 its two units' scripts must end too."""
    pids = tmp_path / "pids"
    python = tmp_path / "python"  # a stand-in interpreter: each "train.py" sleeps until killed
    python.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 600\n")
    python.chmod(0o755)
    grid_file = grid(tmp_path, seeds=(1, 2))
    cmd = [sys.executable, str(ROOT / "experiments/tat_study/run_study.py"), str(grid_file),
           "--code_dir", str(checkout(tmp_path, False)), "--results", str(tmp_path / "results"),
           "--runs", str(tmp_path / "runs"), "--python", str(python), "--jobs", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(600):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        time.sleep(0.1)
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2 and all(alive(pid) for pid in children)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in children)
    for unit in ("t-none-s1", "t-none-s2"):  # each attempt's time is kept for the resume
        assert (tmp_path / "runs" / unit / "unit_clock.json").is_file()


def alive(pid: int) -> bool:
    """A running process (not a zombie, not gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_adopt_takes_units_run_elsewhere_and_refuses_a_misnamed_one(tmp_path):
    grid_file = grid(tmp_path, seeds=(1, 2))
    elsewhere, results = tmp_path / "elsewhere", tmp_path / "results"
    elsewhere.mkdir()
    record = {"unit": "t-none-s2", "machine": "H200", "eval": {}}
    (elsewhere / "t-none-s2.json").write_text(json.dumps(record))
    (elsewhere / "t-other-s1.json").write_text("{}")  # not a unit of the grid: left alone
    cmd = [sys.executable, str(ROOT / "experiments/tat_study/run_study.py"), str(grid_file),
           "--seeds", "1,2", "--results", str(results), "--adopt", str(elsewhere)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "adopted 1 unit(s)" in done.stdout, done.stdout + done.stderr
    assert [p.name for p in results.iterdir()] == ["t-none-s2.json"]
    assert json.loads((results / "t-none-s2.json").read_text()) == record
    (elsewhere / "t-none-s1.json").write_text(json.dumps({**record, "unit": "t-none-s9"}))
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert (
        refused.returncode != 0
        and "t-none-s1.json: holds no result of unit t-none-s1" in refused.stderr
    )
