"""Write files and folders so that a reader never sees a half-written one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def atomic_write(path: str | Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open a temporary file next to ``path``; move it over ``path`` only on success.

    The temporary file lives in the same folder so ``os.replace`` is an atomic
    rename on the same filesystem. Its contents are fsynced before the rename, so
    after a crash ``path`` holds the old file or the whole new one, never an empty
    one. On any exception it is deleted and ``path`` (if it existed) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# Folders: build the whole thing under a temporary name, make it durable, then
# swap it in with one rename. Used for checkpoints (mt_dnn/checkpoint.py).


def fsync_file(path: str | Path) -> None:
    """Flush a file's data to disk, so a power cut after a rename cannot leave it empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries (new files, renames) durable. A no-op off POSIX,
    where folders cannot be opened."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the platform, kernel or filesystem cannot do it, so the
    caller can fall back; other failures raise ``OSError``.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # glibc < 2.28, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_dir(new: str | Path, dest: str | Path, aside: str | Path) -> None:
    """Put the complete folder ``new`` at ``dest``, replacing whatever folder is there.

    ``new`` must be a sibling of ``dest`` (same filesystem) and already durable.
    Where the filesystem can swap two paths atomically, a reader of ``dest``
    sees the old folder or the new one, never neither; the old one is then
    deleted. Elsewhere the old folder is renamed to ``aside``, ``new`` is
    renamed in and ``aside`` is deleted: a kill between those two renames
    leaves nothing at ``dest`` and the old folder at ``aside``, which the
    caller's next write should rename back (see ``mt_dnn.checkpoint``).
    """
    new, dest, aside = Path(new), Path(dest), Path(aside)
    if not dest.exists():
        os.rename(new, dest)
        fsync_dir(dest.parent)
        return
    if exchange(new, dest):
        old = new
    else:
        os.rename(dest, aside)
        try:
            os.rename(new, dest)
        except BaseException:
            os.rename(aside, dest)
            raise
        old = aside
    fsync_dir(dest.parent)  # the swap is durable before the old folder goes
    shutil.rmtree(old, ignore_errors=True)


def link_tree(src: str | Path, dst: str | Path) -> None:
    """Recreate ``src`` (a file, folder or symlink) at ``dst`` with hard links.

    Costs no copying, and a file still open for appending (a TensorBoard event
    file) keeps growing under both names. Copies where hard links are refused.
    New folders are fsynced; the caller fsyncs ``dst``'s parent.
    """
    src, dst = Path(src), Path(dst)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        dst.mkdir()
        for child in src.iterdir():
            link_tree(child, dst / child.name)
        fsync_dir(dst)
    elif src.is_file():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
