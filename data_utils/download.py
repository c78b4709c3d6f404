"""Fetch the official dataset releases, verify them, and unpack them where the readers look.

For each selected :class:`~data_utils.dataset_catalog.Dataset`:

1. **Fetch** every file into ``OUTPUT/downloads/<file name>``. Bytes go to
   ``<file name>.part`` first; a rerun continues from the size of the ``.part``
   with ``Range: bytes=N-`` (a server that ignores it answers 200 and the file
   is started again from byte 0). A transfer that stops early is retried
   ``retries`` times, then reported, with the ``.part`` kept for the next run.
2. **Verify** size and checksum against the pins; only then is the ``.part``
   renamed to its final name. A mismatch deletes the ``.part`` and stops with
   the file's name, the expected and the actual value: nothing is unpacked.
   A file without a pinned checksum is refused unless ``allow_unverified``.
3. **Unpack** (:data:`UNPACKERS`: zip, tar.gz, gz, plain file) into a staging
   folder, run the dataset's ``finish`` step (:data:`FINISHERS`), check that
   every path in ``provides`` is there, then swap the dataset's ``root`` folder
   into place in one rename (:func:`data_utils.atomic.replace_dir`).
4. Record ``downloads/<name>.json``; a rerun skips a dataset whose record
   matches the pins and whose files are present, without touching the network.

A mirror replaces the whole official prefix: ``--mirror BASE`` fetches
``https://dl.fbaipublicfiles.com/glue/data/RTE.zip`` from ``BASE/RTE.zip``
(:func:`mirror_url`); ``BASE`` may be an http(s) URL, a ``file://`` URL or a
local folder. Proxies are taken from the usual ``https_proxy``/``http_proxy``
variables (urllib's own handling).

Every expected failure raises :class:`DownloadError` (a :class:`DataError`),
which scripts print as one ``error: <file>: <problem>`` line with exit status 2.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from data_utils.atomic import atomic_write, link_tree, replace_dir
from data_utils.dataset_catalog import CATALOG, CHECKSUM_KINDS, Dataset, Remote
from data_utils.errors import DataError

DOWNLOADS = "downloads"  # under the output folder: archives, .part files, records
CHUNK = 1 << 16
Log = Callable[[str], None]


class DownloadError(DataError):
    """A file could not be fetched, failed verification, or did not unpack as expected."""

    def __init__(self, name: str, message: str):
        super().__init__(name, None, message)


class _Cut(Exception):
    """The transfer stopped before the end; what arrived is in the ``.part`` file."""

    def __init__(self, got: int, total: int | None, why: str):
        self.got, self.total, self.why = got, total, why
        super().__init__(why)


# ---------------------------------------------------------------- selection
def select(names: Iterable[str] | None, catalog: Sequence[Dataset] = CATALOG) -> list[Dataset]:
    """Datasets for ``--tasks`` names (a dataset name or a tag such as ``glue``), in table order."""
    by_name = {d.name: d for d in catalog}
    tags = {tag for d in catalog for tag in d.tags}
    wanted = [n.strip() for n in names or () if n.strip()]
    if not wanted or "all" in wanted:
        return list(catalog)
    unknown = [n for n in wanted if n not in by_name and n not in tags]
    if unknown:
        raise DownloadError(
            "--tasks",
            f"unknown name(s) {unknown}; valid are {list(by_name)} or the groups "
            f"{sorted(tags | {'all'})}",
        )
    chosen = {n for n in wanted if n in by_name}
    chosen |= {d.name for d in catalog if set(d.tags) & set(wanted)}
    return [d for d in catalog if d.name in chosen]


def mirror_url(url: str, mirror: str | None) -> str:
    """The URL a file is fetched from: ``url`` itself, or ``mirror``/<file name of url>.

    ``https://host/any/path/RTE.zip`` -> ``MIRROR/RTE.zip`` (scheme, host and the
    whole path prefix are replaced; query strings are not kept). A mirror
    without ``://`` is a local folder.
    """
    if not mirror:
        return url
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    if "://" not in mirror:
        return (Path(mirror).resolve() / name).as_uri()
    return f"{mirror.rstrip('/')}/{name}"


# ------------------------------------------------------------------ fetching
def file_digest(path: Path, kind: str) -> str:
    digest = hashlib.new(kind)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, remote: Remote, url: str, log: Log = print) -> None:
    """Check size and checksum; on a mismatch delete ``path`` and raise."""
    name = remote.file_name
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        path.unlink()
        raise DownloadError(
            name,
            f"size mismatch: expected {remote.size} bytes, got {size} ({url}); "
            "the file was deleted and nothing was unpacked",
        )
    actual = file_digest(path, remote.checksum_kind)
    if remote.checksum is None:
        log(
            f"{name}: NOT VERIFIED (no pinned checksum; --allow_unverified): "
            f"{remote.checksum_kind} {actual}, {size} bytes"
        )
    elif actual != remote.checksum:
        path.unlink()
        raise DownloadError(
            name,
            f"{remote.checksum_kind} mismatch: expected {remote.checksum}, got {actual} ({url}); "
            "the file was deleted and nothing was unpacked",
        )


def _content_range_start(header: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL); TOTAL None when ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _open_url(url: str, offset: int, timeout: float, name: str) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` from byte ``offset``; returns (stream, actual offset, total size or None).

    The actual offset is 0 when the server ignored the Range header.
    """
    if url.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if not path.is_file():
            raise DownloadError(name, f"not found in the mirror folder: {path}")
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
        total = path.stat().st_size
        handle.seek(min(offset, total))
        return handle, min(offset, total), total
    headers = {"User-Agent": "mt-dnn-tat-download/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the .part may be whole
            return _empty(), offset, None
        if exc.code == 404:
            raise DownloadError(name, f"not found on the server (HTTP 404): {url}") from None
        raise DownloadError(name, f"HTTP {exc.code} {exc.reason}: {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(name, f"cannot fetch {url}: {reason}") from None
    length = response.headers.get("Content-Length")
    if response.status == 206 and offset:
        start, ranged_total = _content_range_start(response.headers.get("Content-Range"))
        if start != offset:  # not the part we asked for: start again from 0
            response.close()
            return _open_url(url, 0, timeout, name)
        if ranged_total is None and length is not None:
            ranged_total = offset + int(length)
        return response, offset, ranged_total
    # 200: the whole file (a server that ignores Range answers so too).
    return response, 0, int(length) if length is not None else None


def _empty() -> BinaryIO:
    return io.BytesIO(b"")


def _transfer(
    url: str, part: Path, remote: Remote, progress: bool, timeout: float, log: Log
) -> None:
    """Bring ``part`` up to the whole file, resuming from its size; raises _Cut when stopped."""
    name = remote.file_name
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    if remote.size is not None and offset == remote.size:
        return  # complete already; verification decides
    stream, start, total = _open_url(url, offset, timeout, name)
    if offset and start == 0:
        log(f"{name}: the server ignored the Range request; starting again from byte 0")
    elif offset:
        log(f"{name}: resuming at byte {offset}")
    expected = total if total is not None else remote.size
    bar = tqdm(
        total=expected,
        initial=start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        disable=not progress,
        leave=False,
    )
    got = start
    try:
        with stream, open(part, "ab" if start else "wb") as out:
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    out.flush()
                    raise _Cut(got, expected, f"{type(exc).__name__}: {exc}") from None
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    if expected is not None and got < expected:
        raise _Cut(got, expected, "the connection closed early")


def fetch(
    remote: Remote,
    downloads: Path,
    *,
    mirror: str | None = None,
    progress: bool = True,
    allow_unverified: bool = False,
    retries: int = 2,
    timeout: float = 60.0,
    log: Log = print,
) -> Path:
    """Download ``remote`` into ``downloads/<file name>`` (verified) and return that path."""
    name = remote.file_name
    url = mirror_url(remote.url, mirror)
    if remote.checksum is None and not allow_unverified:
        raise DownloadError(
            name,
            f"no {remote.checksum_kind} checksum is pinned for {remote.url} ({remote.source}); "
            "rerun with --allow_unverified to use it unchecked",
        )
    downloads.mkdir(parents=True, exist_ok=True)
    final = downloads / name
    if final.is_file():
        with contextlib.suppress(DownloadError):  # a bad file is deleted, then fetched again
            verify(final, remote, url, log)
            log(f"{name}: already downloaded and verified")
            return final
        log(f"{name}: the file already there failed verification; fetching it again")
    part = final.with_name(name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, remote, progress, timeout, log)
            break
        except _Cut as cut:
            of = f" of {cut.total}" if cut.total is not None else ""
            if attempt == retries:
                raise DownloadError(
                    name,
                    f"transfer cut off after {cut.got}{of} bytes ({cut.why}; {url}); the partial "
                    f"file {part} is kept: rerun to resume",
                ) from None
            log(f"{name}: cut off after {cut.got}{of} bytes ({cut.why}); resuming")
    verify(part, remote, url, log)
    os.replace(part, final)
    size = final.stat().st_size
    how = "verified" if remote.checksum else "NOT verified"
    log(f"{name}: {size:,} bytes, {remote.checksum_kind} {how}")
    return final


# ----------------------------------------------------------------- unpacking
def _is_junk(member: str) -> bool:
    parts = PurePosixPath(member).parts
    return bool(parts) and (
        parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")
    )


def _safe_target(dest: Path, member: str, archive: Path) -> Path:
    """``dest/member``, refusing names that would land outside ``dest``."""
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member):
        raise DownloadError(archive.name, f"unsafe member name {member!r}: refusing to unpack")
    return dest.joinpath(*path.parts)


def unpack_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _is_junk(info.filename):
                    continue
                target = _safe_target(dest, info.filename, archive)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DownloadError(archive.name, f"not a valid zip archive: {exc}") from None


def unpack_tar_gz(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, mode="r:gz") as tf:
            for member in tf:
                if _is_junk(member.name):
                    continue
                target = _safe_target(dest, member.name, archive)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(member)
                    assert src is not None  # a regular file always has a stream
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                else:
                    raise DownloadError(
                        archive.name, f"member {member.name!r} is not a file or folder: refusing"
                    )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(archive.name, f"not a valid tar.gz archive: {exc}") from None


def unpack_gz(archive: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with gzip.open(archive, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise DownloadError(archive.name, f"not a valid gzip file: {exc}") from None


def place_file(archive: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    link_tree(archive, dest)  # a hard link where possible: the download is not copied


UNPACKERS: dict[str, Callable[[Path, Path], None]] = {
    "zip": unpack_zip,
    "tar.gz": unpack_tar_gz,
    "gz": unpack_gz,
    "file": place_file,
}


def finish_glue_mrpc(folder: Path) -> None:
    """MRPC train/dev/test.tsv from Microsoft's files, as GLUE's download_glue_data.py makes them.

    Rows of msr_paraphrase_train.txt whose (#1 ID, #2 ID) is listed in
    dev_ids.tsv go to dev.tsv, the others to train.tsv (both keep the header,
    BOM included); test.tsv gets an ``index`` column and loses the label.
    """
    dev_ids = set()
    with open(folder / "dev_ids.tsv", encoding="utf8") as handle:
        for row in handle:
            dev_ids.add(tuple(row.strip().split("\t")))
    source = folder / "msr_paraphrase_train.txt"
    with (
        open(source, encoding="utf8") as data,
        atomic_write(folder / "train.tsv") as train,
        atomic_write(folder / "dev.tsv") as dev,
    ):
        header = data.readline()
        train.write(header)
        dev.write(header)
        for number, row in enumerate(data, start=2):
            fields = row.strip().split("\t")
            if len(fields) != 5:
                raise DataError(
                    source, number, f"expected 5 tab-separated fields, found {len(fields)}"
                )
            label, id1, id2, s1, s2 = fields
            out = dev if (id1, id2) in dev_ids else train
            out.write(f"{label}\t{id1}\t{id2}\t{s1}\t{s2}\n")
    source = folder / "msr_paraphrase_test.txt"
    with open(source, encoding="utf8") as data, atomic_write(folder / "test.tsv") as test:
        data.readline()
        test.write("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
        for index, row in enumerate(data):
            fields = row.strip().split("\t")
            if len(fields) != 5:
                raise DataError(
                    source, index + 2, f"expected 5 tab-separated fields, found {len(fields)}"
                )
            _, id1, id2, s1, s2 = fields
            test.write(f"{index}\t{id1}\t{id2}\t{s1}\t{s2}\n")


FINISHERS: dict[str, Callable[[Path], None]] = {"glue_mrpc": finish_glue_mrpc}


def _record_path(output_dir: Path, dataset: Dataset) -> Path:
    return output_dir / DOWNLOADS / f"{dataset.name}.json"


def _record(dataset: Dataset) -> dict:
    return {
        "name": dataset.name,
        "root": dataset.root,
        "files": {r.file_name: f"{r.checksum_kind}:{r.checksum}" for r in dataset.files},
    }


def is_installed(dataset: Dataset, output_dir: Path) -> bool:
    """True when this exact pinned version was unpacked here and its files are still present."""
    record = _record_path(output_dir, dataset)
    try:
        same = json.loads(record.read_text(encoding="utf-8")) == _record(dataset)
    except (OSError, ValueError):
        return False
    # An unverified download has nothing to compare against: always fetch it again.
    pinned = all(r.checksum for r in dataset.files)
    return same and pinned and all((output_dir / p).is_file() for p in dataset.provides)


def install(dataset: Dataset, output_dir: Path, fetched: Mapping[str, Path], log: Log = print):
    """Unpack verified downloads into a staging folder, check them, and swap ``root`` in."""
    downloads = output_dir / DOWNLOADS
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{dataset.name}-", dir=downloads))
    try:
        for remote in dataset.files:
            UNPACKERS[remote.unpack](fetched[remote.file_name], staging / remote.target)
        if dataset.finish:
            FINISHERS[dataset.finish](staging / dataset.root)
        missing = [p for p in dataset.provides if not (staging / p).is_file()]
        if missing:
            found = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())[
                :20
            ]
            raise DownloadError(
                ", ".join(r.file_name for r in dataset.files),
                f"unpacked, but {missing} is missing (the readers need it); it holds {found}",
            )
        dest = output_dir / dataset.root
        dest.parent.mkdir(parents=True, exist_ok=True)
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        replace_dir(staging / dataset.root, dest, aside)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with atomic_write(_record_path(output_dir, dataset)) as handle:
        json.dump(_record(dataset), handle, indent=1)
    log(f"{dataset.name}: unpacked into {dest}")


def download(
    datasets: Sequence[Dataset],
    output_dir: str | Path,
    *,
    mirror: str | None = None,
    progress: bool = True,
    allow_unverified: bool = False,
    retries: int = 2,
    timeout: float = 60.0,
    log: Log = print,
) -> list[str]:
    """Fetch, verify and unpack ``datasets``; returns the names actually (re)installed.

    Stops at the first error: datasets done before it stay done, the failing
    one leaves nothing under its final names.
    """
    output_dir = Path(output_dir)
    check_kinds(datasets)
    unpinned = [r for d in datasets for r in d.files if r.checksum is None]
    if unpinned and not allow_unverified:  # refuse before fetching anything
        raise DownloadError(
            ", ".join(r.file_name for r in unpinned),
            f"no checksum is pinned for {[r.url for r in unpinned]} ({unpinned[0].source}); "
            "rerun with --allow_unverified to use unchecked files",
        )
    done = []
    for dataset in datasets:
        if is_installed(dataset, output_dir):
            log(f"{dataset.name}: already in place ({output_dir / dataset.root})")
            continue
        fetched = {
            remote.file_name: fetch(
                remote,
                output_dir / DOWNLOADS,
                mirror=mirror,
                progress=progress,
                allow_unverified=allow_unverified,
                retries=retries,
                timeout=timeout,
                log=log,
            )
            for remote in dataset.files
        }
        install(dataset, output_dir, fetched, log)
        done.append(dataset.name)
    return done


def _human(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_table(catalog: Sequence[Dataset] = CATALOG) -> str:
    """The ``--list`` table: one line per file, then the total."""
    rows = [("task", "file", "size", "checksum", "unpacked into")]
    total = 0
    for dataset in catalog:
        for remote in dataset.files:
            total += remote.size or 0
            check = (
                f"{remote.checksum_kind}:{remote.checksum[:12]}..."
                if remote.checksum
                else f"{remote.checksum_kind}: UNKNOWN (needs --allow_unverified)"
            )
            where = dataset.root + ("" if dataset.readers else " (not read by the readers)")
            rows.append((dataset.name, remote.file_name, _human(remote.size), check, where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(f"total: {_human(total)} ({total:,} bytes) in {len(rows) - 1} files")
    lines.append("sources of the pins: see data_utils/dataset_catalog.py and docs/data.md")
    return "\n".join(lines)


def check_kinds(catalog: Sequence[Dataset]) -> None:
    """Fail early on a catalogue entry the downloader cannot handle (used for test catalogues)."""
    for dataset in catalog:
        for remote in dataset.files:
            if remote.checksum_kind not in CHECKSUM_KINDS or remote.unpack not in UNPACKERS:
                raise DownloadError(
                    remote.file_name,
                    f"checksum kind {remote.checksum_kind!r} / unpack {remote.unpack!r} not one "
                    f"of {list(CHECKSUM_KINDS)} / {list(UNPACKERS)}",
                )
        if dataset.finish and dataset.finish not in FINISHERS:
            raise DownloadError(dataset.name, f"finish {dataset.finish!r} not in {list(FINISHERS)}")
