"""Predictions, metrics, confusion matrices and GLUE submission files from a checkpoint.

python predict.py --checkpoint checkpoints/run/best --datasets rte_test,rte_dev
python -m mt_dnn.predict ...        mtdnn-predict ...        (the same)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_utils.cli import (
    OUTPUT_DIR_ALIASES,
    ConfigError,
    add_dataclass_args,
    option,
    parse_dataclass_args,
)
from data_utils.dataset import TaskDataset
from data_utils.task_def import DEFAULT_TASK_DEFS, TaskDef, load_task_defs
from mt_dnn.checkpoint import load_checkpoint, read_meta
from mt_dnn.config import write_json
from mt_dnn.evaluation import evaluate, prediction_strings
from mt_dnn.runtime import (
    TrainingError,
    dataset_path,
    resolve_amp,
    resolve_dataset_names,
    resolve_device,
)


@dataclass(frozen=True)
class PredictConfig:
    checkpoint: str = option("Checkpoint folder written by train.py.")
    datasets: tuple[str, ...] = option(
        "Comma-separated datasets: a {task}_{split} file stem (rte_test, mnli_dev_matched) "
        "or a task name (all of its dev and test splits found in --data_dir). Tasks without a "
        "head of their own are scored by their predict_with/zero_shot head (AX by MNLI; "
        "SciTail, HANS, RTE by MNLI with the label mapping in the task YAML).",
        aliases=("--task",),  # mt-dnn's predict.py scored one --task
    )
    data_dir: str = option(
        "Folder of tokenized data; default: the data_dir the checkpoint was trained on.", ""
    )
    task_def: tuple[str, ...] = option(
        "Task-definition YAML(s), comma-separated (paths, or the built-in glue and nli), for "
        "datasets whose task is not a head of the checkpoint.",
        DEFAULT_TASK_DEFS,
    )
    output_dir: str = option(
        "Where predictions ({dataset}.jsonl) and metrics.json go; default CHECKPOINT/predictions.",
        "",
        aliases=OUTPUT_DIR_ALIASES,
    )
    glue_submission: str = option(
        "Write the GLUE leaderboard file of every test split that has one (RTE.tsv, "
        "MNLI-m.tsv, AX.tsv...) into this folder, plus submission.zip.",
        "",
    )
    confusion_out: str = option(
        "Write the confusion matrix of every labelled dataset to this JSON file (the "
        "format --tat_oracle reads).",
        "",
    )
    max_seq_len: int = option(
        "Longest tokenized row accepted (0: the encoder's max_position_embeddings); a longer "
        "row is an error naming its file and line.",
        0,
    )
    batch_size_eval: int = option("Examples per evaluation batch.", 64)
    device: str = option("auto (cuda when available), cpu or cuda.", "auto")
    amp: str = option(
        "Mixed precision: auto (bf16 on CUDA GPUs that support it, fp32 on CPU), none, bf16 "
        "or fp16.",
        "auto",
    )
    progress: bool = option("Show progress bars.", True)

    def __post_init__(self) -> None:
        choices = {"device": ("auto", "cpu", "cuda"), "amp": ("auto", "none", "bf16", "fp16")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ValueError(f"{key} {getattr(self, key)!r} is not one of {list(valid)}")
        if not self.datasets:
            raise ValueError("datasets: give at least one dataset (--datasets rte_dev,...)")
        if self.batch_size_eval < 1:
            raise ValueError(f"batch_size_eval must be at least 1, got {self.batch_size_eval}")
        if self.max_seq_len < 0:
            raise ValueError(f"max_seq_len must be >= 0 (0: the encoder's), got {self.max_seq_len}")


def predict_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Score datasets with a trained checkpoint: per-example predictions, "
        "metrics where labels exist, confusion matrices, and GLUE submission files.",
        allow_abbrev=False,
    )
    add_dataclass_args(parser, PredictConfig, "prediction")
    return parser


def parse_predict_args(argv: Sequence[str] | None = None) -> PredictConfig:
    return parse_dataclass_args(predict_parser(), PredictConfig, argv)


def predict(cfg: PredictConfig) -> dict:
    from mt_dnn.confusion import confusion_matrix, label_names, save_confusion
    from mt_dnn.submission import write_submission

    ckpt = Path(cfg.checkpoint)
    meta = read_meta(ckpt)
    model, heads, _ = load_checkpoint(ckpt)
    config = {}
    if (ckpt / "config.json").is_file():
        config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    data_dir = Path(cfg.data_dir or config.get("data_dir", ""))
    task_defs = load_task_defs(*cfg.task_def)
    task_defs.update(heads)  # the checkpoint's own facts win for its heads
    device = resolve_device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    model.to(device)
    max_len = cfg.max_seq_len or int(meta["encoder_config"].get("max_position_embeddings", 512))
    out_dir = Path(cfg.output_dir or ckpt / "predictions")
    out_dir.mkdir(parents=True, exist_ok=True)

    names = list(cfg.datasets)
    all_metrics: dict[str, dict] = {}
    confusions = {}
    submission_files = {}

    def present_splits(task: TaskDef) -> list[str]:
        splits = task.dev_splits + task.test_splits
        return [s for s in splits if dataset_path(data_dir, task.name, s).is_file()]

    datasets = resolve_dataset_names(names, task_defs, present_splits, "--datasets")
    for task, split in datasets:
        path = dataset_path(data_dir, task.name, split)
        if not path.is_file():
            raise TrainingError(f"{path}: not found; run prepro_std.py for {task.name}_{split}")
        dataset = TaskDataset.load(path, task, split, max_seq_len=max_len)
        result = evaluate(
            model, dataset, heads, cfg.batch_size_eval, device, amp_dtype, bool(cfg.progress)
        )
        name = f"{task.name}_{split}"
        strings = prediction_strings(task, result["predictions"])
        tmp = out_dir / f".{name}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for uid, pred, score in zip(dataset.uids, strings, result["scores"], strict=True):
                fh.write(
                    json.dumps(
                        {
                            "uid": uid,
                            "prediction": pred,
                            "scores": [round(float(s), 6) for s in score.ravel()],
                        }
                    )
                    + "\n"
                )
        os.replace(tmp, out_dir / f"{name}.jsonl")
        line = f"{name}: {len(dataset)} rows, head '{result['head']}'"
        if result["metrics"]:
            all_metrics[name] = result["metrics"]
            line += " | " + ", ".join(f"{k}={v:.2f}" for k, v in result["metrics"].items())
            if cfg.confusion_out and result["head"] == task.name:
                confusions[task.name] = (
                    label_names(task),
                    confusion_matrix(task, result["predictions"], result["labels"]),
                )
        print(line)
        if cfg.glue_submission and split in task.submission:
            submission_files[task.submission[split]] = (dataset.uids, strings)
    write_json(out_dir / "metrics.json", all_metrics)
    if cfg.confusion_out:
        save_confusion(cfg.confusion_out, confusions)
        print(f"confusion matrices of {sorted(confusions)} -> {cfg.confusion_out}")
    if cfg.glue_submission:
        if not submission_files:
            raise TrainingError("--glue_submission: none of --datasets is a GLUE test split")
        # Checked in full against the leaderboard (test-set sizes, indices, its label
        # strings) before anything is written; a SubmissionError leaves the folder as it was.
        written = write_submission(cfg.glue_submission, submission_files)
        print(f"GLUE submission: {', '.join(p.name for p in written)} in {cfg.glue_submission}")
    return all_metrics


def run_predict(argv: Sequence[str] | None = None) -> int:
    """predict.py, ``python -m mt_dnn.predict`` and ``mtdnn-predict`` (argv None: sys.argv)."""
    from data_utils.errors import DataError
    from data_utils.task_def import TaskDefError
    from mt_dnn.checkpoint import CheckpointError

    try:
        predict(parse_predict_args(argv))
    except (
        ConfigError,
        DataError,
        TaskDefError,
        TrainingError,
        CheckpointError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_predict())
