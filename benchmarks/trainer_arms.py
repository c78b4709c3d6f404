#!/usr/bin/env python
"""One arm of ``bench_trainer.py``, run in a fresh process: ``trainer_arms.py SPEC.json``.

The spec (written by ``bench_trainer.py``) names the arm, the model folder, the
data and the settings; the result (examples per second, peak memory, what was
actually run) is written as JSON to ``spec["result"]``. A fresh process per arm
gives each arm a clean allocator and its own peak-memory counter.

Arms:

- ``ours:<method>``: this toolkit's trainer, the real code path: ``setup_run``
  and ``setup_state`` build the run (untimed), then one ``train_epoch`` is timed;
  the end-of-epoch evaluation and checkpoint (``end_epoch``) are not run.
- ``trainer:run_glue``: ``transformers.Trainer`` set up as ``run_glue.py`` does
  (``pad_to_max_length``, its default): every row padded to ``max_seq_len``,
  ``default_data_collator``, random sampling; one Trainer per task, as
  ``run_glue.py`` trains one task per run.
- ``trainer:dynamic``: ``transformers.Trainer`` with ``DataCollatorWithPadding``
  and ``train_sampling_strategy="group_by_length"`` (the transformers 5 name of
  the old ``group_by_length=True``), one Trainer per task.

Timed part: ours from just before ``train_epoch`` to just after it; the
Trainer's from its ``on_train_begin`` callback to its ``on_train_end`` (after
the data loader and optimizer are built, as ours are before ``train_epoch``),
summed over the two tasks' Trainers.
On CUDA both ends synchronise the device first.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after a reset at the
start of the timed part. On CPU the peak resident set size of this process
during the timed part: writing ``5`` to ``/proc/self/clear_refs`` resets the
kernel's high-water mark ``VmHWM`` to the current RSS at the start, and
``VmHWM`` is read at the end (``getrusage`` cannot be reset, and in one process
the arms would share one peak). If the reset is refused the peak is the
process's whole-life peak and ``rss_reset`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("rte", "mrpc")
GLUE_TASK_DEF = "glue"  # the built-in GLUE task definitions (data_utils/tasks/glue.yml)
PROFILE_SKIP = 2  # profiler: first step skipped, second a warm-up, then the recorded steps


# -- memory and clocks -------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Meter:
    """Wall time and peak memory of the timed part of one arm, possibly in several segments
    (the Trainer arms train one task per Trainer, as run_glue.py does): seconds add up,
    peaks are the largest of the segments'."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device
        self.cuda = device.type == "cuda"
        self.rss_reset = True
        self.seconds = 0.0
        self.segments: list[float] = []
        self.peak_rss_kb = self.rss_increase_kb = None
        self.peak_bytes = self.increase_bytes = 0

    def _sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._sync()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = self.torch.cuda.memory_allocated(self.device)
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            self.rss_reset = False
        self.start_rss_kb = _status_kb("VmRSS")
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self._sync()
        seconds = time.perf_counter() - self.t0
        self.segments.append(seconds)
        self.seconds += seconds
        peak_kb = _status_kb("VmHWM")
        if peak_kb is not None and self.start_rss_kb is not None:
            self.peak_rss_kb = max(self.peak_rss_kb or 0, peak_kb)
            self.rss_increase_kb = max(self.rss_increase_kb or 0, peak_kb - self.start_rss_kb)
        if self.cuda:
            peak = self.torch.cuda.max_memory_allocated(self.device)
            self.peak_bytes = max(self.peak_bytes, peak)
            self.increase_bytes = max(self.increase_bytes, peak - self.start_bytes)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": self.seconds, "rss_reset": self.rss_reset}
        if len(self.segments) > 1:
            out["segment_seconds"] = self.segments
        if self.peak_rss_kb is not None:
            out["peak_rss_mib"] = self.peak_rss_kb / 1024
            out["peak_rss_increase_mib"] = self.rss_increase_kb / 1024
        if self.cuda:
            out["peak_cuda_mib"] = self.peak_bytes / 2**20
            out["peak_cuda_increase_mib"] = self.increase_bytes / 2**20
        return out


def optimizer_facts(optimizer) -> dict[str, Any]:
    inner = optimizer
    while hasattr(inner, "optimizer"):  # accelerate's AcceleratedOptimizer wraps the real one
        inner = inner.optimizer
    defaults = getattr(inner, "defaults", {})
    return {
        "class": type(inner).__name__,
        "param_groups": len(inner.param_groups),
        "lrs": sorted({float(g["lr"]) for g in inner.param_groups}),
        "weight_decays": sorted({float(g.get("weight_decay", 0.0)) for g in inner.param_groups}),
        "foreach": defaults.get("foreach"),
        "fused": defaults.get("fused"),
        "eps": defaults.get("eps"),
    }


# -- the profiler --------------------------------------------------------------------------------


class StepProfiler:
    """torch.profiler over optimizer steps: ``PROFILE_SKIP`` steps unrecorded, then ``steps``.

    The step boundary is the end of every ``optimizer.step()`` (a global
    post-hook), the same point in both trainers.
    """

    def __init__(self, spec: dict, device):
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule

        self.torch = torch
        self.name, self.steps = spec["profile"]["name"], int(spec["profile"]["steps"])
        self.out_dir = Path(spec["profile"]["dir"])
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.cuda = device.type == "cuda"
        self.times: list[float] = []
        self.saved = False
        self.prof = profile(
            activities=activities,
            schedule=schedule(skip_first=PROFILE_SKIP - 1, wait=0, warmup=1, active=self.steps),
            on_trace_ready=self._save,
        )

    def __enter__(self):
        self.prof.__enter__()
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.handle = register_optimizer_step_post_hook(self._step)
        self.times.append(time.perf_counter())
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        self.prof.__exit__(*exc)
        return False

    def _step(self, *_args) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        self.prof.step()

    def _save(self, prof) -> None:
        if self.saved:
            return
        self.saved = True
        self.out_dir.mkdir(parents=True, exist_ok=True)
        events = prof.key_averages()
        table = events.table(sort_by="self_cpu_time_total", row_limit=40)
        header = f"{self.name}: {self.steps} optimizer steps, top ops by self CPU time\n\n"
        (self.out_dir / f"{self.name}.txt").write_text(header + table + "\n", encoding="utf-8")
        if self.cuda:
            table = events.table(sort_by="self_device_time_total", row_limit=40)
            (self.out_dir / f"{self.name}_cuda.txt").write_text(table + "\n", encoding="utf-8")
        ops = {}
        for evt in events:
            ops[evt.key] = {
                "count": int(evt.count),
                "self_cpu_us": float(evt.self_cpu_time_total),
                "self_device_us": float(getattr(evt, "self_device_time_total", 0.0) or 0.0),
            }
        (self.out_dir / f"{self.name}_ops.json").write_text(json.dumps(ops), encoding="utf-8")

    def report(self) -> dict[str, Any]:
        walls = [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
        active = walls[PROFILE_SKIP : PROFILE_SKIP + self.steps]
        return {
            "profiled_steps": len(active),
            "saved": self.saved,
            "step_wall_ms_median": 1000 * statistics.median(active) if active else None,
            "step_wall_ms": [round(1000 * w, 2) for w in active],
        }


# -- our trainer --------------------------------------------------------------------------------


def ours_configs(spec: dict):
    """TrainConfig/AdvConfig for one method, with the HF Trainer's defaults where ours differ
    only in a setting (see the README's fairness section)."""
    from mt_dnn.adversarial.config import AdvConfig
    from mt_dnn.config import TrainConfig

    rows = spec["profile"]["rows"] if spec.get("profile") else spec["rows"]
    cfg = TrainConfig(
        task_def=(GLUE_TASK_DEF,),
        train_datasets=TASKS,
        data_dir=spec["tok_dir"],
        max_seq_len=spec["max_seq_len"],
        max_train_samples=rows,
        max_eval_samples=1,  # loaded by setup_run, never evaluated here
        init_checkpoint=spec["model_dir"],
        epochs=1,
        batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        head_learning_rate=0.0,  # = learning_rate: one rate everywhere, as the Trainer
        layer_decay=1.0,
        weight_decay=0.0,  # the Trainer's defaults
        adam_eps=1e-8,
        warmup=0.0,
        global_grad_clipping=1.0,
        seed=spec["seed"],
        device=spec["device"],
        amp="bf16" if spec["bf16"] else "none",
        output_dir=str(Path(spec["scratch"]) / "ours"),
        save_best=False,
        tensorboard=False,
        progress=False,
    )
    method = spec["arm"].split(":", 1)[1]
    if method.endswith("_torch_dropout"):
        cfg = dataclasses.replace(cfg, fast_dropout=False)
        method = method.removesuffix("_torch_dropout")
    adv = AdvConfig(adv=method, **({"adv_k": 2} if method == "freelb" else {}))
    return cfg, adv


def run_ours(spec: dict) -> dict[str, Any]:
    from mt_dnn import trainer

    cfg, adv = ours_configs(spec)
    setup_started = time.perf_counter()
    run = trainer.setup_run(cfg, adv)
    state = trainer.setup_state(run)
    setup_seconds = time.perf_counter() - setup_started
    batches = state.sampler.epoch_batches(0)
    lengths = [ds.lengths for ds in run.train_sets]
    cells = sum(len(b) * max(lengths[t][i] for i in b) for t, b in batches)
    real = sum(sum(ds.lengths) for ds in run.train_sets)
    out: dict[str, Any] = {
        "setup_seconds": setup_seconds,
        "rows": {ds.task.name: len(ds) for ds in run.train_sets},
        "batches": len(batches),
        "padded_fraction": 1.0 - real / cells,
        "tokens": real,
        "optimizer": optimizer_facts(state.optimizer),
        "params": sum(p.numel() for p in state.model.parameters()),
        "attn_implementation": getattr(state.model.encoder.config, "_attn_implementation", None),
        "pooling": run.pooling,
        "amp": str(run.amp_dtype),
        "adv": {k: v for k, v in vars(adv).items() if k in ("adv", "adv_k", "adv_preset")},
    }
    if spec.get("profile"):
        Path(spec["profile"]["batches_file"]).write_text(
            json.dumps([[TASKS[t], b] for t, b in batches]), encoding="utf-8"
        )
        with StepProfiler(spec, run.device) as prof:
            trainer.train_epoch(run, state)
        return {**out, **prof.report()}
    meter = Meter(run.device)
    meter.start()
    seconds, examples = trainer.train_epoch(run, state)
    meter.stop()
    out.update(meter.report())
    out["examples"] = examples
    out["train_epoch_seconds"] = seconds
    out["examples_per_s"] = examples / meter.seconds
    return out


# -- the HuggingFace Trainer -------------------------------------------------------------------


def trainer_rows(spec: dict, tokenizer, pad_to_max: bool, rows: int) -> dict[str, list[dict]]:
    """The first ``rows`` training rows of each task, tokenized as run_glue.py does, and
    checked against the token ids of our tokenized files (the same rows, the same tokens)."""
    from data_utils.canonical import read_canonical
    from data_utils.dataset import TaskDataset
    from data_utils.task_def import load_task_defs

    defs = load_task_defs(GLUE_TASK_DEF)
    out: dict[str, list[dict]] = {}
    for name in TASKS:
        task = defs[name]
        examples = read_canonical(Path(spec["canonical_dir"]) / f"{name}_train.tsv", task, "train")
        examples = examples[:rows] if rows else examples
        encoded = tokenizer(
            [ex.premise for ex in examples],
            [ex.hypothesis for ex in examples],
            padding="max_length" if pad_to_max else False,
            max_length=spec["max_seq_len"],
            truncation=True,
        )
        ours = TaskDataset.load(Path(spec["tok_dir"]) / f"{name}_train.json", task, "train").rows
        task_rows = []
        for i, ex in enumerate(examples):
            row = {key: encoded[key][i] for key in encoded}
            real = sum(row["attention_mask"])
            if row["input_ids"][:real] != ours[i]["input_ids"] or ours[i]["uid"] != ex.uid:
                raise SystemExit(f"{name} row {i}: token ids differ from {spec['tok_dir']}")
            row["label"] = task.label_to_id(ex.label)
            task_rows.append(row)
        out[name] = task_rows
    return out


def run_trainer(spec: dict) -> dict[str, Any]:
    """One Trainer per task (run_glue.py trains one task per run), each on a fresh model from
    the folder; the arm's time is the sum of their timed parts. Profiling runs one Trainer on
    our sampler's batches of both tasks, read sequentially."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    variant = spec["arm"].split(":", 1)[1]
    profile = spec.get("profile")
    dynamic = variant == "dynamic"
    setup_started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    rows = profile["rows"] if profile else spec["rows"]
    by_task = trainer_rows(spec, tokenizer, pad_to_max=not dynamic, rows=rows)
    if profile:
        order = json.loads(Path(profile["batches_file"]).read_text(encoding="utf-8"))
        if any(len(b) != spec["batch_size"] for _, b in order):
            raise SystemExit("profile: every batch must be full to align the two loaders")
        datasets = {"profile": [by_task[t][i] for t, b in order for i in b]}
    else:
        datasets = by_task
    collator = DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator
    strategy = ("sequential" if profile else "group_by_length") if dynamic else None
    meter = None if profile else Meter(torch.device(spec["device"]))
    facts: dict[str, Any] = {}
    cells = [0]

    def count_cells(_module, _args, kw):
        ids = kw.get("input_ids")
        if ids is not None:
            cells[0] += ids.shape[0] * ids.shape[1]

    class Timed(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            facts["optimizer"] = optimizer_facts(kw["optimizer"])
            if meter is not None:
                meter.start()

        def on_train_end(self, args, state, control, **kw):
            if meter is not None:
                meter.stop()

    def build(name: str, dataset: list[dict]):
        set_seed(spec["seed"])  # as run_glue.py, before the model is built
        model = AutoModelForSequenceClassification.from_pretrained(
            spec["model_dir"], num_labels=2, dtype=torch.float32
        )
        model.register_forward_pre_hook(count_cells, with_kwargs=True)
        args = TrainingArguments(
            output_dir=str(Path(spec["scratch"]) / name),
            per_device_train_batch_size=spec["batch_size"],
            num_train_epochs=1,
            learning_rate=spec["learning_rate"],
            seed=spec["seed"],
            bf16=spec["bf16"],
            use_cpu=spec["device"] == "cpu",
            report_to="none",
            save_strategy="no",
            dataloader_num_workers=0,
            disable_tqdm=True,  # ours runs with progress bars off too
            **({"train_sampling_strategy": strategy} if strategy else {}),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[Timed()],
        )
        facts.update(
            params=sum(p.numel() for p in model.parameters()),
            attn_implementation=getattr(model.config, "_attn_implementation", None),
            train_sampling_strategy=args.train_sampling_strategy,
            optim=str(args.optim),
        )
        return model, args, trainer

    out: dict[str, Any] = {
        "rows": {name: len(by_task[name]) for name in TASKS},
        "collator": type(collator).__name__ if dynamic else "default_data_collator",
        "tokens": sum(sum(row["attention_mask"]) for ds in datasets.values() for row in ds),
    }
    if profile:
        model, args, trainer = build("profile", datasets["profile"])
        out["setup_seconds"] = time.perf_counter() - setup_started
        with StepProfiler(spec, args.device) as prof:
            trainer.train()
        out.update(prof.report())
    else:
        steps, setup = 0, time.perf_counter() - setup_started
        for name, dataset in datasets.items():
            started = time.perf_counter()
            model, args, trainer = build(name, dataset)
            setup += time.perf_counter() - started
            steps += trainer.train().global_step
            del trainer, model
        assert meter is not None
        out.update(meter.report())
        examples = sum(len(ds) for ds in datasets.values())
        out.update(
            setup_seconds=setup,
            examples=examples,
            batches=steps,
            examples_per_s=examples / meter.seconds,
            padded_fraction=1.0 - out["tokens"] / cells[0] if cells[0] else None,
        )
    out.update(facts)
    return out


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    import transformers

    transformers.logging.set_verbosity_error()
    runner = run_ours if spec["arm"].startswith("ours:") else run_trainer
    result = runner(spec)
    result.update(
        arm=spec["arm"],
        round=spec.get("round"),
        pid=os.getpid(),
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
    )
    Path(spec["result"]).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} SPEC.json (written by bench_trainer.py)")
    sys.exit(main(sys.argv[1]))
