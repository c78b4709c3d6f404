"""``pip install .`` gives working commands from any folder, with the task YAMLs inside.

A fresh virtual environment in a temporary folder gets the project installed from
a copy of this checkout (non-editable, so the package data must really be in the
wheel: the built-in task definitions are read from the installed package, never
from the checkout). It downloads nothing: the dependencies already installed for
the test run are made importable by a ``.pth`` file listing this interpreter's
site-packages (after the new environment's own, so the installed project wins),
and pip runs with ``--no-index --no-deps --no-build-isolation`` (setuptools comes
from those same site-packages). From a folder outside the checkout the console
scripts and ``python -m`` entries then list the downloader's pinned files (no
network), convert a raw GLUE RTE folder (official layout) into canonical TSVs,
tokenize them with the default (built-in) task definitions, train a tiny BERT for
one epoch and predict with it.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[1]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "a", "dog", "ran", "big", "red"]
PAIRS = [
    ("the cat sat", "a cat sat"),
    ("a dog ran", "the red dog ran"),
    ("the big cat", "a dog"),
    ("a red dog sat", "the cat ran"),
]
RTE_ROWS = {"train": 12, "dev": 6, "test": 3}


def copy_checkout(dest: Path) -> Path:
    """The files a clone would have (tracked, plus new ones git does not ignore), so that
    the build neither sees local data and models nor writes build/ into the checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"git cannot list the checkout's files: {exc}")
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def make_venv(folder: Path) -> tuple[Path, Path]:
    """(python, site-packages) of a new environment that sees our dependencies, no project."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    deps = [p for p in dict.fromkeys(ours) if Path(p).is_dir()]
    assert not any(Path(p).resolve() == REPO_ROOT for p in deps)
    (Path(purelib) / "_mtdnn_test_deps.pth").write_text("\n".join(deps) + "\n")
    return python, Path(purelib)


def write_inputs(work: Path) -> tuple[Path, Path]:
    """A tiny BERT with a word-level tokenizer in one folder, and a raw GLUE folder holding
    RTE as the official RTE.zip unpacks: {train,dev,test}.tsv, test without labels."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from tests.tiny import tiny_encoder

    model_dir = work / "tiny-bert"
    tiny_encoder("bert").save_pretrained(model_dir)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]",
    ).save_pretrained(model_dir)  # fmt: skip
    glue = work / "glue"
    (glue / "RTE").mkdir(parents=True)
    labels = ["entailment", "not_entailment"]
    for split, n in RTE_ROWS.items():
        labelled = split != "test"
        header = "index\tsentence1\tsentence2" + ("\tlabel" if labelled else "")
        rows = [f"{i}\t{PAIRS[i % 4][0]}\t{PAIRS[i % 4][1]}" for i in range(n)]
        rows = [row + f"\t{labels[i % 2]}" if labelled else row for i, row in enumerate(rows)]
        text = header + "\n" + "\n".join(rows) + "\n"
        (glue / "RTE" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return model_dir, glue


def test_installed_commands_work_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env.update(
        PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
    )  # fmt: skip
    source = copy_checkout(tmp_path / "src")
    python, site_packages = make_venv(tmp_path / "venv")
    bin_dir = python.parent
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    install += ["--no-build-isolation", "--ignore-installed", str(source)]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shutil.rmtree(source)  # nothing may still read the copy

    work = tmp_path / "elsewhere"  # outside the checkout, which is not on sys.path
    work.mkdir()
    model_dir, glue = write_inputs(work)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv), cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    where = run(
        str(python), "-c",
        "import sys, data_utils.convert_glue, data_utils.convert_nli, data_utils.prepro\n"
        "import mt_dnn.cli, mt_dnn.predict, mt_dnn.export\n"
        "from data_utils.task_def import task_def_file\n"
        "print(data_utils.__file__, mt_dnn.__file__, task_def_file('glue'), task_def_file('nli'))\n"
        "print(*sys.path, sep='\\n')",
    ).stdout.splitlines()  # fmt: skip
    for path in where[0].split():
        assert Path(path).is_relative_to(site_packages), path
    assert [p for p in where[1:] if p and Path(p).resolve() == REPO_ROOT] == []

    for entry in (
        [str(bin_dir / "mtdnn-export"), "--help"],
        [str(bin_dir / "mtdnn-hf-prepro"), "--help"],
        [str(bin_dir / "mtdnn-nli-prepro"), "--help"],
        [str(python), "-m", "data_utils.convert_glue", "--help"],
        [str(python), "-m", "data_utils.convert_nli", "--help"],
        [str(python), "-m", "data_utils.prepro", "--help"],
        [str(python), "-m", "data_utils.download", "--help"],
        [str(python), "-m", "mt_dnn.train", "--help"],
        [str(python), "-m", "mt_dnn.export", "--help"],
    ):
        assert "--output_dir" in run(*entry).stdout

    # The downloader's table comes from the installed catalogue: no network, no checkout.
    listed = run(str(bin_dir / "mtdnn-download"), "--list", "--tasks", "rte,mrpc").stdout
    assert "RTE.zip" in listed and "msr_paraphrase_train.txt" in listed
    assert "MNLI.zip" not in listed and "total: " in listed
    assert not (work / "data").exists()  # --list fetches and writes nothing

    # Official raw files -> canonical TSVs with the installed converter and task definitions.
    canonical = work / "canonical"
    proc = run(str(bin_dir / "mtdnn-glue-prepro"), "--data_dir", str(glue),
               "--output_dir", str(canonical), "--tasks", "rte")  # fmt: skip
    rows = {}
    for split, n in RTE_ROWS.items():
        assert f"rte {split}: {n} rows" in proc.stdout
        rows[split] = (canonical / f"rte_{split}.tsv").read_text(encoding="utf-8").splitlines()
        assert rows[split][0] == "uid\tlabel\tpremise\thypothesis" and len(rows[split]) == n + 1
    assert rows["train"][2] == f"1\tnot_entailment\t{PAIRS[1][0]}\t{PAIRS[1][1]}"
    assert rows["test"][1] == f"0\t\t{PAIRS[0][0]}\t{PAIRS[0][1]}"  # no label
    assert sorted(p.name for p in canonical.iterdir()) == [
        "rte_dev.tsv", "rte_test.tsv", "rte_train.tsv"
    ]  # fmt: skip

    data = work / "data"
    run(str(bin_dir / "mtdnn-prepro"), "--model", str(model_dir), "--data_dir", str(canonical),
        "--output_dir", str(data), "--tasks", "rte", "--progress", "false")  # fmt: skip
    for split in RTE_ROWS:
        assert (data / f"rte_{split}.json").is_file(), split

    out = work / "run"
    run(str(bin_dir / "mtdnn-train"), "--train_datasets", "rte", "--init_checkpoint",
        str(model_dir), "--data_dir", str(data), "--output_dir", str(out), "--epochs", "1",
        "--batch_size", "4", "--max_seq_len", "64", "--device", "cpu", "--progress", "false",
        "--tensorboard", "false")  # fmt: skip
    assert (out / "best" / "model.safetensors").is_file()

    for predict in ([str(bin_dir / "mtdnn-predict")], [str(python), "-m", "mt_dnn.predict"]):
        shutil.rmtree(out / "best" / "predictions", ignore_errors=True)
        proc = run(*predict, "--checkpoint", str(out / "best"), "--datasets", "rte_dev",
                   "--device", "cpu", "--progress", "false")  # fmt: skip
        assert "rte_dev: 6 rows" in proc.stdout
        lines = (out / "best" / "predictions" / "rte_dev.jsonl").read_text().splitlines()
        assert len(lines) == 6
        assert (out / "best" / "predictions" / "metrics.json").is_file()
