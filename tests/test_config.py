"""Config: defaults < YAML < flags; unknown keys and bad values are errors."""

import json
import re
from pathlib import Path

import pytest

from mt_dnn.adversarial.config import AdvConfig
from mt_dnn.cli import parse_train_args, run_train, train_parser
from mt_dnn.config import DEFAULT_TASK_DEFS, ConfigError, TrainConfig, check_paths, to_jsonable

REPO_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"])
def test_adv_train_in_yaml_must_be_a_boolean(tmp_path, value):
    path = tmp_path / "c.yml"
    path.write_text(f"adv_train: {value}\n")
    with pytest.raises(ConfigError, match="adv_train must be true or false"):
        parse_train_args(["--config", str(path)])
    path.write_text("adv_train: true\n")
    assert parse_train_args(["--config", str(path)])[1].adv == "smart"


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


# --- every bad value is one line: `error: <where>: <what>`, exit 2, nothing written ---------

# (id, flags, YAML text or None, the exact message after "error: "; {config} = the YAML's path)
BAD_VALUES = [
    # flags: text that is not the field's type, then values out of range
    ("flag_int_given_float", ["--batch_size", "8.9"], None, "flags: batch_size must be an integer, got '8.9'"),
    ("flag_int_given_word", ["--epochs", "five"], None, "flags: epochs must be an integer, got 'five'"),
    ("flag_float_given_word", ["--learning_rate", "fast"], None, "flags: learning_rate must be a number, got 'fast'"),
    ("flag_bool_given_word", ["--lookahead", "maybe"], None, "flags: lookahead must be true or false, got 'maybe'"),
    ("lr_nan", ["--learning_rate", "nan"], None, "flags: learning_rate must be a finite number, got nan"),
    ("lr_inf", ["--learning_rate", "inf"], None, "flags: learning_rate must be a finite number, got inf"),
    ("lr_zero", ["--learning_rate", "0"], None, "flags: learning_rate must be > 0, got 0.0"),
    ("lr_negative", ["--learning_rate=-1e-5"], None, "flags: learning_rate must be > 0, got -1e-05"),
    ("head_lr_negative", ["--head_learning_rate=-0.001"], None, "flags: head_learning_rate must be >= 0, got -0.001"),
    ("dropout_2", ["--dropout", "2"], None, "flags: dropout must be below 1 (a probability in [0, 1), or negative to use each task's YAML dropout), got 2.0"),
    ("dropout_nan", ["--dropout", "nan"], None, "flags: dropout must be a finite number, got nan"),
    ("temperature_0", ["--temperature", "0"], None, "flags: temperature must be > 0, got 0.0"),
    ("weight_decay_negative", ["--weight_decay=-0.01"], None, "flags: weight_decay must be >= 0, got -0.01"),
    ("adam_eps_0", ["--adam_eps", "0"], None, "flags: adam_eps must be > 0, got 0.0"),
    ("clipping_negative", ["--global_grad_clipping=-1"], None, "flags: global_grad_clipping must be >= 0, got -1.0"),
    ("clipping_inf", ["--global_grad_clipping", "inf"], None, "flags: global_grad_clipping must be a finite number, got inf"),
    ("ratio_negative", ["--ratio=-0.5"], None, "flags: ratio must be >= 0, got -0.5"),
    ("warmup_nan", ["--warmup", "nan"], None, "flags: warmup must be a finite number, got nan"),
    ("layer_decay_inf", ["--layer_decay", "inf"], None, "flags: layer_decay must be a finite number, got inf"),
    ("max_train_samples_negative", ["--max_train_samples=-5"], None, "flags: max_train_samples must be >= 0, got -5"),
    ("log_every_0", ["--log_every", "0"], None, "flags: log_every must be at least 1, got 0"),
    ("seed_negative", ["--seed=-1"], None, "flags: seed must be in [0, 2**32) (numpy's range), got -1"),
    ("output_dir_empty", ["--output_dir", ""], None, "flags: output_dir must not be empty (it would write into the current folder)"),
    ("adv_alpha_nan", ["--adv_alpha", "nan"], None, "flags: adv_alpha must be a finite number, got nan"),
    ("adv_epsilon_inf", ["--adv_epsilon", "inf"], None, "flags: adv_epsilon must be a finite number, got inf"),
    ("tat_momentum_nan", ["--tat_momentum", "nan"], None, "flags: tat_momentum must be a finite number, got nan"),
    ("adv_k_given_float", ["--adv_k", "1.5"], None, "flags: adv_k must be an integer, got '1.5'"),
    # a flag's error names the flags even when a --config is given
    ("flag_over_yaml", ["--temperature", "0"], "epochs: 2\n", "flags: temperature must be > 0, got 0.0"),
    # YAML values: the YAML type must be the field's (an integer may stand for a float)
    ("yaml_int_given_float", [], "batch_size: 8.9\n", "{config}: batch_size must be an integer, got the float 8.9"),
    ("yaml_int_given_whole_float", [], "epochs: 3.0\n", "{config}: epochs must be an integer, got the float 3.0"),
    ("yaml_int_given_bool", [], "epochs: true\n", "{config}: epochs must be an integer, got the boolean true"),
    ("yaml_int_given_null", [], "epochs:\n", "{config}: epochs must be an integer, got null"),
    ("yaml_float_given_bool", [], "learning_rate: true\n", "{config}: learning_rate must be a number, got the boolean true"),
    ("yaml_float_given_string", [], "learning_rate: fast\n", "{config}: learning_rate must be a number, got the string 'fast'"),
    ("yaml_float_given_quoted", [], "learning_rate: '1e-4'\n", "{config}: learning_rate must be a number, got the string '1e-4'"),
    ("yaml_float_given_list", [], "learning_rate: [1.0e-4, 2.0e-5]\n", "{config}: learning_rate must be a number, got the list [0.0001, 2e-05]"),
    ("yaml_bool_given_int", [], "lookahead: 1\n", "{config}: lookahead must be true or false, got the integer 1"),
    ("yaml_bool_given_string", [], "tensorboard: 'no'\n", "{config}: tensorboard must be true or false, got the string 'no'"),
    ("yaml_str_given_int", [], "output_dir: 5\n", "{config}: output_dir must be a string, got the integer 5"),
    ("yaml_list_given_mapping", [], "train_datasets: {rte: 1}\n", "{config}: train_datasets must be a list of names or one comma-separated string, got the mapping {'rte': 1}"),
    ("yaml_list_of_non_names", [], "train_datasets: [rte, 1]\n", "{config}: train_datasets must be a list of names or one comma-separated string, got the list ['rte', 1]"),
    ("yaml_optional_given_int", [], "tat_oracle: 3\n", "{config}: tat_oracle must be a string or null, got the integer 3"),
    ("yaml_adv_int_given_float", [], "adv_k: 1.5\n", "{config}: adv_k must be an integer, got the float 1.5"),
    ("yaml_nan", [], "dropout: .nan\n", "{config}: dropout must be a finite number, got nan"),
    ("yaml_adv_inf", [], "adv_epsilon: .inf\n", "{config}: adv_epsilon must be a finite number, got inf"),
    ("yaml_int_then_range", [], "temperature: 0\n", "{config}: temperature must be > 0, got 0.0"),
    # the --config file itself
    ("config_binary", [], b"epochs: 2\n\x00\x01\x02\xff", "{config}:2: binary file (NUL byte), expected a YAML text file"),
    ("config_not_utf8", [], "epochs: 2\noutput_dir: caf\xe9\n".encode("latin-1"), "{config}:2: not UTF-8 text (byte 0xe9), expected a YAML text file"),
    ("config_not_yaml", [], "epochs: [1\n", "{config}:2: not valid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'"),
    ("config_bad_indent", [], "epochs: 2\n  seed: 3\n", "{config}:2: not valid YAML: mapping values are not allowed here"),
    ("config_control_char", [], "epochs: 2\x01\n", re.compile(r"{config}: not valid YAML: unacceptable character #x0001: [^\n]+")),
    ("config_not_mapping", [], "- epochs\n- 2\n", "{config}: expected a mapping of option: value"),
    ("config_key_not_a_name", [], "1: 2\n", re.compile(r"{config}: unknown key\(s\) \[1\]; valid keys are: [^\n]+")),
]  # fmt: skip


@pytest.mark.parametrize(
    "flags, yaml_text, expected", [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_bad_value_is_one_line_exit_2(flags, yaml_text, expected, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--output_dir", str(out), *flags]
    config = tmp_path / "c.yml"
    if yaml_text is not None:
        if isinstance(yaml_text, bytes):
            config.write_bytes(yaml_text)
        else:
            config.write_text(yaml_text, encoding="utf-8")
        argv = ["--config", str(config), *argv]
    assert run_train(argv) == 2
    err = capsys.readouterr().err
    if isinstance(expected, re.Pattern):
        pattern = expected.pattern.replace("{config}", re.escape(str(config)))
        assert re.fullmatch(f"error: {pattern}\n", err), err
    else:
        assert err == f"error: {expected.replace('{config}', str(config))}\n"
    assert not out.exists()


def test_config_that_is_a_folder_or_missing(tmp_path, capsys):
    assert run_train(["--config", str(tmp_path), "--output_dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: is a folder, not a YAML file\n"
    missing = tmp_path / "missing.yml"
    assert run_train(["--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: config file not found\n"
    assert not (tmp_path / "out").exists()


def test_yaml_values_of_the_right_type_are_read_as_written(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(
        "learning_rate: 1e-4\n"  # YAML 1.2 float; PyYAML alone reads the string '1e-4'
        "head_learning_rate: 0\n"  # an integer may stand for a float
        "dropout: -1\n"
        "train_datasets: rte, mrpc\n"
        "test_datasets: [rte_dev]\n"
        "tat_oracle: null\n"
        "epochs: 3\n"
        "lookahead: false\n"
    )
    cfg, adv = parse_train_args(["--config", str(path)])
    assert type(cfg.learning_rate) is float and cfg.learning_rate == 1e-4
    assert type(cfg.head_learning_rate) is float and cfg.head_learning_rate == 0.0
    assert cfg.dropout == -1.0
    assert (cfg.train_datasets, cfg.test_datasets) == (("rte", "mrpc"), ("rte_dev",))
    assert adv.tat_oracle is None and cfg.epochs == 3 and cfg.lookahead is False
    flags, _ = parse_train_args(["--learning_rate", "2e-5", "--seed", "0", "--dropout", "0"])
    assert (flags.learning_rate, flags.seed, flags.dropout) == (2e-5, 0, 0.0)


# --- paths: check_paths(cfg), which the trainer calls before any work -------------------------


def trained_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    (folder / "checkpoint.json").write_text(json.dumps({"encoder_config": {}, "tasks": {}}))
    return folder


def test_check_paths_refuses_an_output_dir_that_is_a_file(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(ConfigError) as info:
        check_paths(TrainConfig(output_dir=str(taken)))
    assert str(info.value) == f"output_dir {taken}: it is a file, not a folder"
    with pytest.raises(ConfigError) as info:
        check_paths(TrainConfig(output_dir=str(taken / "run")))
    assert str(info.value) == f"output_dir {taken / 'run'}: {taken} is a file, not a folder"
    assert taken.read_text() == "x"
    check_paths(TrainConfig(output_dir=str(tmp_path / "new" / "run")))  # to be created: fine
    assert not (tmp_path / "new").exists()


def test_check_paths_refuses_a_trained_checkpoint_as_init_checkpoint(tmp_path):
    ckpt = trained_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ConfigError) as info:
        check_paths(TrainConfig(init_checkpoint=str(ckpt), output_dir=str(tmp_path / "out")))
    assert str(info.value) == (
        f"init_checkpoint {ckpt}: is a checkpoint trained by this toolkit "
        f"({ckpt / 'checkpoint.json'} has encoder_config); init_checkpoint must be a pretrained "
        "encoder (a HuggingFace hub name or model folder); to predict with or evaluate a trained "
        "checkpoint use predict.py"
    )
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(
        ConfigError, match="is a file; expected a HuggingFace hub name or model folder"
    ):
        check_paths(TrainConfig(init_checkpoint=str(weights)))
    # A pretrained encoder folder, a checkpoint.json of someone else's, a hub name: fine.
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    check_paths(TrainConfig(init_checkpoint=str(encoder)))
    (encoder / "checkpoint.json").write_text('"encoder_config"')
    check_paths(TrainConfig(init_checkpoint=str(encoder)))
    check_paths(TrainConfig(init_checkpoint="sentence-transformers/all-MiniLM-L6-v2"))


PATH_CASES = ["output_dir_is_a_file", "init_checkpoint_is_trained"]


@pytest.mark.parametrize("case", PATH_CASES)
def test_bad_path_is_one_line_exit_2(case, tmp_path, capsys):
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    out = tmp_path / "out"
    if case == "output_dir_is_a_file":
        out.write_text("x")
        expected = f"output_dir {out}: it is a file, not a folder"
    else:
        encoder = trained_checkpoint(tmp_path / "ckpt")
        expected = f"init_checkpoint {encoder}: is a checkpoint trained by this toolkit"
    argv = ["--train_datasets", "rte", "--task_def", DEFAULT_TASK_DEFS[0]]
    argv += ["--data_dir", str(tmp_path / "no_data"), "--init_checkpoint", str(encoder)]
    assert run_train([*argv, "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1, err
    if case == "output_dir_is_a_file":
        assert out.read_text() == "x"
    else:
        assert not out.exists()
