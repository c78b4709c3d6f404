"""experiments/tat_study/directions.py: where SMART's and TAT's steps point, measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mt_dnn.adversarial import AdvConfig, build_regularizer
from mt_dnn.checkpoint import save_checkpoint
from tests.scripts import load_script
from tests.tiny import CLS_TASK, TASKS, VOCAB, tiny_batch, tiny_model

directions = load_script("experiments/tat_study/directions.py", "tat_study_directions")


def test_summary_on_two_rows_worked_out_by_hand():
    # Row 0: gold 0; SMART raises label 2 (not the likeliest wrong label, 1); TAT's target
    # is 2 and its step raises 2 most. Row 1: gold 1; SMART raises the gold label; TAT's
    # target is 0, the likeliest wrong label, and its step raises 0 most.
    m = {
        "gold": np.array([0, 1]),
        "before": np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]),
        "smart": np.array([[0.5, 0.2, 0.3], [0.1, 0.85, 0.05]]),
        "tat": np.array([[0.4, 0.2, 0.4], [0.4, 0.5, 0.1]]),
        "target": np.array([2, 0]),
        "cos": np.array([0.9, -0.8]),
    }
    m["smart_mirror"], m["tat_mirror"] = m["before"], m["before"]
    # From another noise SMART raises label 2 on row 0 again, and label 0 on row 1.
    m["smart_other_noise"] = np.array([[0.5, 0.2, 0.3], [0.3, 0.6, 0.1]])
    got = dict(directions.summary(m))
    assert got["rows (accuracy at x)"] == "2 (100.0%)"
    assert got["SMART's step raises a wrong label most"] == "50.0%"
    assert got["SMART's step raises the likeliest wrong label at x most"] == "0.0%"
    assert got["SMART's step from another initial noise raises the same label most"] == "50.0%"
    assert got["TAT's step raises its target most"] == "100.0%"
    assert got["TAT's target is the likeliest wrong label at x"] == "50.0%"
    assert got["TAT's target is the label SMART's step raises most"] == "50.0%"
    assert got["... where TAT's target is the label SMART raises"].startswith("0.90 ")
    assert got["... where it is another label"].startswith("-0.80 ")
    assert got["absolute cosine: median [quartiles], all rows"].startswith("0.85 ")
    assert got["mean fall of the gold probability, SMART"] == f"{(0.1 - 0.15) / 2:.4f}"
    assert got["mean fall of the gold probability, TAT"] == f"{(0.2 + 0.2) / 2:.4f}"
    # x - delta gave the clean prediction back: no divergence there.
    assert got["mean adversarial term, TAT at x + delta / x - delta"].endswith("/ 0.0000")


def test_symmetric_kl_is_zero_for_equal_rows_and_symmetric():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.5, 0.5], [0.1, 0.9]])
    kl = directions.symmetric_kl(p, q)
    assert kl[0] == 0.0
    assert kl[1] == pytest.approx(2 * 0.8 * np.log(9))
    assert directions.symmetric_kl(q, p) == pytest.approx(kl)


def write_rows(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    with (folder / f"{CLS_TASK.name}_train.json").open("w") as fh:
        for i in range(n):
            ids = rng.integers(5, VOCAB, size=int(rng.integers(4, 9))).tolist()
            row = {"uid": str(i), "label": int(ids[0] % 3), "input_ids": ids,
                   "token_type_ids": [0] * len(ids)}  # fmt: skip
            fh.write(json.dumps(row) + "\n")
    return folder


def test_on_a_tiny_checkpoint_tat_raises_its_targets_and_the_table_is_written(tmp_path, capsys):
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "ckpt", TASKS)
    data = write_rows(tmp_path / "data", 12)
    out = tmp_path / "directions.md"
    argv = ["--checkpoint", str(checkpoint), "--data_dir", str(data), "--task", CLS_TASK.name,
            "--rows", "12", "--batch_size", "5", "--out", str(out)]  # fmt: skip
    assert directions.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1].rstrip(" |")
        for line in text.splitlines()
        if line.startswith("| ") and " | " in line
    }
    assert rows["rows (accuracy at x)"].startswith("12 (")
    assert float(rows["TAT's step raises its target most"].rstrip("%")) >= 75.0
    assert rows["... where TAT's target is the label SMART raises"] != ""


def test_one_e_per_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        directions.parse_args(
            ["--checkpoint", "a", "--checkpoint", "b", "--e", "uniform", "--data_dir", "d"]
        )
    with pytest.raises(SystemExit):
        directions.parse_args(["--checkpoint", "a", "--e", str(tmp_path / "no"), "--data_dir", "d"])


def test_smart_and_tat_start_from_the_same_noise_and_step_differently():
    model = tiny_model()
    batch = tiny_batch(CLS_TASK, batch_size=6)
    regs = {
        name: build_regularizer(AdvConfig(adv=name, adv_seed=0), {CLS_TASK.name: CLS_TASK})
        for name in ("smart", "tat")
    }
    got = directions.step_directions(model, batch, CLS_TASK, regs, seed=3)
    assert torch.equal(got["smart"]["start"], got["tat"]["start"])
    assert got["smart"]["start"].abs().sum() > 0
    assert not torch.allclose(got["smart"]["step"], got["tat"]["step"])
    again = directions.step_directions(model, batch, CLS_TASK, {"smart": regs["smart"]}, seed=4)
    assert not torch.equal(again["smart"]["start"], got["smart"]["start"])


def test_a_task_the_checkpoint_has_no_head_for_is_a_clear_error(tmp_path):
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "ckpt", TASKS)
    data = write_rows(tmp_path / "data", 4)
    argv = ["--checkpoint", str(checkpoint), "--data_dir", str(data), "--task", "mnli"]
    with pytest.raises(SystemExit, match="has no head for task 'mnli'"):
        directions.main(argv)
