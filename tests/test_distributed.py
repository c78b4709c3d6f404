"""Data parallel with torchrun on CPU (gloo): the same training as one process, split over two.

Two processes with a global batch of 8 (4 rows each) must end with the weights
one process gets from the same batches, for plain training, TAT and FreeLB
(K=2, with gradient accumulation), must each train on their own rows (together
every row exactly once per epoch), and must resume a killed run bit for bit.
Randomness that is per rank by design (dropout masks, initial noise, TAT's
target draws) is switched off here so that the comparison is exact: dropout 0,
noise 0, FreeLB starting at delta 0, and TAT with a fixed confusion matrix in
which every gold label has one wrong label to move towards.

Then the real MiniLM trains on slices of RTE and STS-B with two processes; its
one set of dev metrics must equal what ``predict.py`` computes from the
checkpoint it wrote. Each case launches real subprocesses, so these are
``integration`` tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mt_dnn.trainer import last_checkpoint
from tests.tiny import write_tiny_run_inputs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
ORACLE = {
    "format": "mt-dnn-confusion",
    "version": 1,
    "tasks": {"tcls": {"labels": ["a", "b", "c"], "matrix": [[5, 2, 0], [0, 5, 2], [2, 0, 5]]}},
}
METHODS = {
    "none": ["--train_datasets", "tcls,treg"],
    "tat": [
        "--train_datasets", "tcls", "--adv", "tat", "--adv_noise_var", "0",
        "--tat_smoothing", "0", "--tat_oracle", "{root}/oracle.json",
    ],
    "freelb": [
        "--train_datasets", "tcls,treg", "--adv", "freelb", "--adv_k", "2",
        "--freelb_init_mag", "0", "--grad_accumulation_step", "2",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    write_tiny_run_inputs(root, dropout=0.0)
    (root / "oracle.json").write_text(json.dumps(ORACLE))
    return root


def env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def flags(root: Path, out: Path, method: str) -> list[str]:
    return [
        "--task_def", str(root / "tasks.yml"), "--init_checkpoint", str(root / "tiny-bert"),
        "--data_dir", str(root / "data"), "--output_dir", str(out), "--epochs", "2",
        "--batch_size", "8", "--batch_size_eval", "6", "--learning_rate", "1e-3",
        "--dropout", "0", "--save_every", "3", "--seed", "1", "--progress", "false",
        "--tensorboard", "false", "--device", "cpu",
        *(f.format(root=root) for f in METHODS[method]),
    ]  # fmt: skip


def launch(args: list[str], procs: int, script: str, *pre: str, check: bool = True):
    if procs == 1:
        cmd = [sys.executable, script, *pre, *args]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*torchrun, "--nproc_per_node", str(procs), script, *pre, *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return proc


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(last_checkpoint(out) / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(setup):
    """Each method trained by one process and by two; the two-process runs record their rows."""
    done = {}
    for method in METHODS:
        one, two = setup / f"{method}-1", setup / f"{method}-2"
        launch(flags(setup, one, method), 1, "train.py")
        record = str(setup / f"{method}-seen-{{rank}}.json")
        proc = launch(flags(setup, two, method), 2, "tests/record_runner.py", record)
        done[method] = (one, two, proc)
    return done


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_give_the_weights_of_one(setup, runs, method):
    one, two, proc = runs[method]
    steps = {"none": 20, "tat": 10, "freelb": 10}[method]  # 2 epochs; tat: tcls alone
    assert last_checkpoint(one).name == last_checkpoint(two).name == f"step-{steps}"
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, f"{method}: max |difference| {worst}"
    init = load_file(str(setup / "tiny-bert" / "model.safetensors"))
    moved = max(
        float((a[f"encoder.{k}"] - init[k]).abs().max()) for k in init if f"encoder.{k}" in a
    )
    assert moved > 1e-3  # training did move the weights: the comparison is not vacuous
    # Rank 0 alone wrote: one line per epoch, one config, one metrics file.
    assert proc.stdout.count("epoch 2:") == 1
    assert "x 2 processes" in proc.stdout
    history = json.loads((two / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert json.loads((two / "config.json").read_text())["world_size"] == 2


def test_tat_sums_its_tallies_over_ranks(runs):
    one, two, _ = runs["tat"]
    for epoch in (1, 2):
        a = json.loads((one / f"tat_confusion_epoch{epoch}.json").read_text())
        b = json.loads((two / f"tat_confusion_epoch{epoch}.json").read_text())
        assert a == b
        assert sum(map(sum, a["tasks"]["tcls"]["matrix"])) == 40  # every row, both ranks


@pytest.mark.parametrize("method", list(METHODS))
def test_each_row_is_trained_on_by_exactly_one_rank_per_epoch(setup, runs, method):
    seen = [json.loads((setup / f"{method}-seen-{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) > 0  # one slice of every global batch each
    tasks = METHODS[method][1].split(",")
    for epoch in (0, 1):
        for task in tasks:
            per_rank = [
                [uid for e, t, uids in ranks if e == epoch and t == task for uid in uids]
                for ranks in seen
            ]
            assert not set(per_rank[0]) & set(per_rank[1])
            together = sorted(per_rank[0] + per_rank[1], key=int)
            assert together == [str(i) for i in range(40)]  # each row once, by one rank
    # Step for step the ranks train on the same task (the mixture of one process).
    assert [t for _, t, _ in seen[0]] == [t for _, t, _ in seen[1]]


def test_a_killed_two_process_run_resumes_bit_for_bit(setup, runs):
    _, reference, _ = runs["tat"]
    out = setup / "tat-killed"
    args = flags(setup, out, "tat")
    killed = launch(args, 2, "tests/kill_runner.py", "step:7", check=False)
    assert killed.returncode != 0
    assert last_checkpoint(out).name == "step-6"
    resumed = launch(args, 2, "train.py")
    assert "resumed from" in resumed.stdout and resumed.stdout.count("resumed from") == 1
    a, b = weights(reference), weights(out)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Another world size is another run (each rank draws its own randomness): refused.
    again = launch(args, 1, "train.py", check=False)
    assert again.returncode == 2 and "world_size" in again.stderr


# -- the real MiniLM on slices of RTE and STS-B ---------------------------------------------


@pytest.fixture(scope="module")
def minilm_slices(tmp_path_factory, data_real_dir, data_minilm_path) -> Path:
    from tests.test_integration import prepro

    root = tmp_path_factory.mktemp("ddp-minilm")
    tokenized = prepro(data_real_dir / "glue", root, data_minilm_path, ["rte", "stsb"])
    sliced = root / "sliced"
    sliced.mkdir()
    for name, rows in (("rte_train", 48), ("rte_dev", 40), ("stsb_train", 48), ("stsb_dev", 40)):
        lines = (tokenized / f"{name}.json").read_text(encoding="utf-8").splitlines()[:rows]
        (sliced / f"{name}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sliced


def test_minilm_two_processes_metrics_match_predict(tmp_path, minilm_slices, data_minilm_path):
    out = tmp_path / "run"
    args = [
        "--train_datasets", "rte,stsb", "--data_dir", str(minilm_slices),
        "--init_checkpoint", data_minilm_path, "--output_dir", str(out), "--epochs", "1",
        "--batch_size", "8", "--max_seq_len", "128", "--progress", "false", "--adv", "tat",
    ]  # fmt: skip
    proc = launch(args, 2, "train.py")
    assert proc.stdout.count("epoch 1:") == 1
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-12"]  # 6 + 6 batches
    dev = json.loads((out / "metrics.json").read_text())["history"][0]["dev"]
    predicted = tmp_path / "predict"
    launch(
        ["--checkpoint", str(out / "best"), "--data_dir", str(minilm_slices),
         "--datasets", "rte_dev,stsb_dev", "--output_dir", str(predicted), "--progress", "0"],
        1, "predict.py",
    )  # fmt: skip
    metrics = json.loads((predicted / "metrics.json").read_text())
    for name in ("rte_dev", "stsb_dev"):
        for key, value in dev[name].items():
            assert metrics[name][key] == pytest.approx(value, abs=1e-4), (name, key)
