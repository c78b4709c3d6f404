"""--compile: torch.compile of the encoder trains to the weights of the eager run."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mt_dnn.adversarial import AdvConfig
from mt_dnn.config import TrainConfig
from mt_dnn.trainer import TrainingError, last_checkpoint, train
from tests.tiny import write_tiny_run_inputs


def config(root, out, **extra) -> TrainConfig:
    return TrainConfig(
        task_def=(str(root / "tasks.yml"),), train_datasets=("tcls",),
        init_checkpoint=str(root / "tiny-bert"), data_dir=str(root / "data"),
        output_dir=str(out), epochs=1, batch_size=8, progress=False, tensorboard=False,
        device="cpu", dropout=0.0, seed=1, **extra,
    )  # fmt: skip


def test_compile_refuses_the_hidden_space(tmp_path):
    write_tiny_run_inputs(tmp_path)
    with pytest.raises(TrainingError, match="adv_space hidden"):
        train(
            config(tmp_path, tmp_path / "o", compile=True),
            AdvConfig(adv="smart", adv_space="hidden"),
        )


@pytest.mark.integration
def test_compiled_training_gives_the_eager_weights(tmp_path):
    """TAT (its clean, inner and perturbed forwards all run the compiled encoder)."""
    write_tiny_run_inputs(tmp_path)
    runs = {}
    for compiled in (False, True):
        out = tmp_path / f"compiled-{compiled}"
        train(config(tmp_path, out, compile=compiled), AdvConfig(adv="tat"))
        runs[compiled] = load_file(str(last_checkpoint(out) / "model.safetensors"))
    eager, compiled = runs[False], runs[True]
    assert eager.keys() == compiled.keys()  # compiling in place keeps the parameter names
    worst = max(float((eager[k] - compiled[k]).abs().max()) for k in eager)
    assert worst < 1e-4, worst
    moved = load_file(str(tmp_path / "tiny-bert" / "model.safetensors"))
    assert any(not torch.equal(moved[k], eager[f"encoder.{k}"]) for k in moved)
