"""One task of a trained checkpoint as a HuggingFace model folder.

``python export.py --checkpoint CKPT --task rte --output_dir OUT`` writes

- ``config.json``: an ``MtDnnConfig`` with the task's labels (``id2label``,
  ``label2id``, ``num_labels``), ``problem_type`` (``regression`` for a
  regression task, else ``single_label_classification``), the encoder's own
  config (``encoder_config``), the pooling and head dropout, the task's YAML
  facts (``task_def``), and ``auto_map`` pointing at the modeling file;
- ``model.safetensors``: the encoder and that task's head, nothing else;
- ``modeling_mtdnn.py``: the model's code (``mt_dnn/hf_export/``), which
  imports torch and transformers only;
- the tokenizer's files: the checkpoint's own, or ``--tokenizer``'s.

so ``AutoModelForSequenceClassification.from_pretrained(OUT,
trust_remote_code=True)`` and ``pipeline("text-classification", model=OUT,
trust_remote_code=True)`` load it without this toolkit and without a network.
Before the folder is put in place, the exported model's logits on one
tokenized example are compared with the checkpoint's. The folder is written
under a temporary name and renamed into place, so ``OUT`` is never half written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data_utils.atomic import fsync_dir, replace_dir
from data_utils.cli import (
    OUTPUT_DIR_ALIASES,
    ConfigError,
    add_dataclass_args,
    option,
    parse_dataclass_args,
)
from data_utils.task_def import TaskDef, TaskType
from mt_dnn.checkpoint import CONFIG, load_checkpoint, load_checkpoint_tokenizer
from mt_dnn.model import MultiTaskModel, TaskHead

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MODELING_SOURCE = Path(__file__).resolve().parent / "hf_export" / "modeling_mtdnn.py"
MODELING_FILE = MODELING_SOURCE.name
AUTO_MAP = {
    "AutoConfig": "modeling_mtdnn.MtDnnConfig",
    "AutoModelForSequenceClassification": "modeling_mtdnn.MtDnnForSequenceClassification",
}
REGRESSION_LABEL = "score"  # the one "label" of a regression head, as the pipeline shows it
# Problem type of the exported head per task type: what HF's loss and pipeline branch on.
PROBLEM_TYPES = {
    TaskType.CLASSIFICATION: "single_label_classification",
    TaskType.REGRESSION: "regression",
}
CHECK_TOLERANCE = 1e-5


class ExportError(ValueError):
    """A user error in an export (no such head, no tokenizer, output folder taken)."""


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str = option(
        "Required. Checkpoint folder written by train.py (OUTPUT_DIR/best, or a "
        "OUTPUT_DIR/checkpoints/step-N).",
        default="",
    )
    task: str = option(
        "Required. The task whose head is exported, e.g. rte: one of the checkpoint's own "
        "heads (a zero-shot or predict_with task borrows another head and cannot be exported).",
        default="",
    )
    output_dir: str = option(
        "Required. Folder to write the HuggingFace model into; it must not exist or be "
        "empty, unless --overwrite.",
        "",
        aliases=OUTPUT_DIR_ALIASES,
    )
    tokenizer: str = option(
        "Tokenizer to ship with the model: a local folder or hub name (the --init_checkpoint "
        "the run was trained from). Default: the tokenizer saved in the checkpoint.",
        default="",
    )
    overwrite: bool = option(
        "Replace output_dir when it holds an earlier export (a folder with modeling_mtdnn.py); "
        "any other non-empty folder is still refused.",
        default=False,
    )

    def __post_init__(self) -> None:
        for key in ("checkpoint", "task", "output_dir"):
            if not getattr(self, key):
                raise ValueError(f"{key} is required (--{key})")


def export_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export one task of a trained checkpoint as a HuggingFace model folder "
        "that AutoModelForSequenceClassification and pipeline('text-classification') load "
        "with trust_remote_code=True, offline and without this toolkit.",
        allow_abbrev=False,
    )
    add_dataclass_args(parser, ExportConfig, "export")
    return parser


def parse_export_args(argv: Sequence[str] | None = None) -> ExportConfig:
    return parse_dataclass_args(export_parser(), ExportConfig, argv)


def main(cfg: ExportConfig) -> Path:
    """Write the export folder ``cfg.output_dir``; returns its path."""
    out = Path(os.path.abspath(cfg.output_dir))
    _check_output_dir(out, cfg.overwrite)
    ckpt = Path(cfg.checkpoint)
    model, heads, meta = load_checkpoint(ckpt)
    if cfg.task not in heads:
        raise ExportError(
            f"--task {cfg.task}: {ckpt} has no head of its own for it; only a task with its "
            "own head can be exported (a zero-shot or predict_with task is scored by another "
            f"task's head and label mapping). Tasks with heads: {', '.join(sorted(heads))}"
        )
    task = heads[cfg.task]
    tokenizer = _tokenizer(cfg, ckpt)
    vocab = int(meta["encoder_config"].get("vocab_size") or 0)
    # More tokens than embeddings would index past them; far fewer is another model's
    # tokenizer, or the special-tokens-only one transformers builds for a bare model folder.
    if vocab and not vocab // 2 <= len(tokenizer) <= vocab:
        raise ExportError(
            f"the tokenizer has {len(tokenizer)} tokens but the encoder's vocabulary has "
            f"{vocab}: it is not the tokenizer this model was trained with"
        )
    hf_model = to_hf_model(model, task, _head_dropout(ckpt, task))
    diff = check_equivalence(model, hf_model, task.name, tokenizer)
    print(f"checked: the exported model's logits match the checkpoint's (max abs diff {diff:.2e})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        write_folder(hf_model, tokenizer, tmp)
        replace_dir(tmp, out, tmp.with_name(tmp.name + "-old"))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    kind = "regression" if task.task_type is TaskType.REGRESSION else f"{task.n_class} labels"
    print(f"exported task '{task.name}' ({kind}) of {ckpt} -> {out}")
    return out


def hf_config(model: MultiTaskModel, task: TaskDef, dropout: float) -> Any:
    """The exported model's ``MtDnnConfig`` (labels, problem type, encoder, pooling)."""
    from mt_dnn.hf_export.modeling_mtdnn import MtDnnConfig

    labels = task.labels if task.labels is not None else (REGRESSION_LABEL,)
    config = MtDnnConfig(
        encoder_config=model.encoder.config.to_dict(),
        pooling=model.pooling,
        classifier_dropout=dropout,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=PROBLEM_TYPES[task.task_type],
        pad_token_id=model.pad_token_id,
        task_name=task.name,
        task_def=task.to_dict(),
    )
    config.auto_map = dict(AUTO_MAP)
    config.architectures = ["MtDnnForSequenceClassification"]
    return config


def to_hf_model(model: MultiTaskModel, task: TaskDef, dropout: float) -> Any:
    """``MtDnnForSequenceClassification`` with the encoder and ``task``'s head, in eval mode."""
    from mt_dnn.hf_export.modeling_mtdnn import MtDnnForSequenceClassification

    state = {
        name: tensor for name, tensor in model.state_dict().items() if name.startswith("encoder.")
    }
    head = model.heads[task.name]
    assert isinstance(head, TaskHead)
    state["classifier.weight"] = head.out.weight
    state["classifier.bias"] = head.out.bias
    hf_model = MtDnnForSequenceClassification(hf_config(model, task, dropout))
    hf_model.load_state_dict(state, strict=True)  # every weight accounted for, both ways
    return hf_model.eval()


@torch.no_grad()
def check_equivalence(
    model: MultiTaskModel, hf_model: Any, task: str, tokenizer: PreTrainedTokenizerBase
) -> float:
    """Max abs difference of the two models' logits on one sentence pair; ExportError above
    ``CHECK_TOLERANCE``. Both in eval mode, so dropout is off."""
    was_training = model.training
    model.eval()
    encoded = tokenizer(
        "The exported model must agree with the checkpoint.",
        "It is checked on this pair before it is written.",
        return_tensors="pt",
    )
    batch = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
    if "token_type_ids" in encoded:
        batch["token_type_ids"] = encoded["token_type_ids"]
    expected = model.forward_embeds(model.embed(batch), batch, task)
    expected = expected.float().reshape(len(batch["input_ids"]), -1)
    got = hf_model(**batch).logits.float()
    model.train(was_training)
    diff = float((expected - got).abs().max())
    if not diff <= CHECK_TOLERANCE:
        raise ExportError(
            f"the exported model's logits differ from the checkpoint's by {diff:.3g} "
            f"(tolerance {CHECK_TOLERANCE}); nothing was written"
        )
    return diff


def write_folder(hf_model: Any, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Weights and config, the modeling file and the tokenizer, made durable, into ``folder``."""
    hf_model.save_pretrained(str(folder))
    shutil.copyfile(MODELING_SOURCE, folder / MODELING_FILE)
    taken = set(os.listdir(folder))
    # Saved aside first: a tokenizer file must not replace the model's config.json.
    with tempfile.TemporaryDirectory(prefix=".tokenizer-", dir=folder) as scratch:
        tokenizer.save_pretrained(scratch)
        for path in sorted(Path(scratch).iterdir()):
            if path.name in taken:
                raise ExportError(
                    f"the tokenizer's save_pretrained writes {path.name}, which the model "
                    "folder already has"
                )
            os.replace(path, folder / path.name)
    # mkdtemp makes the folder owner-only; an export is meant to be shared.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for child in folder.rglob("*"):
        os.chmod(child, (0o777 if child.is_dir() else 0o666) & ~umask)
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def _check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty folder or, with ``overwrite``, an earlier export."""
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents or not out.name:
        raise ExportError(
            f"--output_dir {out}: is the current folder or above it; the export replaces its "
            "folder whole, so give a subfolder"
        )
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--output_dir {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not (out / MODELING_FILE).is_file():
        raise ExportError(
            f"--output_dir {out}: exists and is not empty, and is not an earlier export (no "
            f"{MODELING_FILE}); give a new folder"
        )
    if not overwrite:
        raise ExportError(
            f"--output_dir {out}: holds an earlier export; pass --overwrite true to replace it"
        )


def _tokenizer(cfg: ExportConfig, ckpt: Path) -> PreTrainedTokenizerBase:
    if cfg.tokenizer:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(cfg.tokenizer)
        except (OSError, ValueError) as exc:
            text = " ".join(str(exc).split())[:300]
            raise ExportError(f"--tokenizer {cfg.tokenizer}: cannot be loaded: {text}") from None
    tokenizer = load_checkpoint_tokenizer(ckpt)
    if tokenizer is None:
        hint = ""
        init = _training_config(ckpt).get("init_checkpoint")
        if init:
            hint = f" (this run was trained from {init})"
        raise ExportError(
            f"{ckpt}: has no tokenizer (saved before checkpoints carried one); pass --tokenizer "
            f"with the model folder or hub name it was trained from{hint}"
        )
    return tokenizer


def _training_config(ckpt: Path) -> dict[str, Any]:
    try:
        config = json.loads((ckpt / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _head_dropout(ckpt: Path, task: TaskDef) -> float:
    """The dropout the head was trained with: --dropout when it was set, else the task's."""
    dropout = _training_config(ckpt).get("dropout")
    if isinstance(dropout, int | float) and not isinstance(dropout, bool) and dropout >= 0:
        return float(dropout)
    return task.dropout


def run_export(argv: Sequence[str] | None = None) -> int:
    """export.py, ``python -m mt_dnn.export`` and ``mtdnn-export`` (argv None: sys.argv)."""
    from data_utils.task_def import TaskDefError
    from mt_dnn.checkpoint import CheckpointError

    try:
        main(parse_export_args(argv))
    except (ConfigError, CheckpointError, TaskDefError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_export())
