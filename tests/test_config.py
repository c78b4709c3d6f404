"""Config: defaults < YAML < flags; unknown keys and bad values are errors."""

from pathlib import Path

import pytest

from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.cli import parse_train_args, train_parser
from mt_dnn.config import ConfigError, TrainConfig, to_jsonable


def test_defaults():
    cfg, adv = parse_train_args(["--train_datasets", "rte"])
    assert cfg.train_datasets == ("rte",)
    assert cfg == TrainConfig(train_datasets=("rte",))
    assert adv == AdvConfig()


def test_yaml_then_flags_override(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("train_datasets: [rte, mrpc]\nlearning_rate: 1.0e-4\nepochs: 7\nadv: r3f\n")
    cfg, adv = parse_train_args(["--config", str(path), "--epochs", "2", "--tensorboard", "false"])
    assert cfg.train_datasets == ("rte", "mrpc")
    assert cfg.learning_rate == 1e-4
    assert cfg.epochs == 2
    assert cfg.tensorboard is False
    assert adv.adv == "r3f"


def test_comma_separated_lists():
    cfg, _ = parse_train_args(["--train_datasets", "rte,mrpc,stsb", "--test_datasets", "rte_dev"])
    assert cfg.train_datasets == ("rte", "mrpc", "stsb")
    assert cfg.test_datasets == ("rte_dev",)


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("learning_rat: 1.0e-4\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rat'\].*learning_rate"):
        parse_train_args(["--config", str(path)])


def test_unknown_flag_is_rejected():
    with pytest.raises(SystemExit):
        parse_train_args(["--learning_rat", "1e-4"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--optimizer", "sgd"], "optimizer"),
        (["--mix", "random"], "mix"),
        (["--warmup", "1.5"], "warmup"),
        (["--batch_size", "0"], "batch_size"),
        (["--lookahead", "true", "--lookahead_k", "0"], "lookahead_k must be at least 1"),
        (["--lookahead", "true", "--lookahead_alpha", "0"], r"lookahead_alpha must be in \(0, 1\)"),
        (["--lookahead", "true", "--lookahead_alpha", "1"], "lookahead_alpha"),
        (["--lookahead_k", "10"], "only with lookahead true"),
        (["--lookahead_alpha", "0.8"], "only with lookahead true"),
    ],
)
def test_bad_values_are_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        parse_train_args(flags)


def test_adv_train_is_smart():
    _, adv = parse_train_args(["--adv_train"])
    assert adv.adv == "smart"
    with pytest.raises(ConfigError, match="adv_train"):
        parse_train_args(["--adv_train", "--adv", "tat"])


def test_every_field_has_help_and_appears_in_help_text():
    text = train_parser().format_help()
    for cls in (TrainConfig, AdvConfig):
        import dataclasses

        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{f.name} has no help"
            assert f"--{f.name}" in text


def test_resolved_config_is_json_and_round_trips(tmp_path):
    import json

    import yaml

    cfg, adv = parse_train_args(["--train_datasets", "rte,mrpc", "--adv", "tat"])
    data = to_jsonable(cfg, adv)
    json.dumps(data)
    path = tmp_path / "resolved.yml"
    path.write_text(yaml.safe_dump(data))
    assert parse_train_args(["--config", str(path)]) == (cfg, adv)


def test_paper_recipe_config_sets_the_tat_papers_optimisation():
    recipe = Path(__file__).resolve().parents[1] / "experiments/tat_study/paper_recipe.yml"
    cfg, _ = parse_train_args(["--config", str(recipe), "--train_datasets", "rte"])
    assert (cfg.optimizer, cfg.lookahead) == ("adamax", True)
    assert (cfg.learning_rate, cfg.epochs) == (5e-5, 6)
    assert (cfg.dropout, cfg.weight_decay) == (0.1, 0.01)
    assert (cfg.layer_decay, cfg.head_learning_rate) == (1.0, 0.0)  # one rate everywhere
    other, _ = parse_train_args(["--config", str(recipe), "--learning_rate", "1e-4"])
    assert other.learning_rate == 1e-4
