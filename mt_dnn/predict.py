"""Predictions, metrics, confusion matrices and GLUE submission files from a checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from data_utils.dataset import TaskDataset
from data_utils.task_def import TaskDef, load_task_defs
from mt_dnn.checkpoint import load_checkpoint, read_meta
from mt_dnn.config import DEFAULT_TASK_DEFS, write_json
from mt_dnn.evaluation import evaluate, prediction_strings
from mt_dnn.runtime import (
    TrainingError,
    dataset_path,
    resolve_amp,
    resolve_dataset_names,
    resolve_device,
)


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict.py",
        description="Score datasets with a trained checkpoint: per-example predictions, "
        "metrics where labels exist, confusion matrices, and GLUE submission files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--checkpoint", required=True, help="Checkpoint folder written by train.py.")
    p.add_argument(
        "--datasets",
        required=True,
        help="Comma-separated datasets: a {task}_{split} file stem (rte_test, mnli_dev_matched) "
        "or a task name (all of its dev and test splits found in --data_dir). Tasks without a "
        "head of their own are scored by their predict_with/zero_shot head (AX by MNLI; "
        "SciTail, HANS, RTE by MNLI with the label mapping in the task YAML).",
    )
    p.add_argument(
        "--data_dir",
        default=None,
        help="Folder of tokenized data; default: the data_dir the checkpoint was trained on.",
    )
    p.add_argument(
        "--task_def",
        default=",".join(DEFAULT_TASK_DEFS),
        help="Task-definition YAML(s) for datasets whose task is not a head of the checkpoint.",
    )
    p.add_argument(
        "--output_dir",
        default=None,
        help="Where predictions ({dataset}.jsonl) and metrics.json go; default CHECKPOINT/predictions.",
    )
    p.add_argument(
        "--glue_submission",
        default=None,
        metavar="DIR",
        help="Write the GLUE leaderboard file of every test split that has one (RTE.tsv, "
        "MNLI-m.tsv, AX.tsv...) into DIR, plus submission.zip.",
    )
    p.add_argument(
        "--confusion_out",
        default=None,
        metavar="FILE",
        help="Write the confusion matrix of every labelled dataset to this JSON file (the "
        "format --tat_oracle reads).",
    )
    p.add_argument("--batch_size_eval", type=int, default=64, help="Examples per batch.")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="Device.")
    p.add_argument(
        "--amp", default="auto", choices=("auto", "none", "bf16", "fp16"), help="Mixed precision."
    )
    p.add_argument("--progress", type=int, default=1, help="Show progress bars (1/0).")
    return p


def predict(args: argparse.Namespace) -> dict:
    from mt_dnn.confusion import confusion_matrix, label_names, save_confusion
    from mt_dnn.submission import write_submission

    ckpt = Path(args.checkpoint)
    meta = read_meta(ckpt)
    model, heads, _ = load_checkpoint(ckpt)
    config = {}
    if (ckpt / "config.json").is_file():
        config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    data_dir = Path(args.data_dir or config.get("data_dir", ""))
    task_defs = load_task_defs(*[p for p in args.task_def.split(",") if p])
    task_defs.update(heads)  # the checkpoint's own facts win for its heads
    device = resolve_device(args.device)
    amp_dtype = resolve_amp(args.amp, device)
    model.to(device)
    max_len = int(meta["encoder_config"].get("max_position_embeddings", 512))
    out_dir = Path(args.output_dir or ckpt / "predictions")
    out_dir.mkdir(parents=True, exist_ok=True)

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
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
            model, dataset, heads, args.batch_size_eval, device, amp_dtype, bool(args.progress)
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
            if args.confusion_out and result["head"] == task.name:
                confusions[task.name] = (
                    label_names(task),
                    confusion_matrix(task, result["predictions"], result["labels"]),
                )
        print(line)
        if args.glue_submission and split in task.submission:
            submission_files[task.submission[split]] = (dataset.uids, strings)
    write_json(out_dir / "metrics.json", all_metrics)
    if args.confusion_out:
        save_confusion(args.confusion_out, confusions)
        print(f"confusion matrices of {sorted(confusions)} -> {args.confusion_out}")
    if args.glue_submission:
        if not submission_files:
            raise TrainingError("--glue_submission: none of --datasets is a GLUE test split")
        # Checked in full against the leaderboard (test-set sizes, indices, its label
        # strings) before anything is written; a SubmissionError leaves the folder as it was.
        written = write_submission(args.glue_submission, submission_files)
        print(f"GLUE submission: {', '.join(p.name for p in written)} in {args.glue_submission}")
    return all_metrics


def run_predict(argv: Sequence[str]) -> int:
    from data_utils.errors import DataError
    from data_utils.task_def import TaskDefError
    from mt_dnn.checkpoint import CheckpointError

    args = predict_parser().parse_args(argv)
    try:
        predict(args)
    except (DataError, TaskDefError, TrainingError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
