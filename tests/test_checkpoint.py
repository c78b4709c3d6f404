"""Checkpoints round-trip exactly, contain no pickle, and are saved and verified as one unit."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import data_utils.atomic
import mt_dnn.checkpoint as ckpt_mod
from mt_dnn.checkpoint import (
    CheckpointError,
    UnverifiedCheckpointWarning,
    latest_complete_checkpoint,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    verify_checkpoint,
)
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTRA = {
    "optimizer.safetensors": lambda path: save_file({"exp_avg": torch.zeros(8)}, str(path)),
    "trainer_state.json": b'{"step": 3}\n',
}


def weights_of(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(model, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def temp_folders(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".ckpt-" in p.name)


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_round_trip_gives_identical_outputs(tmp_path, kind):
    model = tiny_model(kind, pooling="mean")
    save_checkpoint(
        model, tmp_path / "c", TASKS, config={"lr": 1.0}, extra={"trainer_state": {"e": 1}}
    )
    loaded, tasks, meta = load_checkpoint(tmp_path / "c")
    assert tasks == TASKS
    assert loaded.pooling == "mean"
    assert meta["trainer_state"] == {"e": 1}
    assert json.loads((tmp_path / "c" / "config.json").read_text()) == {"lr": 1.0}
    for task in (CLS_TASK, REG_TASK):
        batch = tiny_batch(task)
        assert torch.equal(model(batch, task.name), loaded(batch, task.name))


def test_no_pickle_files(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "c", TASKS)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["checkpoint.json", "manifest.json", "model.safetensors"]
    assert (tmp_path / "c" / "model.safetensors").read_bytes()[
        :8
    ] != b"\x80\x04\x95"  # pickle magic


def test_manifest_lists_every_file_with_its_size_and_sha256(tmp_path):
    folder = save_checkpoint(tiny_model(), tmp_path / "c", TASKS, config={"lr": 1.0}, files=EXTRA)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    on_disk = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert on_disk == {"model.safetensors", "checkpoint.json", "config.json", *EXTRA}
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    assert (folder / "trainer_state.json").read_bytes() == EXTRA["trainer_state.json"]
    verify_checkpoint(folder)


def test_extra_files_are_verified_and_bad_names_refused(tmp_path):
    folder = save_checkpoint(tiny_model(), tmp_path / "c", TASKS, files=EXTRA)
    before = (folder / "manifest.json").read_bytes()
    optimizer = (folder / "optimizer.safetensors").read_bytes()
    flip_byte(folder / "optimizer.safetensors")
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: sha256 mismatch"):
        verify_checkpoint(folder)
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: sha256 mismatch"):
        load_checkpoint(folder)
    (folder / "optimizer.safetensors").write_bytes(optimizer)
    verify_checkpoint(folder)
    (folder / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match=r"trainer_state\.json: missing"):
        verify_checkpoint(folder)
    (folder / "trainer_state.json").write_bytes(EXTRA["trainer_state.json"])

    for bad in ("../escape.json", "sub/x.json", ".hidden", "model.safetensors", "manifest.json"):
        with pytest.raises(CheckpointError, match="not a valid extra file name"):
            save_checkpoint(tiny_model(), folder, TASKS, files={bad: b"{}"})
    with pytest.raises(CheckpointError, match="did not create"):
        save_checkpoint(tiny_model(), folder, TASKS, files={"x.json": lambda path: None})
    with pytest.raises(CheckpointError, match="expected bytes or a callable"):
        save_checkpoint(tiny_model(), folder, TASKS, files={"x.json": "{}"})
    assert (folder / "manifest.json").read_bytes() == before  # refused saves changed nothing
    assert temp_folders(tmp_path) == []


def test_legacy_checkpoint_without_manifest_loads_with_a_warning(tmp_path):
    model = tiny_model()
    folder = save_checkpoint(model, tmp_path / "c", TASKS)
    (folder / "manifest.json").unlink()
    with pytest.warns(
        UnverifiedCheckpointWarning, match=r"no manifest\.json .* cannot be verified"
    ):
        loaded, _, _ = load_checkpoint(folder)
    assert_same_weights(loaded, weights_of(model))
    with pytest.warns(UnverifiedCheckpointWarning):
        assert read_meta(folder)["pooling"] == "cls"
    with pytest.warns(UnverifiedCheckpointWarning):
        assert latest_complete_checkpoint([folder]) == (folder, [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_checkpoint(model, folder, TASKS)  # re-saving adds the manifest
        verify_checkpoint(folder)


# Every kind of damaged checkpoint the loader recognises, with its exact message.
# docs/bad_input.md (section "Checkpoints") lists the same messages; <ckpt> is
# the checkpoint folder, <n> a number of bytes.


def _legacy(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def _drop_task(folder: Path) -> None:
    meta = json.loads((folder / "checkpoint.json").read_text())
    del meta["tasks"]["tiny_reg"]
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def _change_width(folder: Path) -> None:
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["encoder_config"]["intermediate_size"] = 48
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def _manifest_version(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))


DAMAGES = {
    "weights_flipped_byte": (
        lambda f: flip_byte(f / "model.safetensors"),
        "<ckpt>/model.safetensors: sha256 mismatch: the file changed after it was saved "
        "(damaged on disk or in a copy)",
    ),
    "weights_truncated": (
        lambda f: truncate(f / "model.safetensors"),
        "<ckpt>/model.safetensors: size mismatch: <n> bytes, manifest.json says <n> "
        "(truncated or partly copied)",
    ),
    "weights_missing": (
        lambda f: (f / "model.safetensors").unlink(),
        "<ckpt>/model.safetensors: missing; manifest.json lists it, so the checkpoint is incomplete",
    ),
    "config_missing": (
        lambda f: (f / "config.json").unlink(),
        "<ckpt>/config.json: missing; manifest.json lists it, so the checkpoint is incomplete",
    ),
    "metadata_flipped_byte": (
        lambda f: flip_byte(f / "checkpoint.json", offset=20),
        "<ckpt>/checkpoint.json: sha256 mismatch: the file changed after it was saved "
        "(damaged on disk or in a copy)",
    ),
    "extra_file_flipped_byte": (
        lambda f: flip_byte(f / "optimizer.safetensors"),
        "<ckpt>/optimizer.safetensors: sha256 mismatch: the file changed after it was saved "
        "(damaged on disk or in a copy)",
    ),
    "manifest_not_json": (
        lambda f: (f / "manifest.json").write_text("{not json"),
        "<ckpt>/manifest.json:1: not valid JSON; the manifest is damaged",
    ),
    "manifest_from_newer_code": (
        _manifest_version,
        "<ckpt>/manifest.json: format_version 2 is newer than this code reads (1); update mt_dnn",
    ),
    "not_a_checkpoint": (
        lambda f: [p.unlink() for p in f.iterdir()],
        "<ckpt>/checkpoint.json: not found; is <ckpt> a checkpoint folder?",
    ),
    "legacy_weights_truncated": (
        lambda f: (_legacy(f), truncate(f / "model.safetensors")),
        "<ckpt>/model.safetensors: size mismatch: <n> bytes, its safetensors header says <n> "
        "(truncated)",
    ),
    "legacy_metadata_not_json": (
        lambda f: (_legacy(f), (f / "checkpoint.json").write_text("{not json")),
        "<ckpt>/checkpoint.json:1: not valid JSON: Expecting property name enclosed in double "
        "quotes",
    ),
    "legacy_metadata_lacks_a_head": (
        lambda f: (_legacy(f), _drop_task(f)),
        "<ckpt>/model.safetensors: does not match the model in checkpoint.json: missing [], "
        "unexpected ['heads.tiny_reg.out.bias', 'heads.tiny_reg.out.weight']",
    ),
    "legacy_metadata_wrong_shape": (
        lambda f: (_legacy(f), _change_width(f)),
        "<ckpt>/model.safetensors: cannot be loaded: Error(s) in loading state_dict for "
        "MultiTaskModel: size mismatch for encoder.encoder.layer.0.intermediate.dense.weight: "
        "copying a param with shape torch.Size([64, 32]) from checkpoint, the shape in current "
        "model is torch.Size([48, 32]). size mismatch for ...",
    ),
}


def message_pattern(template: str, folder: Path) -> str:
    parts = re.split(r"(<ckpt>|<n>)", template)
    table = {"<ckpt>": re.escape(str(folder)), "<n>": r"\d+"}
    return "".join(table.get(part, re.escape(part)) for part in parts)


@pytest.mark.parametrize("case", list(DAMAGES))
def test_damaged_checkpoint_is_one_clear_line(tmp_path, case):
    damage, template = DAMAGES[case]
    folder = save_checkpoint(tiny_model(), tmp_path / "c", TASKS, config={"lr": 1}, files=EXTRA)
    damage(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedCheckpointWarning)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(folder)
    message = str(info.value)
    assert "\n" not in message
    if template.endswith("..."):  # torch's message goes on: check its start
        assert message.startswith(template.replace("<ckpt>", str(folder))[:-3]), message
    else:
        assert re.fullmatch(message_pattern(template, folder), message), message


def test_read_meta_checks_metadata_and_sizes_without_hashing_weights(tmp_path):
    folder = save_checkpoint(tiny_model(), tmp_path / "c", TASKS)
    flip_byte(folder / "model.safetensors")
    assert read_meta(folder)["pooling"] == "cls"  # cheap: weights are hashed on load
    truncate(folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors: size mismatch"):
        read_meta(folder)
    folder = save_checkpoint(tiny_model(), tmp_path / "d", TASKS)
    flip_byte(folder / "checkpoint.json", offset=20)
    with pytest.raises(CheckpointError, match="checkpoint.json: sha256 mismatch"):
        read_meta(folder)


def test_docs_list_every_damaged_checkpoint_message():
    text = (REPO_ROOT / "docs" / "bad_input.md").read_text(encoding="utf-8")
    section = text.split("## Checkpoints", 1)[1].split("\n## ", 1)[0]
    for case, (_, template) in DAMAGES.items():
        assert f"`{template}`" in section, case


def test_interrupted_save_keeps_the_previous_checkpoint_and_the_next_save_cleans_up(
    tmp_path, monkeypatch
):
    """A kill is simulated by raising at a late step with the error cleanup disabled."""
    dest = tmp_path / "c"
    first = tiny_model(seed=0)
    save_checkpoint(first, dest, TASKS, config={"run": 1})
    second = tiny_model(seed=5)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    for step in ("_write_manifest", "_swap_into_place"):
        with monkeypatch.context() as m:
            m.setattr(ckpt_mod, step, killed)
            m.setattr(ckpt_mod, "_discard", lambda tmp: None)  # a kill gets no cleanup
            with pytest.raises(KeyboardInterrupt):
                save_checkpoint(second, dest, TASKS, config={"run": 2}, files=EXTRA)
        verify_checkpoint(dest)
        loaded, _, _ = load_checkpoint(dest)
        assert_same_weights(loaded, weights_of(first))
        assert json.loads((dest / "config.json").read_text()) == {"run": 1}
        assert len(temp_folders(tmp_path)) == 1  # each save removed the one before's

    save_checkpoint(second, dest, TASKS, config={"run": 2})
    assert temp_folders(tmp_path) == []
    loaded, _, _ = load_checkpoint(dest)
    assert_same_weights(loaded, weights_of(second))


def test_failed_save_removes_its_own_temp_folder(tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "_write_manifest", fails)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tiny_model(), tmp_path / "c", TASKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_kill_between_the_fallback_renames_is_undone_by_the_next_save(tmp_path, monkeypatch):
    """Without an atomic swap, a kill between 'old aside' and 'new in' leaves no
    checkpoint at the destination; the next save puts the old one back first."""
    dest = tmp_path / "c"
    first = tiny_model(seed=0)
    save_checkpoint(first, dest, TASKS)
    os.rename(dest, tmp_path / f".c.ckpt-old-{os.getpid()}-abcd1234")

    def fails(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "_write_manifest", fails)
    with pytest.raises(OSError):
        save_checkpoint(tiny_model(seed=5), dest, TASKS)
    loaded, _, _ = load_checkpoint(dest)
    assert_same_weights(loaded, weights_of(first))
    assert temp_folders(tmp_path) == []


def test_stale_temp_folders_of_other_checkpoints_go_only_when_their_process_has(tmp_path):
    dead = tmp_path / ".step-7.ckpt-new-4194305-abcd1234"  # above any pid_max: never running
    live = tmp_path / f".step-8.ckpt-new-{os.getppid()}-abcd1234"  # a save in progress
    other = tmp_path / ".step-7.tmp"  # not our pattern
    for folder in (dead, live, other):
        folder.mkdir()
    save_checkpoint(tiny_model(), tmp_path / "step-9", TASKS)
    assert not dead.exists()
    assert live.is_dir() and other.is_dir()


@pytest.mark.parametrize("atomic_swap", [True, False], ids=["exchange", "aside"])
def test_overwrite_replaces_every_checkpoint_file_and_keeps_the_rest(
    tmp_path, monkeypatch, atomic_swap
):
    calls = []
    real_exchange = data_utils.atomic.exchange

    def exchange(a, b):
        calls.append(real_exchange(a, b) if atomic_swap else False)
        return calls[-1]

    monkeypatch.setattr(data_utils.atomic, "exchange", exchange)
    dest = tmp_path / "run"
    save_checkpoint(tiny_model(seed=0), dest, TASKS, config={"run": 1}, files=EXTRA)
    save_checkpoint(tiny_model(seed=1), dest / "best", TASKS)
    (dest / "metrics.json").write_text("{}")
    (dest / ".model.safetensors.tmp").write_bytes(b"left by a save killed before manifests")
    (dest / "tensorboard").mkdir()
    events = open(dest / "tensorboard" / "events", "a")  # noqa: SIM115  TensorBoard keeps it open
    events.write("epoch 1\n")
    events.flush()

    newer = tiny_model(seed=2)
    save_checkpoint(newer, dest, TASKS)  # no config, no extra files this time
    if atomic_swap and calls == [False]:
        pytest.skip("this filesystem cannot swap two paths atomically")
    assert calls == [atomic_swap]
    events.write("epoch 2\n")
    events.close()

    assert sorted(p.name for p in dest.iterdir()) == [
        "best",
        "checkpoint.json",
        "manifest.json",
        "metrics.json",
        "model.safetensors",
        "tensorboard",
    ]
    loaded, _, _ = load_checkpoint(dest)
    assert_same_weights(loaded, weights_of(newer))
    best, _, _ = load_checkpoint(dest / "best")
    assert_same_weights(best, weights_of(tiny_model(seed=1)))
    assert (dest / "tensorboard" / "events").read_text() == "epoch 1\nepoch 2\n"
    assert temp_folders(tmp_path) == []


def test_every_file_and_both_folders_are_fsynced(tmp_path, monkeypatch):
    synced = set()
    real_fsync = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    dest = tmp_path / "c"
    for first_save in (True, False):  # a new folder, then swapping over it
        synced.clear()
        save_checkpoint(tiny_model(), dest, TASKS, config={"lr": 1}, files=EXTRA)
        for path in [*dest.iterdir(), dest, tmp_path]:
            st = path.stat()
            assert (st.st_dev, st.st_ino) in synced, (first_save, path)


def test_latest_complete_checkpoint_skips_a_damaged_newest_one(tmp_path):
    steps = [tmp_path / f"step-{n}" for n in (1, 2, 3)]
    for n, folder in enumerate(steps):
        save_checkpoint(tiny_model(seed=n), folder, TASKS)
    flip_byte(steps[2] / "model.safetensors")
    newest_first = [tmp_path / "step-4", *reversed(steps)]  # step-4 was never written
    path, skipped = latest_complete_checkpoint(newest_first)
    assert path == steps[1]
    assert skipped == [
        f"{steps[2]}/model.safetensors: sha256 mismatch: the file changed after it was saved "
        "(damaged on disk or in a copy)"
    ]

    truncate(steps[1] / "model.safetensors")
    (steps[0] / "checkpoint.json").unlink()
    path, skipped = latest_complete_checkpoint(newest_first)
    assert path is None
    assert [m.split(": ")[:2] for m in skipped] == [
        [f"{steps[2]}/model.safetensors", "sha256 mismatch"],
        [f"{steps[1]}/model.safetensors", "size mismatch"],
        [
            f"{steps[0]}/checkpoint.json",
            "missing; manifest.json lists it, so the checkpoint is incomplete",
        ],
    ]


def test_saving_over_the_working_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="current folder"):
        save_checkpoint(tiny_model(), ".", TASKS)
    assert list(tmp_path.iterdir()) == []
