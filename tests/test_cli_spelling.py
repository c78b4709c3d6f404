"""One spelling per concept across every script's command line.

Every script's flags are generated from its config dataclass (data_utils.cli), so a
flag is its field's name everywhere; lists are comma-separated (space-separated still
accepted), booleans are true/false (1/0, yes/no too), and the older spellings users
know (mt-dnn's --out_dir, --root_dir, --task...) are hidden aliases that give the same
config as the canonical spelling.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Spellings that must never be a visible flag again: each is an alias of the canonical one
# (predict.py's --task, mt-dnn's, is an alias of --datasets; export.py's --task is its own).
OLD_SPELLINGS = {"--out_dir": "output_dir", "--out": "output_dir", "--root_dir": "data_dir"}
OLD_SPELLINGS |= {"--glue_dir": "data_dir", "--hf_dir": "data_dir"}
# Concept -> the scripts that have it: each must spell it --{concept}, with one syntax.
SHARED = {
    "output_dir": ["train", "predict", "export", "prepro", "glue", "nli", "hf", "download"],
    "task_def": ["train", "predict", "prepro", "glue", "nli", "hf"],
    "data_dir": ["train", "predict", "prepro", "glue", "nli", "hf"],
    "progress": ["train", "predict", "prepro", "download"],
    "device": ["train", "predict"],
    "amp": ["train", "predict"],
    "max_seq_len": ["train", "predict", "prepro"],
    "batch_size_eval": ["train", "predict"],
    "overwrite": ["prepro", "export"],
    "tasks": ["prepro", "glue", "hf", "download"],
}
# The least each script needs to parse; the list values are valid for every script.
REQUIRED = {
    "train": [],
    "predict": ["--checkpoint", "ckpt", "--datasets", "rte_dev"],
    "export": ["--checkpoint", "ckpt", "--task", "rte", "--output_dir", "out"],
    "prepro": ["--model", "bert-base-uncased"],
    "glue": ["--data_dir", "glue"],
    "nli": [],
    "hf": ["--data_dir", "hf"],
    "download": [],
}
LIST_VALUES = ("rte", "mrpc")


@functools.cache
def scripts() -> dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[list], Any]]]:
    """name -> (parser factory, argv -> the script's config)."""
    from data_utils.convert_glue import glue_prepro_parser, parse_glue_prepro_args
    from data_utils.convert_nli import nli_prepro_parser, parse_nli_prepro_args
    from data_utils.download import download_parser, parse_download_args
    from data_utils.parquet_source import hf_prepro_parser, parse_hf_prepro_args
    from data_utils.prepro import parse_prepro_args, prepro_parser
    from mt_dnn.cli import parse_train_args, train_parser
    from mt_dnn.export import export_parser, parse_export_args
    from mt_dnn.predict import parse_predict_args, predict_parser

    return {
        "train": (train_parser, parse_train_args),
        "predict": (predict_parser, parse_predict_args),
        "export": (export_parser, parse_export_args),
        "prepro": (prepro_parser, parse_prepro_args),
        "glue": (glue_prepro_parser, parse_glue_prepro_args),
        "nli": (nli_prepro_parser, parse_nli_prepro_args),
        "hf": (hf_prepro_parser, parse_hf_prepro_args),
        "download": (download_parser, parse_download_args),
    }


def parse(name: str, argv: list[str]) -> Any:
    return scripts()[name][1]([*REQUIRED[name], *argv])


def flags(name: str) -> tuple[list[argparse.Action], list[argparse.Action]]:
    """(visible, hidden alias) actions of a script, without -h."""
    parser = scripts()[name][0]()
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    return (
        [a for a in actions if a.help != argparse.SUPPRESS],
        [a for a in actions if a.help == argparse.SUPPRESS],
    )


def value(config: Any, dest: str) -> Any:
    """A field of a script's config (train.py's is a pair: TrainConfig, AdvConfig)."""
    for part in config if isinstance(config, tuple) else (config,):
        if hasattr(part, dest):
            return getattr(part, dest)
    raise AttributeError(dest)


def kind(action: argparse.Action) -> str:
    if action.nargs == "+":
        return "list"
    if action.nargs == "?" and action.const == "true":
        return "bool"
    return "value"


ALL = sorted(REQUIRED)
# train.py's two flags that are no config field: the YAML file and mt-dnn's --adv_train.
NOT_FIELDS = {"--config", "--adv_train"}


@pytest.mark.parametrize("name", ALL)
def test_every_flag_is_its_fields_name_and_has_help(name):
    visible, hidden = flags(name)
    assert visible
    for action in visible:
        if action.option_strings[0] in NOT_FIELDS:
            continue
        assert action.option_strings == [f"--{action.dest}"], action.option_strings
        assert action.help and len(action.help.split("(default")[0].strip()) > 10, action.dest
        assert action.option_strings[0] not in OLD_SPELLINGS
    dests = {a.dest for a in visible}
    for alias in hidden:
        assert alias.dest in dests, f"{alias.option_strings} aliases no flag of {name}"
    text = scripts()[name][0]().format_help()
    for action in visible:
        assert action.option_strings[0] in text
    for alias in hidden:  # listed once, in the epilog
        assert all(option in text.split("Older spellings")[-1] for option in alias.option_strings)


@pytest.mark.parametrize("concept", sorted(SHARED))
def test_shared_concepts_are_spelled_and_parsed_the_same_everywhere(concept):
    kinds = {}
    for name in ALL:
        visible, _ = flags(name)
        found = [a for a in visible if a.dest == concept]
        if name in SHARED[concept]:
            assert found and found[0].option_strings == [f"--{concept}"], (name, concept)
            kinds[name] = kind(found[0])
        else:
            assert not found, f"{name} has --{concept}: add it to SHARED[{concept!r}]"
    assert len(set(kinds.values())) == 1, kinds


@pytest.mark.parametrize("name", ALL)
def test_list_flags_take_commas_and_spaces_alike(name):
    visible, _ = flags(name)
    lists = [a for a in visible if kind(a) == "list"]
    for action in lists:
        flag = action.option_strings[0]
        comma = parse(name, [flag, ",".join(LIST_VALUES)])
        assert comma == parse(name, [flag, *LIST_VALUES]), flag
        assert comma == parse(name, [flag, LIST_VALUES[0], f"{LIST_VALUES[1]},"]), flag
        assert value(comma, action.dest) == LIST_VALUES


@pytest.mark.parametrize("name", ALL)
def test_booleans_take_true_false_and_the_other_words(name):
    visible, _ = flags(name)
    for action in (a for a in visible if kind(a) == "bool"):
        flag = action.option_strings[0]
        config = [parse(name, [flag, word]) for word in ("true", "1", "yes", "on")]
        config.append(parse(name, [flag]))  # a bare flag means true
        off = [parse(name, [flag, word]) for word in ("false", "0", "no", "off", "FALSE")]
        assert all(c == config[0] for c in config) and all(c == off[0] for c in off), flag
        assert value(config[0], action.dest) is True
        assert config[0] != off[0]


@pytest.mark.parametrize("name", ALL)
def test_every_alias_gives_the_canonical_config(name):
    visible, hidden = flags(name)
    canonical = {a.dest: a for a in visible}
    for alias in hidden:
        flag = canonical[alias.dest].option_strings[0]
        values = list(LIST_VALUES) if kind(alias) == "list" else ["somewhere"]
        for option in alias.option_strings:
            assert parse(name, [option, *values]) == parse(name, [flag, *values]), option


# mt-dnn's spellings, and ours before they were unified, next to the canonical command.
SPELLINGS = [
    (
        "train",
        ["--task_def", "a.yml", "b.yml", "--out_dir", "o", "--progress", "0", "--adv_train"],
        ["--task_def", "a.yml,b.yml", "--output_dir", "o", "--progress", "false", "--adv", "smart"],
    ),
    (
        "predict",
        ["--task", "rte", "--out_dir", "o", "--progress", "0", "--task_def", "a.yml", "b.yml"],
        ["--datasets", "rte", "--output_dir", "o", "--progress", "false", "--task_def", "a.yml,b.yml"],
    ),
    (
        "prepro",
        ["--root_dir", "r", "--task_def", "a.yml", "b.yml", "--tasks", "rte", "mrpc", "--overwrite"],
        ["--data_dir", "r", "--task_def", "a.yml,b.yml", "--tasks", "rte,mrpc", "--overwrite", "true"],
    ),
    (
        "glue",
        ["--glue_dir", "g", "--out_dir", "o", "--tasks", "rte", "mrpc"],
        ["--data_dir", "g", "--output_dir", "o", "--tasks", "rte,mrpc"],
    ),
    (
        "nli",
        ["--data_dir", "d", "--out_dir", "o", "--task_def", "glue", "nli"],
        ["--data_dir", "d", "--output_dir", "o", "--task_def", "glue,nli"],
    ),
    ("export", ["--out", "o", "--overwrite"], ["--output_dir", "o", "--overwrite", "yes"]),
    (
        "hf",
        ["--hf_dir", "h", "--out_dir", "o", "--tasks", "rte", "mnli", "--task_def", "glue", "nli"],
        ["--data_dir", "h", "--output_dir", "o", "--tasks", "rte,mnli", "--task_def", "glue,nli"],
    ),
    (
        # experiments/download_data.py's own argparse: --tasks one string, --progress 0/1,
        # --list a bare switch.
        "download",
        ["--tasks", "rte,mrpc", "--progress", "0", "--allow_unverified", "--list"],
        ["--tasks", "rte", "mrpc", "--progress", "false", "--allow_unverified", "true", "--list", "true"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "old", "new"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_old_spellings_still_work(name, old, new):
    assert parse(name, old) == parse(name, new)


def test_defaults_are_the_builtin_task_definitions():
    from data_utils.task_def import DEFAULT_TASK_DEFS, load_task_defs

    assert parse("train", [])[0].task_def == DEFAULT_TASK_DEFS == ("glue", "nli")
    assert parse("predict", []).task_def == parse("prepro", []).task_def == DEFAULT_TASK_DEFS
    assert parse("hf", []).task_def == DEFAULT_TASK_DEFS
    assert {"rte", "mnli", "snli", "xnli"} <= set(load_task_defs(*DEFAULT_TASK_DEFS))


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("predict", ["--batch_size_eval", "x"], "batch_size_eval must be an integer, got 'x'"),
        ("predict", ["--progress", "maybe"], "progress must be true or false, got 'maybe'"),
        ("prepro", ["--max_seq_len", "1"], "max_seq_len must be at least 2, got 1"),
        ("glue", ["--tasks", "rte,nope"], "tasks: unknown task(s) ['nope']"),
        ("hf", ["--tasks", "rte,nope"], "tasks: unknown task(s) ['nope']"),
        ("download", ["--tasks", "rte,nope"], "tasks: unknown name(s) ['nope']"),
        ("download", ["--retries", "-1"], "retries must be >= 0, got -1"),
        ("download", ["--timeout", "0"], "timeout must be > 0 seconds, got 0.0"),
        ("download", ["--list", "maybe"], "list must be true or false, got 'maybe'"),
    ],
)
def test_bad_values_are_one_line_config_errors(name, argv, message):
    from data_utils.cli import ConfigError

    with pytest.raises(ConfigError) as info:
        parse(name, argv)
    assert str(info.value) == f"flags: {message}" or str(info.value).startswith(f"flags: {message}")


@pytest.mark.parametrize("name", ["predict", "prepro", "glue", "hf"])
def test_a_missing_required_flag_is_named(name):
    from data_utils.cli import ConfigError

    required = REQUIRED[name][0]
    with pytest.raises(ConfigError, match=f"is required \\({required}\\)"):
        scripts()[name][1](REQUIRED[name][2:])


# The scripts under experiments/ that only call a package entry: the same command line.
WRAPPERS = [
    ("experiments/glue/glue_prepro.py", "glue"),
    ("experiments/nli/nli_prepro.py", "nli"),
    ("experiments/download_data.py", "download"),
    ("experiments/hf_datasets_prepro.py", "hf"),
    ("prepro_std.py", "prepro"),
]


@pytest.mark.parametrize(("script", "name"), WRAPPERS, ids=[w[1] for w in WRAPPERS])
def test_a_script_run_by_path_is_its_package_entry(script, name, monkeypatch):
    """Its --help is the package parser's, word for word: nothing of its own to drift."""
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to COLUMNS, here and in the child
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == scripts()[name][0](Path(script).name).format_help()
