"""train.py's command line (also ``python -m mt_dnn.train`` and, installed, ``mtdnn-train``).

The flags are generated from TrainConfig and AdvConfig by ``data_utils.cli``, as
every script's are; the scripts at the repository root stay thin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mt_dnn.adversarial.config import AdvConfig, preset_values
from mt_dnn.config import ConfigError, TrainConfig, add_dataclass_args, build, read_yaml


def train_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Multi-task fine-tuning of a HuggingFace encoder with optional adversarial "
        "regularization (none, smart, tat, freelb, r3f). Every option below is also a key "
        "of the --config YAML; flags given on the command line override the YAML.",
        allow_abbrev=False,  # a misspelled flag must be an error, not a prefix match
    )
    parser.add_argument("--config", help="YAML file of options (keys = flag names).")
    parser.add_argument(
        "--adv_train",
        action="store_true",
        help="mt-dnn's switch for adversarial training: the same as --adv smart.",
    )
    add_dataclass_args(parser, TrainConfig, "training")
    add_dataclass_args(parser, AdvConfig, "adversarial regularization")
    return parser


def parse_train_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, AdvConfig]:
    args = vars(train_parser().parse_args(argv))
    config_path = args.pop("config", None)
    adv_train = args.pop("adv_train", False)
    yaml_values = read_yaml(config_path) if config_path else {}
    yaml_adv_train = yaml_values.pop("adv_train", False)
    if not isinstance(yaml_adv_train, bool):  # "yes" or 1 would otherwise read as true
        raise ConfigError(f"{config_path}: adv_train must be true or false, got {yaml_adv_train!r}")
    if yaml_adv_train or adv_train:
        if args.get("adv", yaml_values.get("adv", "smart")) not in ("smart", "none"):
            raise ConfigError("--adv_train means --adv smart; do not combine it with another --adv")
        args["adv"] = "smart"
    preset = args.get("adv_preset", yaml_values.get("adv_preset"))
    if preset is not None:
        # The preset sits below the YAML and the flags: an explicit value still wins.
        try:
            yaml_values = {**preset_values(str(preset)), **yaml_values}
        except ValueError as exc:
            raise ConfigError(f"{config_path or 'flags'}: {exc}") from None
    cfg, adv_cfg = build([TrainConfig, AdvConfig], yaml_values, args, source=config_path or "flags")
    return cfg, adv_cfg


def run_train(argv: Sequence[str] | None = None) -> int:
    """train.py, ``python -m mt_dnn.train`` and ``mtdnn-train`` (argv None: sys.argv)."""
    from data_utils.errors import DataError
    from data_utils.task_def import TaskDefError
    from mt_dnn.trainer import TrainingError, train

    try:
        cfg, adv_cfg = parse_train_args(argv)
        train(cfg, adv_cfg)
    except (ConfigError, DataError, TaskDefError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
