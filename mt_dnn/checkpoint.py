"""Checkpoints are data, not code: weights as safetensors, everything else as JSON.

A checkpoint folder holds

- ``model.safetensors``: encoder and head weights;
- ``checkpoint.json``: the encoder's HuggingFace config, the pooling, and the
  YAML form of every task that has a head, so a checkpoint loads without the
  original model folder or task files;
- ``config.json``: the resolved training configuration that produced it;
- the tokenizer's files when the caller passes one (``tokenizer=``), as its
  ``save_pretrained`` writes them (``tokenizer.json``, ``tokenizer_config.json``...),
  named in ``checkpoint.json`` under ``tokenizer_files``, so a checkpoint is
  enough to tokenize new text and to export (``mt_dnn/export.py``);
- any extra files the caller passes (``files=``), e.g. optimizer state;
- ``manifest.json``: the name, size and sha256 of each file above.

A checkpoint is one unit. ``save_checkpoint`` writes every file into a
temporary sibling folder, fsyncs them, writes the manifest last, and swaps the
folder into place with one rename, so the destination always holds either the
old complete checkpoint or the new one: never new weights beside old
metadata. Loading checks every file against the manifest, so a truncated,
missing or flipped-bit file is a one-line ``CheckpointError`` naming it.

Anything else in the destination folder (``metrics.json``, ``best/``,
``tensorboard/``, ``predictions/``: today the trainer's output folder is also
its checkpoint) is not part of the checkpoint and is carried over into the new
folder with hard links. Checkpoints written before manifests existed still
load, with an ``UnverifiedCheckpointWarning``.

No pickle is read anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_model, save_model

from data_utils.atomic import fsync_dir, link_tree, replace_dir
from data_utils.task_def import TaskDef, parse_task_def
from mt_dnn.model import MultiTaskModel, encoder_from_config

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
CONFIG = "config.json"
MANIFEST = "manifest.json"
TOKENIZER_FILES = "tokenizer_files"  # key of checkpoint.json: the names the tokenizer saved
FORMAT_VERSION = 1  # of checkpoint.json
MANIFEST_VERSION = 1
RESERVED = frozenset({WEIGHTS, META, CONFIG, MANIFEST})
# What a checkpoint written before manifests owned, with the temporary files its
# save could leave behind (a kill during the old save left a 90 MB
# .model.safetensors.tmp): dropped, not carried over, when it is overwritten.
_LEGACY_FILES = frozenset({WEIGHTS, META, CONFIG, *(f".{n}.tmp" for n in (WEIGHTS, META, CONFIG))})
_CHUNK = 1 << 20

FileSource = bytes | Callable[[Path], None]


class CheckpointError(ValueError):
    pass


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint without manifest.json: written before manifests, so not verifiable."""


def save_checkpoint(
    model: MultiTaskModel,
    out_dir: str | Path,
    task_defs: Mapping[str, TaskDef],
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    files: Mapping[str, FileSource] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """Write the checkpoint folder ``out_dir`` as one unit; returns ``out_dir``.

    ``extra`` keys are merged into ``checkpoint.json``. ``files`` adds more
    files to the same unit, e.g. ``{"optimizer.safetensors": lambda p:
    save_file(state, str(p)), "trainer_state.json": json.dumps(s).encode()}``:
    each value is the file's bytes, or a callable that writes the file at the
    path it is given (inside the temporary folder). Names are plain file names,
    not hidden and not one of ``RESERVED``. They are listed in the manifest and
    verified on every load; a later save without them removes them.

    ``tokenizer`` (a transformers tokenizer) is saved with ``save_pretrained``
    into the same unit: its files are listed in the manifest like the others,
    and their names in ``checkpoint.json`` (``tokenizer_files``) for
    :func:`load_checkpoint_tokenizer`. A tokenizer file whose name is taken
    (``config.json`` is the training config here) is a ``CheckpointError``.

    Other entries of an existing ``out_dir`` (``metrics.json``, ``best/``...)
    are hard-linked into the new folder; the old checkpoint's own files are not.

    A save killed at any point leaves the previous checkpoint intact at
    ``out_dir``; the temporary folder it leaves beside it is removed by the next
    save to the same ``out_dir``, or to any folder beside it once the killed
    process is gone. Two processes saving to one ``out_dir`` at once is not
    supported.
    """
    dest = Path(os.path.abspath(out_dir))
    if dest.is_symlink():
        dest = dest.resolve()
    _check_destination(dest)
    sources = _check_file_names(files or {})
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(dest)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest, "new"), dir=dest.parent))
    try:
        tokenizer_sources = _tokenizer_sources(tokenizer, tmp, taken=set(sources))
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder_config": model.encoder.config.to_dict(),
            "pooling": model.pooling,
            "tasks": {name: task_defs[name].to_dict() for name in model.heads},
            **(extra or {}),
            **({TOKENIZER_FILES: sorted(tokenizer_sources)} if tokenizer is not None else {}),
        }
        writers: dict[str, FileSource] = {
            WEIGHTS: lambda path: save_model(model, str(path)),
            META: _json_bytes(meta),
            **({CONFIG: _json_bytes(dict(config))} if config is not None else {}),
            **sources,
            **tokenizer_sources,
        }
        entries = {name: _write_file(tmp, name, source) for name, source in writers.items()}
        _discard_scratch(tmp)
        _write_manifest(tmp, entries)
        fsync_dir(tmp)
        if dest.is_dir():
            _carry_over(dest, tmp, owned=set(entries) | _owned_names(dest))
        _swap_into_place(tmp, dest)
    except BaseException:
        _discard(tmp)
        raise
    return Path(out_dir)


def verify_checkpoint(ckpt_dir: str | Path) -> None:
    """Raise ``CheckpointError`` unless every file in the manifest is there, whole and unchanged.

    Also checks that ``checkpoint.json`` is readable. A checkpoint without a
    manifest gets an ``UnverifiedCheckpointWarning`` and only structural checks
    (``checkpoint.json`` parses, the weights file is as long as its header says).
    """
    _verify(Path(ckpt_dir), hash_all=True)


def read_meta(ckpt_dir: str | Path) -> dict[str, Any]:
    """``checkpoint.json``, after checking it against the manifest.

    Cheap: the other files are checked for presence and size but not hashed;
    ``load_checkpoint`` hashes them all.
    """
    return _verify(Path(ckpt_dir), hash_all=False)


def load_checkpoint(ckpt_dir: str | Path) -> tuple[MultiTaskModel, dict[str, TaskDef], dict]:
    """Rebuild the model from a verified checkpoint folder; returns (model, head task defs, meta)."""
    ckpt_dir = Path(ckpt_dir)
    meta = _verify(ckpt_dir, hash_all=True)
    source = str(ckpt_dir / META)
    tasks = {name: parse_task_def(name, raw, source) for name, raw in meta["tasks"].items()}
    encoder = encoder_from_config(meta["encoder_config"])
    model = MultiTaskModel(encoder, tasks, pooling=meta["pooling"])
    weights = ckpt_dir / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found")
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except Exception as exc:  # safetensors' own error type, or torch's size mismatch
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        text = text or type(exc).__name__
        text = text if len(text) <= 300 else text[:300] + "..."
        raise CheckpointError(f"{weights}: cannot be loaded: {text}") from exc
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: does not match the model in {META}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), tasks, meta


def load_checkpoint_tokenizer(ckpt_dir: str | Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved with the checkpoint (``save_checkpoint(tokenizer=...)``), or None
    when it has none (saved before checkpoints carried one, or without ``tokenizer=``).

    Its files are checked against the manifest first. They are loaded from a
    scratch copy holding only them, so ``AutoTokenizer`` cannot mistake the
    checkpoint's ``config.json`` (the training config) for a model config.
    """
    from transformers import AutoTokenizer

    folder = Path(ckpt_dir)
    meta = _verify(folder, hash_all=False)
    names = meta.get(TOKENIZER_FILES)
    if names is None:
        return None
    if not isinstance(names, list) or not all(_is_plain_name(n) for n in names) or not names:
        raise CheckpointError(f"{folder / META}: '{TOKENIZER_FILES}' is not a list of file names")
    _verify(folder, hash_all=False, also_hash=set(names))
    with tempfile.TemporaryDirectory(prefix="mtdnn-tokenizer-") as scratch:
        for name in names:
            shutil.copyfile(folder / name, Path(scratch) / name)
        try:
            return AutoTokenizer.from_pretrained(scratch)
        except (OSError, ValueError) as exc:
            text = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"{folder}: its tokenizer cannot be loaded: {text}") from exc


def pretrained_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase | None:
    """The tokenizer of a pretrained model (a folder or hub name), to save with checkpoints
    trained from it; None when it has none.

    transformers 5 builds a tokenizer holding only the special tokens from a
    folder without tokenizer files (a bare encoder saved by ``save_pretrained``);
    such a tokenizer maps every word to [UNK], so it counts as none.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return None
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        return None
    return tokenizer


def latest_complete_checkpoint(candidates: Sequence[str | Path]) -> tuple[Path | None, list[str]]:
    """The first of ``candidates`` (give them newest first) that verifies, and why newer ones did not.

    Returns ``(path, messages)``: one ``CheckpointError`` message for each
    existing candidate skipped before ``path``; ``path`` is None when none
    verifies. Candidates that do not exist are skipped without a message.
    """
    messages: list[str] = []
    for candidate in candidates:
        path = Path(candidate)
        if not path.exists():
            continue
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            messages.append(str(exc))
            continue
        return path, messages
    return None, messages


# Saving.


def _check_destination(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise CheckpointError(f"{dest}: exists and is not a folder; cannot save a checkpoint there")
    cwd = Path.cwd().resolve()
    if dest.resolve() == cwd or dest.resolve() in cwd.parents or not dest.name:
        raise CheckpointError(
            f"{dest}: is the current folder or above it; a checkpoint replaces its folder "
            "whole, so save it into a subfolder"
        )


def _check_file_names(files: Mapping[str, FileSource]) -> dict[str, FileSource]:
    for name, source in files.items():
        if not _is_plain_name(name) or name in RESERVED:
            raise CheckpointError(
                f"files: {name!r} is not a valid extra file name; use a plain, non-hidden "
                f"file name other than {sorted(RESERVED)}"
            )
        if not (isinstance(source, bytes | bytearray | memoryview) or callable(source)):
            raise CheckpointError(
                f"files[{name!r}]: expected bytes or a callable that writes the file, "
                f"got {type(source).__name__}"
            )
    return dict(files)


def _is_plain_name(name: str) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and "/" not in name
        and os.sep not in name
        and (os.altsep is None or os.altsep not in name)
    )


_TOKENIZER_SCRATCH = ".tokenizer"  # inside the temporary folder; hidden, so never a unit name


def _tokenizer_sources(
    tokenizer: PreTrainedTokenizerBase | None, tmp: Path, taken: set[str]
) -> dict[str, FileSource]:
    """Save ``tokenizer`` into a scratch folder inside ``tmp``; one mover per file it wrote.

    Saving first lets every name be checked before anything of the unit is
    written: the tokenizer must not overwrite a checkpoint file or an extra file.
    """
    if tokenizer is None:
        return {}
    scratch = tmp / _TOKENIZER_SCRATCH
    scratch.mkdir()
    tokenizer.save_pretrained(str(scratch))
    sources: dict[str, FileSource] = {}
    for path in sorted(scratch.iterdir()):
        name = path.name
        if not path.is_file() or not _is_plain_name(name):
            raise CheckpointError(
                f"tokenizer: save_pretrained wrote {name!r}, which is not a plain file; a "
                "checkpoint holds only plain, non-hidden files"
            )
        if name in RESERVED or name in taken:
            raise CheckpointError(
                f"tokenizer: save_pretrained wrote {name!r}, a name the checkpoint already uses "
                f"({sorted(RESERVED | taken)})"
            )
        sources[name] = _mover(path)
    if not sources:
        raise CheckpointError("tokenizer: save_pretrained wrote no files")
    return sources


def _mover(source: Path) -> Callable[[Path], None]:
    def move(target: Path) -> None:
        os.replace(source, target)

    return move


def _discard_scratch(tmp: Path) -> None:
    scratch = tmp / _TOKENIZER_SCRATCH
    if scratch.is_dir():
        shutil.rmtree(scratch)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_file(folder: Path, name: str, source: FileSource) -> dict[str, Any]:
    """Write one file of the unit, fsync it, and return its manifest entry."""
    path = folder / name
    if callable(source):
        source(path)
        if not path.is_file():
            raise CheckpointError(f"files[{name!r}]: the writer did not create {path}")
    else:
        path.write_bytes(bytes(source))
    size, digest = _size_and_sha256(path, fsync=True)
    return {"size": size, "sha256": digest}


def _write_manifest(folder: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Written last: a folder with a manifest has every file the manifest lists."""
    manifest = {"format_version": MANIFEST_VERSION, "files": dict(sorted(entries.items()))}
    _write_file(folder, MANIFEST, _json_bytes(manifest))


def _temp_prefix(dest: Path, kind: str) -> str:
    # The pid lets a save clean up after a killed save of another checkpoint in
    # the same folder (step-N names never repeat) without touching a save in progress.
    return f".{dest.name}.ckpt-{kind}-{os.getpid()}-"


# tempfile.mkdtemp and _aside_path both end the name with 8 characters from this set.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.ckpt-(?P<kind>new|old)-(?P<pid>\d+)-[a-z0-9_]{8}")


def _aside_path(dest: Path) -> Path:
    return dest.parent / f"{_temp_prefix(dest, 'old')}{secrets.token_hex(4)}"


def _clean_stale(dest: Path) -> None:
    """Remove the temporary folders killed saves left in ``dest``'s parent.

    Only names of our own pattern: any for ``dest`` itself (two saves to one
    folder at once are not supported), and those of other checkpoints whose
    process is gone. An ``old`` folder with nothing at its checkpoint's path
    means a kill between the two renames of ``replace_dir``'s fallback: it is
    the last complete checkpoint, so it goes back rather than away.
    """
    stale = []
    for path in dest.parent.iterdir():
        match = _TEMP_NAME.fullmatch(path.name)
        if match and (match["name"] == dest.name or not _pid_alive(int(match["pid"]))):
            stale.append((match["kind"] != "old", path.name, path, dest.parent / match["name"]))
    for is_new, _, path, target in sorted(stale):  # old ones first
        if not is_new and not target.exists():
            os.rename(path, target)
            fsync_dir(dest.parent)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid == os.getpid():
        return True  # cannot tell (on Windows, signal 0 is CTRL_C_EVENT): leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _owned_names(folder: Path) -> set[str]:
    """Names in ``folder`` that belong to the checkpoint saved there (not carried over)."""
    names = set(_LEGACY_FILES | {MANIFEST})
    try:
        manifest = _read_manifest(folder)
    except CheckpointError:
        manifest = None  # damaged: drop the names a checkpoint always has, keep the rest
    if manifest is not None:
        names |= set(manifest["files"])
    return names


def _carry_over(old: Path, new: Path, owned: set[str]) -> None:
    """Hard-link what is in ``old`` but not part of its checkpoint into ``new``."""
    for child in old.iterdir():
        if child.name not in owned and not (new / child.name).exists():
            link_tree(child, new / child.name)
    fsync_dir(new)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    replace_dir(tmp, dest, _aside_path(dest))


def _discard(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


# Loading and verifying.


def _size_and_sha256(path: Path, fsync: bool = False) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if fsync:
            os.fsync(handle.fileno())
    return size, digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The parsed manifest, None when there is none; ``CheckpointError`` when it is damaged."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f":{exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise CheckpointError(f"{path}{where}: not valid JSON; the manifest is damaged") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: not a checkpoint manifest (no integer 'format_version')")
    if version > MANIFEST_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version} is newer than this code reads "
            f"({MANIFEST_VERSION}); update mt_dnn"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{path}: not a checkpoint manifest (no 'files')")
    for name, entry in files.items():
        ok = (
            _is_plain_name(name)
            and isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
        )
        if not ok:
            raise CheckpointError(
                f"{path}: entry {name!r} is not a plain name with size and sha256"
            )
    return manifest


def _verify(folder: Path, hash_all: bool, also_hash: Set[str] = frozenset()) -> dict[str, Any]:
    """Check ``folder`` against its manifest (hashing every file, or only checkpoint.json
    and the names in ``also_hash``); returns the parsed ``checkpoint.json``."""
    manifest = _read_manifest(folder)
    if manifest is None:
        if not (folder / META).is_file():
            raise CheckpointError(f"{folder / META}: not found; is {folder} a checkpoint folder?")
        warnings.warn(
            f"{folder}: no {MANIFEST} (saved before checkpoints had one), so its files "
            "cannot be verified; save it again to add one",
            UnverifiedCheckpointWarning,
            stacklevel=3,
        )
        meta = _read_meta_file(folder)
        if not (folder / WEIGHTS).is_file():
            raise CheckpointError(f"{folder / WEIGHTS}: not found")
        _check_safetensors_length(folder / WEIGHTS)
        return meta
    for name, entry in manifest["files"].items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: missing; {MANIFEST} lists it, so the checkpoint is incomplete"
            ) from None
        if size != entry["size"]:
            raise CheckpointError(
                f"{path}: size mismatch: {size} bytes, {MANIFEST} says {entry['size']} "
                "(truncated or partly copied)"
            )
        hashed = hash_all or name == META or name in also_hash
        if hashed and _size_and_sha256(path)[1] != entry["sha256"]:
            raise CheckpointError(
                f"{path}: sha256 mismatch: the file changed after it was saved "
                "(damaged on disk or in a copy)"
            )
    for name in (META, WEIGHTS, *sorted(also_hash)):
        if name not in manifest["files"]:
            raise CheckpointError(f"{folder / MANIFEST}: does not list {name}")
    return _read_meta_file(folder)


def _read_meta_file(folder: Path) -> dict[str, Any]:
    path = folder / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; is {folder} a checkpoint folder?") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    for key in ("encoder_config", "pooling", "tasks"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key '{key}'")
    return meta


def _check_safetensors_length(path: Path) -> None:
    """Without a manifest, catch a truncated safetensors file from its own header:
    8 bytes of header length, the JSON header, then the tensors it locates."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = handle.read(n) if 0 <= n <= size - 8 else b""
    try:
        entries = json.loads(header)
        end = max(
            (v["data_offsets"][1] for k, v in entries.items() if k != "__metadata__"), default=0
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise CheckpointError(
            f"{path}: not a safetensors file (header unreadable; truncated?)"
        ) from None
    if 8 + n + end != size:
        raise CheckpointError(
            f"{path}: size mismatch: {size} bytes, its safetensors header says {8 + n + end} "
            "(truncated)"
        )
