"""Checkpoints round-trip exactly and contain no pickle."""

import json

import pytest
import torch

from mt_dnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_model


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_round_trip_gives_identical_outputs(tmp_path, kind):
    model = tiny_model(kind, pooling="mean")
    save_checkpoint(model, tmp_path, TASKS, config={"lr": 1.0}, extra={"trainer_state": {"e": 1}})
    loaded, tasks, meta = load_checkpoint(tmp_path)
    assert tasks == TASKS
    assert loaded.pooling == "mean"
    assert meta["trainer_state"] == {"e": 1}
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 1.0}
    for task in (CLS_TASK, REG_TASK):
        batch = tiny_batch(task)
        assert torch.equal(model(batch, task.name), loaded(batch, task.name))


def test_no_pickle_files(tmp_path):
    save_checkpoint(tiny_model(), tmp_path, TASKS)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.json", "model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # pickle magic


def test_missing_and_mismatched_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint.json: not found"):
        load_checkpoint(tmp_path)
    save_checkpoint(tiny_model(), tmp_path, TASKS)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    del meta["tasks"]["tiny_reg"]
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path)
