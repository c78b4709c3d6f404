"""The real scripts end to end: prepro -> train.py -> predict.py, real MiniLM, real GLUE slices.

Slow (tens of seconds each on two cores); marked ``integration``. Training uses a
few rows per task, so these tests check plumbing and formats, not accuracy
(accuracy is recorded in experiments/glue/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mt_dnn.adversarial import REGULARIZERS
from mt_dnn.submission import GLUE_TEST_SIZES, check_submission_file

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
TASKS = ["rte", "mrpc", "stsb", "cola"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def prepro(glue_dir: Path, root: Path, model: str, tasks: list[str]) -> Path:
    """The real raw -> canonical -> tokenized steps for some GLUE tasks; the tokenized folder."""
    run(
        "experiments/glue/glue_prepro.py",
        "--glue_dir",
        str(glue_dir),
        "--out_dir",
        str(root),
        "--tasks",
        *tasks,
    )
    out = root / "tokenized"
    run(
        "prepro_std.py",
        "--model",
        model,
        "--root_dir",
        str(root),
        "--output_dir",
        str(out),
        "--max_seq_len",
        "128",
        "--tasks",
        *tasks,
    )
    return out


@pytest.fixture(scope="module")
def minilm_data(tmp_path_factory, data_real_dir, data_minilm_path) -> Path:
    return prepro(data_real_dir / "glue", tmp_path_factory.mktemp("data"), data_minilm_path, TASKS)


def train_args(data_dir: Path, out: Path, model: str, tasks: str, *extra: str) -> list[str]:
    return [
        "train.py",
        "--train_datasets",
        tasks,
        "--data_dir",
        str(data_dir),
        "--init_checkpoint",
        model,
        "--output_dir",
        str(out),
        "--max_train_samples",
        "16",
        "--max_eval_samples",
        "16",
        "--epochs",
        "1",
        "--batch_size",
        "8",
        "--max_seq_len",
        "128",
        "--progress",
        "false",
        "--log_every",
        "1",
        *extra,
    ]


def test_multitask_train_then_glue_submission(tmp_path, minilm_data, data_minilm_path):
    out = tmp_path / "run"
    proc = run(*train_args(minilm_data, out, data_minilm_path, ",".join(TASKS)))
    assert "mean pooling" in proc.stdout  # follows the checkpoint's 1_Pooling config
    metrics = json.loads((out / "metrics.json").read_text())
    dev = metrics["history"][0]["dev"]
    assert set(dev) == {f"{t}_dev" for t in TASKS}
    assert set(dev["stsb_dev"]) == {"pearson", "spearman"}
    assert set(dev["cola_dev"]) == {"mcc", "accuracy"}
    config = json.loads((out / "config.json").read_text())
    assert config["train_datasets"] == TASKS and config["adv"] == "none"
    assert list((out / "tensorboard").iterdir())

    sub = tmp_path / "submission"
    datasets = ",".join(f"{t}_test" for t in TASKS) + ",rte_dev"
    proc = run(
        "predict.py",
        "--checkpoint",
        str(out / "best"),
        "--data_dir",
        str(minilm_data),
        "--datasets",
        datasets,
        "--glue_submission",
        str(sub),
        "--progress",
        "0",
    )
    assert "rte_dev: 277 rows" in proc.stdout
    labels = {
        "RTE.tsv": {"entailment", "not_entailment"},
        "MRPC.tsv": {"0", "1"},
        "CoLA.tsv": {"0", "1"},
    }
    for name in ("RTE.tsv", "MRPC.tsv", "STS-B.tsv", "CoLA.tsv"):
        path = sub / name
        check_submission_file(
            path,
            GLUE_TEST_SIZES[name],
            label_set=labels.get(name),
            value_range=(0.0, 5.0) if name == "STS-B.tsv" else None,
        )
        lines = path.read_text().splitlines()
        assert lines[0] == "index\tprediction"
        assert [line.split("\t")[0] for line in lines[1:]] == [
            str(i) for i in range(GLUE_TEST_SIZES[name])
        ]
    assert (sub / "submission.zip").is_file()
    predictions = (out / "best" / "predictions" / "rte_dev.jsonl").read_text().splitlines()
    assert len(predictions) == 277
    assert json.loads(predictions[0])["prediction"] in labels["RTE.tsv"]


@pytest.mark.parametrize("method", list(REGULARIZERS))
def test_every_regularizer_trains_a_classification_and_a_regression_task(
    tmp_path, minilm_data, data_minilm_path, method
):
    out = tmp_path / method
    run(*train_args(minilm_data, out, data_minilm_path, "rte,stsb", "--adv", method))
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert set(history[0]["dev"]) == {"rte_dev", "stsb_dev"}
    assert history[0]["adv_skipped_steps"] == 0
    if method == "tat":
        assert (out / "tat_confusion_epoch1.json").is_file()
        assert (out / "tat_confusion_stsb_epoch1.png").is_file()


def test_bad_flag_and_missing_data_are_one_line_errors(tmp_path, minilm_data, data_minilm_path):
    for args, message in [
        (["--train_datasets", "rte", "--optimizer", "sgd"], "optimizer 'sgd' is not one of"),
        (["--train_datasets", "nosuchtask"], "unknown task(s) ['nosuchtask']"),
        (
            ["--train_datasets", "wnli", "--data_dir", str(minilm_data)],
            "wnli_train.json: not found",
        ),
    ]:
        proc = subprocess.run(
            [sys.executable, "train.py", *args, "--init_checkpoint", data_minilm_path],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


MPNET = Path(os.environ.get("MTDNN_MPNET_DIR", ROOT / "models" / "all-mpnet-base-v2"))


@pytest.mark.skipif(
    not MPNET.is_dir(), reason=f"MPNet not installed at {MPNET} (experiments/models/get_mpnet.sh)"
)
def test_mpnet_without_token_type_ids(tmp_path, data_real_dir):
    data = prepro(data_real_dir / "glue", tmp_path / "data", str(MPNET), ["rte"])
    first = json.loads((data / "rte_train.json").read_text().splitlines()[0])
    assert "token_type_ids" not in first
    out = tmp_path / "run"
    run(*train_args(data, out, str(MPNET), "rte", "--adv", "smart"))
    best = out / "best"
    run("predict.py", "--checkpoint", str(best), "--datasets", "rte_dev", "--progress", "0")
    assert (
        json.loads((best / "checkpoint.json").read_text())["encoder_config"]["model_type"]
        == "mpnet"
    )
