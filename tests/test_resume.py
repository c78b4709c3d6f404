"""Runs that survive: SIGKILL anywhere, resume, and get the uninterrupted run bit for bit.

Training runs in subprocesses (``tests/kill_runner.py``) on a tiny BERT with
dropout on, so the random generators matter; each is killed with a real SIGKILL
after a random optimizer step or in the middle of a random checkpoint save, then
rerun with the same command (``--resume auto``). Slow-ish (a few seconds per
subprocess), so marked ``integration``; it needs no real data.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from data_utils.dataset import TaskDataset
from data_utils.task_def import load_task_defs
from mt_dnn.checkpoint import load_checkpoint
from mt_dnn.evaluation import evaluate
from mt_dnn.trainer import last_checkpoint
from tests.tiny import write_tiny_run_inputs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
STEPS = 20  # 2 epochs x (5 + 5) batches of 8
METHODS = {
    "none": [],
    "tat": ["--adv", "tat"],
    "freelb": ["--adv", "freelb", "--adv_k", "2"],
    # The TAT paper's optimizer: Adamax inside Lookahead, whose slow weights are state too.
    "lookahead": ["--optimizer", "adamax", "--lookahead", "true", "--lookahead_k", "4"],
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT with dropout 0.1 saved as a pretrained folder, a task YAML, tokenized data."""
    root = tmp_path_factory.mktemp("resume")
    write_tiny_run_inputs(root, dropout=0.1)
    return root


def flags(setup: Path, out: Path, method: str) -> list[str]:
    return [
        "--task_def", str(setup / "tasks.yml"), "--train_datasets", "tcls,treg",
        "--init_checkpoint", str(setup / "tiny-bert"), "--data_dir", str(setup / "data"),
        "--output_dir", str(out), "--epochs", "2", "--batch_size", "8", "--batch_size_eval", "6",
        "--learning_rate", "1e-3", "--save_every", "3", "--seed", "1", "--progress", "false",
        "--tensorboard", "false", "--device", "cpu", *METHODS[method],
    ]  # fmt: skip


def run(kill: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "kill_runner.py"), kill, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def final_weights_and_predictions(setup: Path, out: Path):
    ckpt = last_checkpoint(out)
    assert ckpt.name == f"step-{STEPS}"
    weights = load_file(str(ckpt / "model.safetensors"))
    model, heads, _ = load_checkpoint(ckpt)
    tasks = load_task_defs(setup / "tasks.yml")
    scores = {}
    for name in ("tcls", "treg"):
        dev = TaskDataset.load(setup / "data" / f"{name}_dev.json", tasks[name], "dev")
        scores[name] = evaluate(model, dev, heads, 6, torch.device("cpu"))["scores"]
    return weights, scores


def assert_identical(a, b):
    (wa, sa), (wb, sb) = a, b
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key


@pytest.mark.parametrize("method", list(METHODS))
def test_sigkill_anywhere_then_resume_is_bit_identical(setup, tmp_path, method):
    ref = run("none", flags(setup, tmp_path / "ref", method))
    assert ref.returncode == 0, ref.stderr[-2000:]
    expected = final_weights_and_predictions(setup, tmp_path / "ref")
    rng = np.random.default_rng(sum(map(ord, method)))
    # Mid-epoch, at an epoch's end, and inside a checkpoint save (weights written,
    # manifest not yet): saves happen at steps 3, 6, 9, 10 (+ best/) in each epoch.
    kills = [f"step:{rng.integers(1, STEPS)}", "step:10", f"save:{rng.integers(1, 8)}"]
    for i, kill in enumerate(kills):
        out = tmp_path / f"run{i}"
        killed = run(kill, flags(setup, out, method))
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-2000:])
        resumed = run("none", flags(setup, out, method))
        assert resumed.returncode == 0, (kill, resumed.stderr[-2000:])
        assert "resumed from" in resumed.stdout or kill in ("step:1", "step:2", "save:1"), kill
        assert_identical(final_weights_and_predictions(setup, out), expected)


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(setup, tmp_path, damage):
    ref = run("none", flags(setup, tmp_path / "ref", "none"))
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "run"
    killed = run("step:8", flags(setup, out, "none"))  # checkpoints at steps 3 and 6
    assert killed.returncode == -signal.SIGKILL
    newest = out / "checkpoints" / "step-6"
    weights = newest / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        weights.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        weights.unlink()
    resumed = run("none", flags(setup, out, "none"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    said = resumed.stdout + resumed.stderr
    assert "step-6" in said and "falling back" in said, said[-2000:]
    assert "resumed from" in said and "step-3" in said
    assert_identical(
        final_weights_and_predictions(setup, out),
        final_weights_and_predictions(setup, tmp_path / "ref"),
    )


def test_resume_refuses_a_different_config(setup, tmp_path):
    out = tmp_path / "run"
    assert run("step:4", flags(setup, out, "none")).returncode == -signal.SIGKILL
    other = run("none", [*flags(setup, out, "none"), "--learning_rate", "2e-3"])
    assert other.returncode == 2
    assert "different config" in other.stderr and "learning_rate" in other.stderr
    assert "Traceback" not in other.stderr


def test_diverging_run_stops_counts_and_writes_no_nan(setup, tmp_path, capsys):
    from mt_dnn.cli import run_train

    out = tmp_path / "run"
    args = flags(setup, out, "none")
    args[args.index("--epochs") + 1] = "50"
    args[args.index("--save_every") + 1] = "1"  # so the last good step has a checkpoint
    args += ["--learning_rate", "1e8", "--head_learning_rate", "1e8", "--warmup", "0",
             "--global_grad_clipping", "0", "--max_bad_steps", "3"]  # fmt: skip
    assert run_train(args) == 2
    said = capsys.readouterr()
    skipped = [line for line in said.out.splitlines() if "skipped: non-finite" in line]
    assert len(skipped) >= 3, said.out[-2000:]  # every bad step is counted and said
    assert "error: training diverged: 3 consecutive optimizer steps had a non-finite" in said.err
    assert "the last good checkpoint is" in said.err and "Traceback" not in said.err
    last = json.loads((last_checkpoint(out) / "trainer_state.json").read_text())
    assert last["bad_steps"] == 0  # the checkpoint kept is a good one
    for path in out.rglob("*"):
        if path.suffix == ".json":
            text = path.read_text()
            assert "NaN" not in text and "Infinity" not in text, path
        if path.suffix == ".safetensors":
            for name, tensor in load_file(str(path)).items():
                if tensor.is_floating_point():
                    assert torch.isfinite(tensor).all(), (path, name)
