"""Multi-task training: a state object, small setup functions, a loop that reads top to bottom.

Each step draws one single-task micro-batch from the multi-task sampler and
hands it to the regularizer, which owns that micro-batch's forward and backward
(``none`` is plain training). The trainer owns everything around it: loss
scaling and gradient accumulation (inside the ``backward`` callable it passes
down), guarded numerics, clipping, the optimizer and schedule, evaluation after
every epoch, checkpoints and logs.

Everything a run needs to continue lives in :class:`TrainState` (model,
optimizer, scheduler, gradient scaler, sampler position, regularizer state,
random generators, counters, best-so-far); a checkpoint under
``output_dir/checkpoints/step-N`` is that state, and resuming from it continues
the run bit for bit.

Data parallel (``torchrun --nproc_per_node N train.py ...``, see
:mod:`mt_dnn.distributed`): the model is wrapped in DistributedDataParallel,
each rank takes its slice of every global batch (``--batch_size`` is the global
batch) and weighs its loss by its share of it, backwards that are not an
optimizer step's last skip the all-reduce, evaluation is sharded and gathered,
and only rank 0 prints and writes; a checkpoint holds every rank's random
generators and regularizer state.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from data_utils.dataset import TaskDataset, collate
from data_utils.prepro import model_tag
from data_utils.sampler import MultiTaskBatchSampler
from data_utils.task_def import TaskDef, load_task_defs
from mt_dnn import distributed, fast_dropout
from mt_dnn.adversarial import build_regularizer
from mt_dnn.adversarial.base import Regularizer
from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.checkpoint import (
    CheckpointError,
    latest_complete_checkpoint,
    pretrained_tokenizer,
    save_checkpoint,
    verify_checkpoint,
)
from mt_dnn.config import DEFAULT_DATA_ROOT, TrainConfig, check_paths, to_jsonable, write_json
from mt_dnn.evaluation import NonFiniteOutputs, autocast_context, batch_to, evaluate
from mt_dnn.model import MultiTaskModel, checkpoint_pooling, load_encoder
from mt_dnn.optim import build_optimizer, warmup_linear
from mt_dnn.runtime import (  # noqa: F401  (re-exported: older imports use mt_dnn.trainer)
    TrainingError,
    dataset_path,
    load_split,
    resolve_amp,
    resolve_dataset_names,
    resolve_device,
    resolve_init_checkpoint,
    rng_state,
    seed_everything,
    set_rng_state,
)
from mt_dnn.state_io import flatten, unflatten

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
# Settings that may differ between a run and its resumption: they change no number.
RESUME_MAY_DIFFER = {"progress", "log_every", "tensorboard", "resume", "batch_size_eval"}
# Settings added after checkpoints existed: what a run saved without the key did.
BEFORE_ADDED = {"fast_dropout": False}


class TrainingDiverged(TrainingError):
    """Too many consecutive optimizer steps with a non-finite loss or gradient."""


@dataclass
class Accumulator:
    """Averages of logged step values over a logging interval.

    Values may be device tensors: they are summed where they are and read
    (one wait for the device) only by :meth:`means`, at the logging interval.
    """

    total: dict
    counts: dict

    @classmethod
    def empty(cls) -> Accumulator:
        return cls(total={}, counts={})

    def add(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if value is not None:
                self.total[key] = self.total.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        keys = list(self.total)
        values = [torch.as_tensor(self.total[k], dtype=torch.float64).cpu() for k in keys]
        return {k: float(v) / self.counts[k] for k, v in zip(keys, values, strict=True)}


def primary_score(metrics: Mapping[str, float], task: TaskDef) -> float:
    """The first metric in the task's YAML list is the one the best epoch is chosen by."""
    return metrics[task.metrics[0]]


# -- what a run is made of -------------------------------------------------------------------


@dataclass
class Run:
    """The fixed facts of a run: configuration, data, device, where it writes."""

    cfg: TrainConfig
    adv_cfg: AdvConfig
    task_defs: dict[str, TaskDef]
    train_tasks: dict[str, TaskDef]
    train_sets: list[TaskDataset]
    eval_sets: list[TaskDataset]
    device: torch.device
    amp_dtype: torch.dtype | None
    init: str
    pooling: str
    out_dir: Path
    resolved: dict[str, Any]
    world: distributed.World = field(default_factory=distributed.World)
    writer: Any = None
    tokenizer: Any = (
        None  # saved with every checkpoint, so exports and predictions need no model folder
    )

    def log(self, message: str) -> None:
        """Print once, from rank 0."""
        if self.world.main:
            print(message)


@dataclass
class TrainState:
    """Everything that changes as a run trains, and nothing else: what a checkpoint holds."""

    model: MultiTaskModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    sampler: MultiTaskBatchSampler
    regularizer: Regularizer
    epoch: int = 0  # epochs finished
    global_step: int = 0  # optimizer steps taken (including skipped ones)
    bad_steps: int = 0  # consecutive steps skipped for a non-finite loss or gradient
    skipped_updates: int = 0  # all such steps, including the gradient scaler's
    history: list[dict] = field(default_factory=list)
    best: dict[str, dict] = field(default_factory=dict)
    best_mean: float | None = None
    engine: torch.nn.Module | None = None  # the model in its DDP wrapper, when distributed

    @property
    def forward_model(self) -> torch.nn.Module:
        """What training forwards go through: the DDP wrapper, or the model itself."""
        return self.engine if self.engine is not None else self.model

    def state_dict(self) -> tuple[dict[str, torch.Tensor], Any]:
        """(tensors for safetensors, JSON tree) of everything but the model weights.

        A collective under data parallel: every rank's random generators and
        regularizer state are gathered (rank 0's at the top level, the others'
        under ``ranks``).
        """
        own = {"rng": rng_state(), "regularizer": self.regularizer.state_dict()}
        everyone = distributed.all_gather_objects(own)
        return flatten(
            {
                "epoch": self.epoch,
                "global_step": self.global_step,
                "bad_steps": self.bad_steps,
                "skipped_updates": self.skipped_updates,
                "history": self.history,
                "best": self.best,
                "best_mean": self.best_mean,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "sampler": self.sampler.state_dict(),
                **everyone[0],
                **({"ranks": everyone[1:]} if len(everyone) > 1 else {}),
            }
        )

    def load_state_dict(self, tensors: dict[str, torch.Tensor], tree: Any) -> None:
        state = unflatten(tree, tensors)
        for key in ("epoch", "global_step", "bad_steps", "skipped_updates", "best_mean"):
            setattr(self, key, state[key])
        self.history, self.best = state["history"], state["best"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        rank = distributed.rank()
        own = state["ranks"][rank - 1] if rank else state
        self.regularizer.load_state_dict(own["regularizer"])
        set_rng_state(own["rng"])


# -- setup -------------------------------------------------------------------------------------


def setup_run(cfg: TrainConfig, adv_cfg: AdvConfig) -> Run:
    if not cfg.train_datasets:
        raise TrainingError("--train_datasets is empty: name at least one task, e.g. rte")
    check_paths(cfg)
    task_defs = load_task_defs(*cfg.task_def)
    unknown = [t for t in cfg.train_datasets if t not in task_defs]
    if unknown:
        raise TrainingError(
            f"--train_datasets: unknown task(s) {unknown}; defined: {', '.join(sorted(task_defs))}"
        )
    train_tasks = {name: task_defs[name] for name in cfg.train_datasets}
    for task in train_tasks.values():
        if not task.train_split:
            raise TrainingError(f"task '{task.name}' has no train split")
    init = resolve_init_checkpoint(cfg.init_checkpoint)
    data_dir = cfg.data_dir or str(Path(DEFAULT_DATA_ROOT) / model_tag(init))
    train_sets = [
        load_split(data_dir, t, str(t.train_split), cfg.max_seq_len, cfg.max_train_samples)
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
    world = distributed.init(device.type)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    pooling = checkpoint_pooling(init) if cfg.pooling == "auto" else cfg.pooling
    resolved = {
        **to_jsonable(cfg, adv_cfg),
        "init_checkpoint": init,
        "pooling": pooling,
        "data_dir": data_dir,
        # Each rank draws its own dropout masks and noise: another world size is another run.
        **({"world_size": world.world_size} if world.distributed else {}),
    }
    return Run(
        cfg=cfg,
        adv_cfg=adv_cfg,
        task_defs=task_defs,
        train_tasks=train_tasks,
        train_sets=train_sets,
        eval_sets=eval_sets,
        device=device,
        amp_dtype=resolve_amp(cfg.amp, device),
        init=init,
        pooling=pooling,
        out_dir=Path(cfg.output_dir),
        resolved=resolved,
        world=world,
        tokenizer=pretrained_tokenizer(init),
    )


def setup_state(run: Run) -> TrainState:
    """A fresh state: pretrained encoder, new heads, optimizer, schedule, sampler, regularizer."""
    cfg = run.cfg
    seed_everything(cfg.seed)
    encoder = load_encoder(run.init)
    dropout = cfg.dropout if cfg.dropout >= 0 else None
    model = MultiTaskModel(encoder, run.train_tasks, pooling=run.pooling, dropout=dropout)
    model.to(run.device)
    if cfg.fast_dropout:
        fast_dropout.install(model)
    if cfg.compile:
        if run.adv_cfg.adv_space == "hidden":
            raise TrainingError(
                "--compile with --adv_space hidden: the perturbation hooks the embedding block "
                "inside the compiled encoder; use adv_space word or drop --compile"
            )
        model.encoder.compile()  # in place: parameter names and checkpoints are unchanged
    world = run.world
    if world.distributed:  # same weights everywhere (DDP checks), own dropout masks per rank
        seed_everything(cfg.seed + world.rank)
    try:
        sampler = MultiTaskBatchSampler(
            [ds.lengths for ds in run.train_sets],
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            mix=cfg.mix,
            temperature=cfg.temperature,
            ratio=cfg.ratio,
            group_by_length=cfg.group_by_length,
            rank=world.rank,
            world_size=world.world_size,
        )
    except ValueError as exc:
        raise TrainingError(f"--batch_size / data: {exc}") from None
    total_steps = math.ceil(len(sampler) / cfg.grad_accumulation_step) * cfg.epochs
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(total_steps, cfg.warmup))
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype is torch.float16)
    try:
        regularizer = build_regularizer(run.adv_cfg, run.train_tasks)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    engine = distributed.wrap(model, run.device, len(model.heads)) if world.distributed else None
    return TrainState(model, optimizer, scheduler, scaler, sampler, regularizer, engine=engine)


def checkpoints_dir(run: Run) -> Path:
    return run.out_dir / "checkpoints"


def step_folders(out_dir: Path) -> list[Path]:
    """The ``checkpoints/step-N`` folders under ``out_dir``, oldest first."""
    folder = out_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def step_checkpoints(run: Run) -> list[Path]:
    """The step-N checkpoint folders of this run, oldest first."""
    return step_folders(run.out_dir)


def last_checkpoint(out_dir: str | Path) -> Path:
    """The newest ``checkpoints/step-N`` folder a run wrote into ``out_dir``."""
    found = step_folders(Path(out_dir))
    if not found:
        raise TrainingError(f"{Path(out_dir) / 'checkpoints'}: no step-N checkpoint")
    return found[-1]


def _state_files(ckpt: Path) -> tuple[dict[str, torch.Tensor], Any]:
    tree = json.loads((ckpt / STATE_JSON).read_text(encoding="utf-8"))
    return load_file(str(ckpt / STATE_TENSORS), device="cpu"), tree


def read_train_state(ckpt: str | Path) -> dict:
    """The training state a step checkpoint holds (optimizer, sampler, RNG, counters...)."""
    tensors, tree = _state_files(Path(ckpt))
    return unflatten(tree, tensors)


def resume_point(run: Run) -> Path | None:
    """The checkpoint to continue from (``--resume``), or None to start afresh."""
    cfg = run.cfg
    if cfg.resume not in ("auto", "never"):
        path = Path(cfg.resume)
        if not (path / STATE_JSON).is_file():
            raise TrainingError(f"--resume {path}: not a step checkpoint (no {STATE_JSON})")
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            raise TrainingError(f"--resume: {exc}") from None
        return path
    existing = step_checkpoints(run)
    if not existing:
        return None
    if cfg.resume == "never":
        raise TrainingError(
            f"{run.out_dir} already holds checkpoints of a run; pass --resume auto to continue "
            "it or choose another --output_dir"
        )
    found, skipped = latest_complete_checkpoint(list(reversed(existing)))
    for message in skipped:
        run.log(f"warning: {message}; falling back to an older checkpoint")
    if found is None:
        raise TrainingError(f"{checkpoints_dir(run)}: no complete checkpoint to resume from")
    return found


def check_same_run(run: Run, ckpt: Path) -> None:
    """A resumed run must be the run that was saved: same data, model and settings."""
    saved = {**BEFORE_ADDED, **json.loads((ckpt / "config.json").read_text(encoding="utf-8"))}
    differ = sorted(
        key
        for key in set(saved) | set(run.resolved)
        if key not in RESUME_MAY_DIFFER and saved.get(key) != run.resolved.get(key)
    )
    if "task_def" in differ and _same_tasks(saved.get("task_def"), run.task_defs):
        differ.remove("task_def")  # named differently (a path then, "glue" now), same facts
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {run.resolved.get(k)!r}" for k in differ[:5])
        raise TrainingError(
            f"{ckpt} was saved by a run with a different config ({shown}); resume it with the "
            "same settings or use another --output_dir"
        )


def _same_tasks(saved: Any, task_defs: Mapping[str, TaskDef]) -> bool:
    """Do the task files a run was saved with define exactly these tasks?"""
    if not isinstance(saved, list) or not all(isinstance(name, str) for name in saved):
        return False
    try:
        return load_task_defs(*saved) == dict(task_defs)
    except (OSError, ValueError):  # gone or unreadable: only the names can be compared
        return False


def load_state(run: Run, state: TrainState, ckpt: Path) -> None:
    from safetensors.torch import load_model

    check_same_run(run, ckpt)
    load_model(state.model, str(ckpt / "model.safetensors"), strict=True, device=str(run.device))
    state.load_state_dict(*_state_files(ckpt))
    run.log(f"resumed from {ckpt} (epoch {state.epoch + 1}, optimizer step {state.global_step})")


def save_state(run: Run, state: TrainState) -> Path:
    """``checkpoints/step-N``: weights and the full state, as one atomic unit; prune old ones.

    Every rank calls it (the state is gathered); rank 0 writes, the others wait.
    """
    tensors, tree = state.state_dict()
    path = checkpoints_dir(run) / f"step-{state.global_step}"
    if run.world.main:
        _write_state(run, state, path, tensors, tree)
    distributed.barrier()
    return path


def _write_state(run: Run, state: TrainState, path: Path, tensors, tree) -> None:
    save_checkpoint(
        state.model,
        path,
        run.task_defs,
        run.resolved,
        tokenizer=run.tokenizer,
        files={
            STATE_TENSORS: lambda target: save_file(tensors, str(target)),
            STATE_JSON: (json.dumps(tree) + "\n").encode("utf-8"),
        },
    )
    for old in step_checkpoints(run)[: -run.cfg.keep_checkpoints]:
        # Renamed out of the step-N namespace first, so a kill mid-delete leaves no
        # half folder that looks like a checkpoint.
        doomed = old.with_name(f".deleting-{old.name}")
        old.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)


# -- the loop ----------------------------------------------------------------------------------


def train(cfg: TrainConfig, adv_cfg: AdvConfig) -> dict:
    run = setup_run(cfg, adv_cfg)
    state = setup_state(run)
    try:
        ckpt = resume_point(run)
        if ckpt is not None:
            load_state(run, state, ckpt)
        if run.world.main:
            run.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(run.out_dir / "config.json", run.resolved)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                run.writer = SummaryWriter(str(run.out_dir / "tensorboard"))
        ranks = f" x {run.world.world_size} processes" if run.world.distributed else ""
        run.log(
            "training "
            + ", ".join(f"{ds.task.name} ({len(ds)})" for ds in run.train_sets)
            + f" | {run.init} ({run.pooling} pooling) on {run.device}{ranks}, "
            f"amp={run.amp_dtype}, adv={adv_cfg.adv} | {len(state.sampler)} batches/epoch"
        )
        while state.epoch < cfg.epochs:
            seconds, examples = train_epoch(run, state)
            end_epoch(run, state, seconds, examples)
    finally:
        if run.writer:
            run.writer.close()
        distributed.shutdown()
    run.log("best dev: " + json.dumps({k: round(v["score"], 2) for k, v in state.best.items()}))
    return {"history": state.history, "best": state.best}


class MicroBatchBackward:
    """The ``backward(loss)`` a regularizer is handed for one micro-batch.

    Scales the loss for the fp16 scaler, for gradient accumulation (micro-batch
    means are averaged) and, under data parallel, by this rank's share of the
    global batch (DDP averages over ranks, so unequal slices are weighed by
    ``len(slice) * world_size / global_size`` to give the global batch's mean).
    ``deferred()`` wraps a forward and backward that are not the micro-batch's
    last (FreeLB's first K-1 ascent steps): no all-reduce there.
    """

    def __init__(self, run: Run, state: TrainState, weight: float):
        self.scaler, self.engine = state.scaler, state.forward_model
        self.factor = weight / run.cfg.grad_accumulation_step

    def __call__(self, loss: torch.Tensor) -> None:
        if self.factor != 1.0:
            loss = loss * self.factor
        self.scaler.scale(loss).backward()

    def deferred(self):
        return distributed.no_sync(self.engine)


def train_epoch(run: Run, state: TrainState) -> tuple[float, int]:
    """One pass over the mixture (or its rest, after a resume): (seconds, examples)."""
    cfg, sampler, model, engine = run.cfg, state.sampler, state.model, state.forward_model
    model.train()
    sampler.set_epoch(state.epoch)  # keeps the position right after a resume
    task_list = list(run.train_tasks.values())
    accum = cfg.grad_accumulation_step
    log = Accumulator.empty()
    all_finite = torch.ones((), dtype=torch.bool, device=run.device)
    started, examples, window_finite = time.perf_counter(), 0, all_finite
    bar = None
    if cfg.progress and run.world.main:
        from tqdm import tqdm

        bar = tqdm(total=len(sampler), initial=sampler.position,
                   desc=f"epoch {state.epoch + 1}/{cfg.epochs}")  # fmt: skip

    world = run.world.world_size
    for task_index, indices in sampler:
        if bar is not None:
            bar.update(1)
        task, dataset = task_list[task_index], run.train_sets[task_index]
        batch = batch_to(
            collate([dataset[j] for j in indices], model.pad_token_id, task), run.device
        )
        steps_now = not (sampler.position % accum and sampler.position != len(sampler))
        backward = MicroBatchBackward(run, state, len(indices) * world / sampler.global_size)
        # Gradients of an optimizer step's earlier micro-batches are all-reduced with its last.
        with (
            autocast_context(run.device, run.amp_dtype),
            contextlib.nullcontext() if steps_now else backward.deferred(),
        ):
            out = state.regularizer.step(engine, batch, task, backward)
        examples += sampler.global_size
        # Read once per optimizer step (optimizer_step), not here: no wait for the device.
        window_finite = window_finite & torch.isfinite(out.tensors["loss"])
        log.add(out.tensors)
        if not steps_now:
            continue
        grad_norm = optimizer_step(run, state, window_finite)
        window_finite = all_finite
        if state.global_step % cfg.log_every == 0:
            means = log.means()
            speed = examples / (time.perf_counter() - started)
            means.update(lr=float(state.scheduler.get_last_lr()[0]), examples_per_s=speed,
                         skipped_updates=float(state.skipped_updates))  # fmt: skip
            if grad_norm is not None:
                means["grad_norm"] = grad_norm
            if run.writer:
                for key, value in means.items():
                    run.writer.add_scalar(f"train/{key}", value, state.global_step)
            if bar is not None:
                bar.set_postfix(loss=f"{means['loss']:.4f}", ex_s=f"{speed:.1f}")
            log = Accumulator.empty()
        # Never a checkpoint inside a streak of bad steps: resuming it would resume the streak.
        if cfg.save_every and state.global_step % cfg.save_every == 0 and not state.bad_steps:
            if sampler.position != len(sampler):  # the epoch's end is saved after evaluation
                save_state(run, state)
    if bar is not None:
        bar.close()
    return time.perf_counter() - started, examples


def optimizer_step(run: Run, state: TrainState, loss_finite: bool | torch.Tensor) -> float | None:
    """Clip and step, unless the loss or a gradient is not finite: then skip and count.

    The step's one wait for the device: the gradient norm and ``loss_finite``
    (a device tensor from the trainer) are read here to decide.
    """
    cfg, scaler, optimizer = run.cfg, state.scaler, state.optimizer
    loss_finite = bool(loss_finite)
    if run.world.distributed:  # every rank must take the same decision
        loss_finite = bool(distributed.all_reduce_sum(np.array([float(not loss_finite)]))[0] == 0)
    scaler.unscale_(optimizer)
    params = [p for p in state.model.parameters() if p.grad is not None]
    max_norm = cfg.global_grad_clipping if cfg.global_grad_clipping > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    scale = scaler.get_scale() if scaler.is_enabled() else None
    if loss_finite and math.isfinite(grad_norm):
        scaler.step(optimizer)
        scaler.update()
        # The fp16 scaler skips a step with inf/NaN gradients itself and lowers its scale.
        skipped = scale is not None and scaler.get_scale() < scale
    else:
        scaler.update()
        skipped = True
    optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    state.global_step += 1
    if not skipped:
        state.bad_steps = 0
        return grad_norm
    state.bad_steps += 1
    state.skipped_updates += 1
    what = "loss" if not loss_finite else f"gradient norm ({grad_norm})"
    run.log(f"warning: optimizer step {state.global_step} skipped: non-finite {what}")
    if state.bad_steps >= cfg.max_bad_steps:
        last = step_checkpoints(run)
        keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was saved"
        raise TrainingDiverged(
            f"training diverged: {state.bad_steps} consecutive optimizer steps had a non-finite "
            f"{what} (epoch {state.epoch + 1}, optimizer step {state.global_step}); stopped; "
            f"{keep}. Lower --learning_rate or raise --max_bad_steps"
        )
    return None


def end_epoch(run: Run, state: TrainState, seconds: float, examples: int) -> None:
    """Evaluate, record, and save the epoch's checkpoint (and best/)."""
    epoch = state.epoch + 1
    main = run.world.main
    reg_logs = state.regularizer.end_epoch(epoch, run.out_dir if main else None, run.writer) or {}
    results: dict[str, dict] = {}
    for dataset in run.eval_sets:
        try:
            res = evaluate(state.model, dataset, run.train_tasks, run.cfg.batch_size_eval,
                           run.device, run.amp_dtype)  # fmt: skip
        except NonFiniteOutputs as exc:
            last = step_checkpoints(run)
            keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was saved"
            raise TrainingDiverged(f"after epoch {epoch}: {exc}; stopped; {keep}") from None
        name = f"{dataset.task.name}_{dataset.split}"
        results[name] = res["metrics"]
        for key, value in res["metrics"].items():
            if run.writer:
                run.writer.add_scalar(f"dev/{name}/{key}", value, epoch)
    state.history.append(
        {
            "epoch": epoch,
            "train_seconds": round(seconds, 2),
            "train_examples_per_s": round(examples / max(seconds, 1e-9), 2),
            "adv_skipped_steps": state.regularizer.skipped_steps,
            "skipped_updates": state.skipped_updates,
            "dev": results,
            **({"regularizer": reg_logs} if reg_logs else {}),
        }
    )
    summary = "  ".join(
        f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in m.items()) for name, m in results.items()
    )
    run.log(f"epoch {epoch}: {summary}  ({seconds:.0f}s train)")
    scores = []
    for dataset in run.eval_sets:
        name = f"{dataset.task.name}_{dataset.split}"
        if results[name]:
            score = primary_score(results[name], dataset.task)
            scores.append(score)
            if name not in state.best or score > state.best[name]["score"]:
                state.best[name] = {"epoch": epoch, "score": score, "metrics": results[name]}
    state.epoch = epoch
    improved = bool(scores) and (
        state.best_mean is None or float(np.mean(scores)) > state.best_mean
    )
    # Inside a streak of bad steps nothing is saved: the last checkpoint stays a good one.
    if not state.bad_steps:
        if improved:  # before save_state: a resumed run must know this best
            state.best_mean = float(np.mean(scores))
        # The epoch's checkpoint first: best/ is only ever a copy of a complete one.
        save_state(run, state)
        if improved and run.cfg.save_best and main:
            save_checkpoint(state.model, run.out_dir / "best", run.task_defs, run.resolved,
                            extra={"epoch": epoch, "dev": results},
                            tokenizer=run.tokenizer)  # fmt: skip
    if main:
        write_json(run.out_dir / "metrics.json", {"history": state.history, "best": state.best})
    distributed.barrier()  # best/ and metrics.json are complete before any rank goes on


__all__ = [
    "CheckpointError",
    "Run",
    "TrainState",
    "TrainingDiverged",
    "TrainingError",
    "last_checkpoint",
    "read_train_state",
    "train",
]
