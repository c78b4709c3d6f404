#!/usr/bin/env python
"""Training throughput and peak memory: this toolkit's trainer (each regularizer) against the
HuggingFace Trainer, on the same model, the same real rows and the same batch size.

    python benchmarks/bench_trainer.py --rows 512 --rounds 3 --out benchmarks/results/cpu_minilm
    python benchmarks/bench_trainer.py --device cuda --bf16 --out benchmarks/results/cuda_minilm

Every arm trains ONE epoch on the first ``--rows`` training rows of RTE and of
MRPC (at most ``--max_seq_len`` tokens), in a fresh process of its own
(``trainer_arms.py``); the arms are interleaved over ``--rounds`` rounds (the
order rotates every round) so that drift in the machine's speed hits them all.
Reports examples per second (median over rounds) and the peak memory of the
timed part, writes ``OUT.json`` and ``OUT.md``. ``--torch_profile DIR`` adds a
torch.profiler run of our ``none`` arm and of the Trainer-dynamic arm on
identical batches. See benchmarks/README.md. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer_arms import PROFILE_SKIP, TASKS  # noqa: E402

ARMS_SCRIPT = Path(__file__).resolve().with_name("trainer_arms.py")
# ``none_torch_dropout``: plain training with torch's own dropout (--fast_dropout false).
METHODS = ("none", "smart", "tat", "freelb", "r3f", "random", "none_torch_dropout")
TRAINER_ARMS = ("run_glue", "dynamic")
FAIRNESS = [
    "Same model folder, same rows (the first --rows training rows of RTE and of MRPC, the same "
    "token ids: the Trainer arms tokenize the canonical text as run_glue.py does and are "
    "checked against ours), same batch size, one epoch, AdamW at lr --learning_rate.",
    "Ours is run with the Trainer's defaults where ours differ only in a setting: one learning "
    "rate for every group (head_learning_rate=0, layer_decay=1), weight_decay 0, eps 1e-8, no "
    "warm-up, gradient clipping 1.0; linear decay in both. Our default recipe (LLRD, head lr "
    "1e-3, weight decay 0.01) costs the same per step.",
    "Unavoidable differences: ours keeps one parameter group per encoder layer and decay kind "
    "(the LLRD structure), the Trainer two; the AdamW implementation is each trainer's own "
    "(the Trainer's default optim is adamw_torch_fused; the optimizer lines below say what "
    "each arm ran: class, groups, foreach, fused).",
    "Tasks: ours trains RTE and MRPC jointly (one encoder, one head per task, single-task "
    "batches mixed); the Trainer arms run one Trainer per task on a fresh model, as "
    "run_glue.py trains one task per run, and add up the two timed parts (so they pay the "
    "first-step costs, such as the optimizer's lazy state, twice).",
    "Heads: ours pools as the checkpoint declares (mean for sentence-transformers models) into "
    "a linear head; AutoModelForSequenceClassification uses the pretrained pooler (dense+tanh "
    "on [CLS]) and a linear head. Compute differs by one hidden x hidden product per example.",
    "Padding: Trainer-run_glue pads every row to --max_seq_len (run_glue.py's default "
    "pad_to_max_length); ours and Trainer-dynamic pad to the longest row of each batch and "
    "sort rows by length within random chunks (ours: 50 batches; the Trainer's "
    "LengthGroupedSampler: min(rows / (4 x batch), 50) batches, so little grouping on small "
    "--rows). The padded column is the fraction of padding in what each arm computed on.",
    "Dropout: ours draws CPU dropout masks four per 64-bit random number (--fast_dropout, "
    "the default; p rounded to a multiple of 1/65536), the Trainer with torch's per-element "
    "bernoulli_; the arm 'ours none_torch_dropout' is ours with torch's dropout. Same drop "
    "rate, same scaling, on CUDA the same kernel.",
    "Timed: ours from just before train_epoch to just after (no evaluation, no checkpoint, "
    "TensorBoard and progress bars off); the Trainer from on_train_begin to on_train_end (no "
    "evaluation, no saving, report_to none, tqdm off). Model loading and tokenization are "
    "outside both. On CUDA the device is synchronised at both ends.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--init_checkpoint", default="", help="Model folder (default: packaged MiniLM).")
    p.add_argument(
        "--random_init",
        action="store_true",
        help="Random weights in the --init_checkpoint architecture (or --config_json's), saved "
        "once under --work_dir so every arm loads the same weights.",
    )
    p.add_argument(
        "--config_json",
        default="",
        help="A HuggingFace config.json (with model_type) for --random_init, e.g. "
        "benchmarks/configs/bert_base_uncased.json; the tokenizer stays --init_checkpoint's.",
    )
    p.add_argument(
        "--glue_dir",
        default=os.environ.get("GLUE_DIR", str(ROOT.parent / "shared/data/glue")),
        help="The official GLUE files (RTE/, MRPC/); default $GLUE_DIR or ../shared/data/glue.",
    )
    p.add_argument("--work_dir", default="/tmp/bench_trainer", help="Data, models, logs.")
    p.add_argument(
        "--rows", type=int, default=512, help="First N training rows of each task (0 = all)."
    )
    p.add_argument("--max_seq_len", type=int, default=128, help="Tokens per row at most.")
    p.add_argument("--batch_size", type=int, default=16, help="Training batch of every arm.")
    p.add_argument("--learning_rate", type=float, default=1e-4, help="AdamW rate, every arm.")
    p.add_argument("--seed", type=int, default=2018, help="Seed of every arm.")
    p.add_argument(
        "--methods",
        default="none,none_torch_dropout,smart,tat,freelb,r3f",
        help=f"Ours: any of {','.join(METHODS)}.",
    )
    p.add_argument(
        "--trainer_arms", default="run_glue,dynamic", help="HF Trainer arms ('' for none)."
    )
    p.add_argument("--rounds", type=int, default=3, help="Interleaved rounds (0: profile only).")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="Where arms run.")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in every arm (for CUDA).")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads per arm (0 = torch's default)."
    )
    p.add_argument(
        "--out",
        default="",
        help="Output prefix: writes OUT.json and OUT.md (default: benchmarks/results/trainer_DEVICE_MODEL).",
    )
    p.add_argument(
        "--torch_profile",
        default="",
        metavar="DIR",
        help="Also profile --profile_steps steps of ours:none and trainer:dynamic on identical batches; tables go to DIR.",
    )
    p.add_argument(
        "--profile_steps", type=int, default=10, help="Steps profiled per arm (--torch_profile)."
    )
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.trainer_arms = [a for a in args.trainer_arms.split(",") if a]
    bad = [m for m in args.methods if m not in METHODS]
    bad += [a for a in args.trainer_arms if a not in TRAINER_ARMS]
    if bad:
        p.error(
            f"unknown arm(s) {bad}; methods: {list(METHODS)}, trainer arms: {list(TRAINER_ARMS)}"
        )
    if args.config_json and not args.random_init:
        p.error("--config_json builds a new architecture: it needs --random_init")
    if args.rows < 0 or args.rounds < 0 or args.profile_steps < 1:
        p.error("--rows and --rounds must be >= 0, --profile_steps >= 1")
    if args.rounds == 0 and not args.torch_profile:
        p.error("--rounds 0 does nothing without --torch_profile")
    return args


# -- inputs --------------------------------------------------------------------------------------


def run_quiet(cmd: list[str], log: Path) -> None:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"error: {shlex.join(cmd)} failed (exit {done.returncode}); see {log}")


def prepare_data(args, init: str, work: Path) -> tuple[Path, Path]:
    """Canonical TSVs of RTE/MRPC and their tokenization (both skipped when up to date)."""
    from data_utils.prepro import model_tag

    canonical = work / "canonical"
    tok = work / "tokenized" / f"{model_tag(init)}_len{args.max_seq_len}"
    log = work / "logs" / "prepro.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    py, tasks = sys.executable, ",".join(TASKS)
    glue = [py, "experiments/glue/glue_prepro.py", "--data_dir", args.glue_dir]
    run_quiet([*glue, "--output_dir", str(canonical), "--tasks", tasks], log)
    prepro = [py, "prepro_std.py", "--model", init, "--data_dir", str(canonical)]
    run_quiet(
        [*prepro, "--output_dir", str(tok), "--tasks", tasks,
         "--max_seq_len", str(args.max_seq_len), "--progress", "false"],
        log,
    )  # fmt: skip
    return canonical, tok


def random_model(args, init: str, work: Path) -> Path:
    """A folder with random weights (and ``init``'s tokenizer and pooling), made once."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if args.config_json:
        raw = json.loads(Path(args.config_json).read_text(encoding="utf-8"))
        config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    else:
        config = AutoConfig.from_pretrained(init)
    tokenizer = AutoTokenizer.from_pretrained(init)
    if len(tokenizer) > config.vocab_size:
        sys.exit(
            f"error: {init}'s tokenizer has {len(tokenizer)} tokens, the config's vocab "
            f"{config.vocab_size}"
        )
    key = json.dumps([config.to_dict(), init, args.seed], sort_keys=True, default=str)
    folder = work / "models" / f"random_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / ".complete").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(args.seed)
    AutoModel.from_config(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if (Path(init) / "1_Pooling").is_dir():  # keeps our pooling the checkpoint's (mean for MiniLM)
        shutil.copytree(Path(init) / "1_Pooling", tmp / "1_Pooling")
    (tmp / ".complete").write_text(key + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def machine(args) -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import accelerate

        accelerate_version = accelerate.__version__
    except ImportError:
        accelerate_version = None
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate_version,
        "platform": platform.platform(),
        "git": git,
        "load_average_start": os.getloadavg(),
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# -- running the arms ----------------------------------------------------------------------------


def run_arm(args, base: dict, arm: str, tag: str, work: Path, **extra) -> dict[str, Any]:
    spec = {**base, "arm": arm, **extra}
    stem = f"{tag}_{arm.replace(':', '_')}"
    spec["result"] = str(work / "results" / f"{stem}.json")
    spec["scratch"] = str(work / "scratch" / stem)
    spec_path = work / "specs" / f"{stem}.json"
    for folder in (spec_path.parent, Path(spec["result"]).parent):
        folder.mkdir(parents=True, exist_ok=True)
    Path(spec["result"]).unlink(missing_ok=True)
    shutil.rmtree(spec["scratch"], ignore_errors=True)
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    log = work / "logs" / f"{stem}.log"
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(
            [sys.executable, str(ARMS_SCRIPT), str(spec_path)],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if done.returncode or not Path(spec["result"]).is_file():
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
        sys.exit(f"{tail}\nerror: arm {arm} failed (exit {done.returncode}); log: {log}")
    result = json.loads(Path(spec["result"]).read_text(encoding="utf-8"))
    result["process_seconds"] = time.perf_counter() - started
    shutil.rmtree(spec["scratch"], ignore_errors=True)
    return result


def peak(result: dict, device: str) -> tuple[float | None, float | None]:
    if device == "cuda":
        return result.get("peak_cuda_mib"), result.get("peak_cuda_increase_mib")
    return result.get("peak_rss_mib"), result.get("peak_rss_increase_mib")


def summarise(arms: list[str], results: dict[str, list[dict]], device: str) -> dict[str, dict]:
    summary: dict[str, dict] = {}
    for arm in arms:
        runs = results[arm]
        speeds = [r["examples_per_s"] for r in runs]
        peaks = [peak(r, device) for r in runs]
        summary[arm] = {
            "examples_per_s": statistics.median(speeds),
            "examples_per_s_min": min(speeds),
            "examples_per_s_max": max(speeds),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mib": statistics.median(p[0] for p in peaks) if peaks[0][0] is not None else None,
            "peak_increase_mib": statistics.median(p[1] for p in peaks)
            if peaks[0][1] is not None
            else None,
            "padded_fraction": runs[0].get("padded_fraction"),
            "examples": runs[0]["examples"],
            "batches": runs[0].get("batches"),
        }
    for row in summary.values():
        for ref, key in (
            ("ours:none", "vs_ours_none"),
            ("trainer:run_glue", "vs_trainer_run_glue"),
            ("trainer:dynamic", "vs_trainer_dynamic"),
        ):
            if ref in summary:
                row[key] = row["examples_per_s"] / summary[ref]["examples_per_s"]
    return summary


def label(arm: str) -> str:
    kind, name = arm.split(":", 1)
    return f"ours {name}" if kind == "ours" else f"Trainer {name}"


def markdown(report: dict) -> str:
    s, m = report["settings"], report["machine"]
    mem = "peak CUDA allocated" if s["device"] == "cuda" else "peak RSS"
    lines = [
        f"# Trainer benchmark: {report['model_name']} on {s['device']}"
        + (" (bf16)" if s["bf16"] else " (fp32)"),
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}"
        + (f", {m['gpu']} (CUDA {m['cuda']})" if m.get("gpu") else "")
        + f"; {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs; torch "
        f"{m['torch']} ({report['torch_threads']} threads per arm), transformers "
        f"{m['transformers']}, accelerate {m['accelerate']}, Python {m['python']}; git "
        f"{m['git']}; load average {m['load_average_start'][0]:.2f} at the start, "
        f"{m['load_average_end'][0]:.2f} at the end.",
        "",
        f"Data: the first {s['rows'] or 'all'} training rows of {' and '.join(TASKS)} "
        f"({report['examples']} examples), at most {s['max_seq_len']} tokens, batch "
        f"{s['batch_size']}, one epoch per arm, {s['rounds']} interleaved round(s), each arm in a "
        f"fresh process; {'random weights' if s['random_init'] else 'pretrained weights'}"
        + (f" ({s['config_json']})" if s["config_json"] else "")
        + f", {report['params']:,} parameters.",
        "",
        f"| arm | examples/s (median) | min-max | s/epoch | {mem} MiB | increase MiB | "
        "padded | x ours none | x Trainer run_glue | x Trainer dynamic |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value, fmt="{:.1f}"):
        return (
            "-"
            if value is None or (isinstance(value, float) and math.isnan(value))
            else fmt.format(value)
        )

    for arm, row in report["summary"].items():
        lines.append(
            f"| {label(arm)} | {num(row['examples_per_s'], '{:.2f}')} | "
            f"{num(row['examples_per_s_min'], '{:.2f}')}-{num(row['examples_per_s_max'], '{:.2f}')} | "
            f"{num(row['seconds'])} | {num(row['peak_mib'], '{:.0f}')} | "
            f"{num(row['peak_increase_mib'], '{:.0f}')} | {num(row['padded_fraction'], '{:.0%}')} | "
            f"{num(row.get('vs_ours_none'), '{:.2f}')} | {num(row.get('vs_trainer_run_glue'), '{:.2f}')} | "
            f"{num(row.get('vs_trainer_dynamic'), '{:.2f}')} |"
        )
    lines += ["", "Ratios are of examples per second (above 1: faster than the reference).", ""]
    lines += ["Optimizers as run:", ""]
    for arm, facts in report["optimizers"].items():
        lines.append(f"- {label(arm)}: {json.dumps(facts)}")
    lines += ["", "Fairness:", ""] + [f"- {note}" for note in FAIRNESS]
    if report.get("profile"):
        lines += ["", f"Profile: {report['profile']['dir']} (see compare.md there)."]
    return "\n".join(lines) + "\n"


# -- profiling -----------------------------------------------------------------------------------


def profile(args, base: dict, work: Path) -> dict[str, Any]:
    """Profile ours:none and trainer:dynamic on the same batches; write DIR/compare.md."""
    out_dir = Path(args.torch_profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = args.profile_steps
    # Full batches only, so the Trainer's sequential loader cuts exactly our batches.
    rows = args.batch_size * math.ceil((steps + PROFILE_SKIP) / len(TASKS))
    shared = {
        "dir": str(out_dir),
        "steps": steps,
        "rows": rows,
        "batches_file": str(out_dir / "batches.json"),
    }
    ours = run_arm(
        args, base, "ours:none", "profile", work, profile={**shared, "name": "ours_none"}
    )
    theirs = run_arm(
        args,
        base,
        "trainer:dynamic",
        "profile",
        work,
        profile={**shared, "name": "trainer_dynamic"},
    )
    for name, res in (("ours_none", ours), ("trainer_dynamic", theirs)):
        if not res.get("saved"):
            sys.exit(
                f"error: the profiler of {name} saved nothing ({res.get('profiled_steps')} steps)"
            )
    a = json.loads((out_dir / "ours_none_ops.json").read_text(encoding="utf-8"))
    b = json.loads((out_dir / "trainer_dynamic_ops.json").read_text(encoding="utf-8"))
    key = "self_device_us" if args.device == "cuda" else "self_cpu_us"
    totals = {
        n: sum(v["self_cpu_us"] for v in ops.values()) / steps / 1000
        for n, ops in (("ours", a), ("trainer", b))
    }
    rows_md = []
    for op in set(a) | set(b):
        x = a.get(op, {}).get("self_cpu_us", 0.0) / steps / 1000
        y = b.get(op, {}).get("self_cpu_us", 0.0) / steps / 1000
        cx, cy = a.get(op, {}).get("count", 0) / steps, b.get(op, {}).get("count", 0) / steps
        rows_md.append((x - y, op, x, y, cx, cy))
    rows_md.sort(key=lambda r: -abs(r[0]))
    lines = [
        "# Profile: ours none vs Trainer dynamic, identical batches",
        "",
        f"{steps} optimizer steps each after {PROFILE_SKIP} unrecorded ones, {args.batch_size} "
        f"rows per batch, our sampler's batches in its order (the Trainer reads them with "
        f"train_sampling_strategy='sequential'). Per-step wall time under the profiler: ours "
        f"{ours['step_wall_ms_median']:.1f} ms, Trainer {theirs['step_wall_ms_median']:.1f} ms "
        f"(median). Self CPU time of all ops per step: ours {totals['ours']:.1f} ms, Trainer "
        f"{totals['trainer']:.1f} ms.",
        "",
        f"Optimizers: ours {json.dumps(ours.get('optimizer'))}; Trainer "
        f"{json.dumps(theirs.get('optimizer'))}.",
        "",
        "Ops by the difference in self CPU time per step (ms; + = ours spends more). "
        "`ProfilerStep*`'s self time is the step's time outside every recorded op: Python "
        "(the training loop, collation, a per-parameter optimizer loop) and waiting.",
        "",
        "| op | ours ms/step | Trainer ms/step | difference | ours calls/step | Trainer calls/step |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{op}` | {x:.2f} | {y:.2f} | {d:+.2f} | {cx:g} | {cy:g} |"
        for d, op, x, y, cx, cy in rows_md[:30]
    ]
    if key == "self_device_us":
        lines += ["", "Device time per step: see ours_none_cuda.txt and trainer_dynamic_cuda.txt."]
    lines += ["", "Full tables: ours_none.txt, trainer_dynamic.txt (top ops by self CPU time)."]
    (out_dir / "compare.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"dir": str(out_dir), "ours": ours, "trainer": theirs, "self_cpu_ms_per_step": totals}


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from data_utils.prepro import model_tag
    from mt_dnn.runtime import resolve_init_checkpoint

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("error: --device cuda, but torch sees no CUDA device")
    work = Path(args.work_dir).resolve()
    init = str(Path(resolve_init_checkpoint(args.init_checkpoint)).resolve())
    canonical, tok = prepare_data(args, init, work)
    model_dir = str(random_model(args, init, work)) if args.random_init else init
    arms = [f"ours:{m}" for m in args.methods] + [f"trainer:{a}" for a in args.trainer_arms]
    base = {
        "model_dir": model_dir,
        "tok_dir": str(tok),
        "canonical_dir": str(canonical),
        "rows": args.rows,
        "max_seq_len": args.max_seq_len,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "device": args.device,
        "bf16": args.bf16,
        "threads": args.threads,
    }
    info = machine(args)
    command = shlex.join(
        ["python", os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])]
    )
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(args.rounds):
        order = arms[r % len(arms) :] + arms[: r % len(arms)]
        for arm in order:
            res = run_arm(args, base, arm, f"r{r}", work, round=r)
            results[arm].append(res)
            mib = peak(res, args.device)[0]
            print(
                f"round {r + 1}/{args.rounds} {label(arm):20s} {res['examples_per_s']:8.2f} ex/s "
                f"{res['seconds']:8.1f} s  peak {mib:.0f} MiB",
                flush=True,
            )
    report: dict[str, Any] = {
        "command": command,
        "settings": {**vars(args), "model": model_dir, "init": init},
        "model_name": model_tag(init)
        + ("_random" if args.random_init else "")
        + (f"_{Path(args.config_json).stem}" if args.config_json else ""),
        "machine": info,
        "fairness": FAIRNESS,
    }
    if args.rounds:
        first = {arm: runs[0] for arm, runs in results.items()}
        report.update(
            summary=summarise(arms, results, args.device),
            optimizers={arm: res.get("optimizer") for arm, res in first.items()},
            examples=next(iter(first.values()))["examples"],
            params=first[arms[0]]["params"],
            torch_threads=sorted({res["torch_threads"] for res in first.values()}),
            raw=results,
        )
        counts = {res["examples"] for res in first.values()}
        if len(counts) != 1:
            sys.exit(f"error: the arms trained on different numbers of examples: {first}")
    if args.torch_profile:
        report["profile"] = profile(args, base, work)
        print(f"profile tables: {report['profile']['dir']}/compare.md")
    info["load_average_end"] = os.getloadavg()
    tag = f"trainer_{args.device}_{report['model_name']}"
    out = Path(args.out or ROOT / "benchmarks" / "results" / tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = Path(f"{out}.json"), Path(f"{out}.md")
    json_path.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    if args.rounds:
        text = markdown(report)
        md_path.write_text(text, encoding="utf-8")
        print()
        print(text)
    print(f"wrote {json_path}" + (f" and {md_path}" if args.rounds else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
