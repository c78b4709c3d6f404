"""The training loop end to end on a tiny encoder saved to disk, and golden losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_utils.task_def import load_task_defs
from mt_dnn.adversarial import REGULARIZERS, AdvConfig, build_regularizer
from mt_dnn.checkpoint import load_checkpoint
from mt_dnn.config import TrainConfig
from mt_dnn.trainer import (
    TrainingError,
    last_checkpoint,
    read_train_state,
    resolve_dataset_names,
    train,
)
from tests.tiny import TASKS, tiny_batch, tiny_model, write_tiny_run_inputs

# Loss, adversarial term and gradient norm of one step of each regularizer on the
# tiny BERT (seeded model, batch and regularizer). A change here is a change in
# the numbers every user gets: update only with a reason in the commit message.
GOLDEN = {
    ("none", "tiny_cls"): (1.5214053392410278, 0.0, 17.460958098515924),
    ("none", "tiny_reg"): (0.5477460622787476, 0.0, 45.405237355161404),
    ("smart", "tiny_cls"): (1.5234193801879883, 0.0020139897242188454, 17.458007230365244),
    ("smart", "tiny_reg"): (0.5596662759780884, 0.011920204386115074, 45.47090109314389),
    ("tat", "tiny_cls"): (1.5240191221237183, 0.002613736316561699, 17.45885740143301),
    ("tat", "tiny_reg"): (0.5596598386764526, 0.011913792230188847, 45.48336110064239),
    ("freelb", "tiny_cls"): (1.5631150007247925, 0.03838551044464111, 17.61472049670282),
    ("freelb", "tiny_reg"): (0.6277437806129456, 0.08848565816879272, 49.003411858267626),
    ("r3f", "tiny_cls"): (1.5214760303497314, 7.064205419737846e-05, 17.46098813853417),
    ("r3f", "tiny_reg"): (0.548211395740509, 0.0004653600917663425, 45.40959887166948),
    ("random", "tiny_cls"): (1.5216811895370483, 0.0002758684568107128, 17.4612772351089),
    ("random", "tiny_reg"): (0.5483769774436951, 0.000630889437161386, 45.412274042684665),
}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_step_values(key):
    name, task_name = key
    assert set(REGULARIZERS) == {n for n, _ in GOLDEN}  # a new method needs golden values
    task = TASKS[task_name]
    model = tiny_model("bert")
    extra = {"adv_k": 2} if name == "freelb" else {}
    reg = build_regularizer(AdvConfig(adv=name, adv_seed=3, **extra), TASKS)
    out = reg.step(model, tiny_batch(task, seed=5), task, lambda loss: loss.backward())
    grads = [p.grad.double() for p in model.parameters() if p.grad is not None]
    grad_norm = torch.sqrt(sum((g**2).sum() for g in grads)).item()
    loss, adv, norm = GOLDEN[key]
    assert out.loss == pytest.approx(loss, rel=1e-4)
    assert out.adv_loss == pytest.approx(adv, rel=1e-3, abs=1e-7)
    assert grad_norm == pytest.approx(norm, rel=1e-4)


@pytest.fixture()
def tiny_setup(tmp_path):
    """A tiny BERT saved as a pretrained folder, a task YAML and tokenized data."""
    # No dropout: runs that split batches differently must see the same function.
    return write_tiny_run_inputs(tmp_path, dropout=0.0)


def make_cfg(tiny_setup, tmp_path, **kw) -> TrainConfig:
    model_dir, yml, data = tiny_setup
    base = dict(
        task_def=(str(yml),),
        train_datasets=("tcls", "treg"),
        data_dir=str(data),
        init_checkpoint=str(model_dir),
        output_dir=str(tmp_path / "out"),
        epochs=2,
        batch_size=8,
        batch_size_eval=5,
        learning_rate=1e-3,
        progress=False,
        log_every=1,
        seed=1,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", list(REGULARIZERS))
def test_train_writes_metrics_config_and_a_loadable_checkpoint(tiny_setup, tmp_path, method):
    cfg = make_cfg(tiny_setup, tmp_path)
    result = train(cfg, AdvConfig(adv=method, adv_k=2 if method == "freelb" else 1))
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert set(metrics["history"][0]["dev"]) == {"tcls_dev", "treg_dev"}
    assert set(metrics["history"][0]["dev"]["tcls_dev"]) == {"accuracy", "mcc"}
    assert result["best"]["tcls_dev"]["epoch"] in (1, 2)
    config = json.loads((out / "config.json").read_text())
    assert config["adv"] == method and config["pooling"] == "cls"
    ckpt = last_checkpoint(out)
    model, heads, meta = load_checkpoint(ckpt)
    assert set(heads) == {"tcls", "treg"}
    state = read_train_state(ckpt)
    assert state["epoch"] == 2
    assert state["sampler"]["epoch"] == 1
    json.dumps(state["regularizer"])  # JSON, not pickle
    assert (out / "best" / "model.safetensors").is_file()


def test_same_seed_same_run(tiny_setup, tmp_path):
    first = train(make_cfg(tiny_setup, tmp_path, output_dir=str(tmp_path / "a")), AdvConfig())
    second = train(make_cfg(tiny_setup, tmp_path, output_dir=str(tmp_path / "b")), AdvConfig())
    assert first["history"][-1]["dev"] == second["history"][-1]["dev"]
    a, _, _ = load_checkpoint(last_checkpoint(tmp_path / "a"))
    b, _, _ = load_checkpoint(last_checkpoint(tmp_path / "b"))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_resume_accepts_the_same_tasks_under_another_file_name(tiny_setup, tmp_path):
    """A run saved with one task file resumes with an identical file found elsewhere
    (e.g. a path then, the built-in name now); different task facts are refused."""
    _, yml, _ = tiny_setup
    train(make_cfg(tiny_setup, tmp_path, epochs=1), AdvConfig())
    moved = tmp_path / "moved.yml"
    moved.write_text(yml.read_text())
    done = train(make_cfg(tiny_setup, tmp_path, epochs=1, task_def=(str(moved),)), AdvConfig())
    assert [h["epoch"] for h in done["history"]] == [1]  # resumed at its end: nothing re-run
    changed = tmp_path / "changed.yml"
    changed.write_text(yml.read_text().replace("metrics: [accuracy, mcc]", "metrics: [mcc]"))
    with pytest.raises(TrainingError, match="task_def"):
        train(make_cfg(tiny_setup, tmp_path, epochs=1, task_def=(str(changed),)), AdvConfig())


def test_gradient_accumulation_averages_micro_batches(tiny_setup, tmp_path):
    """Two micro-batches of 4 with accumulation 2 take the step one batch of 8 takes.

    (Adam's step barely depends on the gradient's scale, so this checks that both
    micro-batches reach one step, not the 1/accum scaling itself.)
    """
    common = dict(
        train_datasets=("tcls",),
        epochs=1,
        group_by_length=False,
        warmup=0.0,
        global_grad_clipping=0.0,
        max_train_samples=8,
        dropout=0.0,
    )
    one = make_cfg(tiny_setup, tmp_path, output_dir=str(tmp_path / "one"), batch_size=8, **common)
    two = make_cfg(
        tiny_setup,
        tmp_path,
        output_dir=str(tmp_path / "two"),
        batch_size=4,
        grad_accumulation_step=2,
        **common,
    )
    train(one, AdvConfig())
    train(two, AdvConfig())
    a, _, _ = load_checkpoint(last_checkpoint(tmp_path / "one"))
    b, _, _ = load_checkpoint(last_checkpoint(tmp_path / "two"))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)


def test_dataset_names_expand_tasks_and_reject_unknown_names():
    defs = load_task_defs("glue")
    dev = resolve_dataset_names(["mnli", "rte_test"], defs, lambda t: list(t.dev_splits), "--x")
    assert [(t.name, s) for t, s in dev] == [
        ("mnli", "dev_matched"),
        ("mnli", "dev_mismatched"),
        ("rte", "test"),
    ]
    with pytest.raises(TrainingError, match="'rte_tst' is neither a task"):
        resolve_dataset_names(["rte_tst"], defs, lambda t: [], "--x")
    with pytest.raises(TrainingError, match="task 'ax' has no split"):
        resolve_dataset_names(["ax"], defs, lambda t: list(t.dev_splits), "--x")


def test_missing_data_names_the_file(tiny_setup, tmp_path):
    cfg = make_cfg(tiny_setup, tmp_path, data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(TrainingError, match=r"tcls_train.json: not found; run prepro_std.py"):
        train(cfg, AdvConfig())


def test_regression_with_a_classification_divergence_is_refused(tiny_setup, tmp_path):
    _, yml, _ = tiny_setup
    yml.write_text(yml.read_text().replace("adv_loss: mse", "adv_loss: symmetric_kl"))
    with pytest.raises(TrainingError, match="adv_loss"):
        train(make_cfg(tiny_setup, tmp_path), AdvConfig(adv="smart"))


def test_predict_confusion_file_drives_tat_oracle_mode(tiny_setup, tmp_path):
    """predict.py --confusion_out writes what --tat_oracle reads, and the oracle stays fixed."""
    from mt_dnn.confusion import load_confusion
    from mt_dnn.predict import parse_predict_args, predict

    _, yml, data = tiny_setup
    train(make_cfg(tiny_setup, tmp_path, epochs=1), AdvConfig())
    oracle = tmp_path / "dev_confusion.json"
    args = parse_predict_args(
        [
            "--checkpoint",
            str(last_checkpoint(tmp_path / "out")),
            "--datasets",
            "tcls_dev,treg_dev",
            "--task_def",
            str(yml),
            "--confusion_out",
            str(oracle),
            "--progress",
            "0",
        ]
    )
    metrics = predict(args)
    assert set(metrics) == {"tcls_dev", "treg_dev"}
    matrices = load_confusion(oracle)
    assert matrices["tcls"][1].shape == (3, 3) and matrices["tcls"][1].sum() == 12
    assert matrices["treg"][1].shape == (10, 10) and matrices["treg"][1].sum() == 12
    assert (last_checkpoint(tmp_path / "out") / "predictions" / "tcls_dev.jsonl").is_file()

    out2 = tmp_path / "oracle_run"
    adv = AdvConfig(adv="tat", tat_oracle=str(oracle))
    train(make_cfg(tiny_setup, tmp_path, epochs=2, output_dir=str(out2)), adv)
    state = read_train_state(last_checkpoint(out2))["regularizer"]
    assert state["steps"] > 0
    expected = np.asarray(state["tasks"]["tcls"]["expected"])
    rows = matrices["tcls"][1] / np.maximum(matrices["tcls"][1].sum(1, keepdims=True), 1)
    np.testing.assert_allclose(expected[rows.sum(1) > 0], rows[rows.sum(1) > 0], rtol=1e-6)
