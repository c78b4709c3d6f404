"""The downloader against a local HTTP server, and the pinned table on its own.

The official hosts cannot be reached from the test machines, so the server on
127.0.0.1 serves archives built here (from ../shared/data and tests/fixtures)
in the official internal layouts, described by a test catalogue with their own
sha256 and sizes. The pinned table (data_utils/dataset_catalog.py) is checked
for form, against the readers' file names, and, for the four files staged
byte for byte in ../shared/data, against the real bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from data_utils.dataset_catalog import CATALOG, CHECKSUM_KINDS, UNPACK_KINDS, Dataset, Remote
from data_utils.download import (
    DOWNLOADS,
    DownloadError,
    download,
    finish_glue_mrpc,
    format_table,
    mirror_url,
    select,
)
from data_utils.sources import GLUE_SOURCES, nli_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
rte_splits = ("train", "dev", "test")
OFFICIAL = {
    "cola",
    "sst",
    "mrpc",
    "qqp",
    "stsb",
    "mnli",
    "qnli",
    "rte",
    "wnli",
    "ax",
    "snli",
    "multinli",
    "scitail",
    "xnli",
    "hans",
}


# ------------------------------------------------------------- local server
class FileServer:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1 with Range support.

    ``cut[path] = n`` makes the next answer for ``path`` announce the full
    length, send ``n`` bytes and drop the connection (once). Paths in
    ``ignore_range`` are always answered 200 with the whole file. Every request
    is recorded as ``(path, Range header or None)``.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                ranged = self.headers.get("Range")
                server.requests.append((path, ranged))
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", ranged or "")
                if match and path not in server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if path in server.cut:
                    payload = payload[: server.cut.pop(path)]
                    self.close_connection = True
                self.wfile.write(payload)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base + path

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


# ------------------------------------------------------- archives and table
def zip_bytes(members: dict[str, bytes], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def folder_members(folder: Path, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def remote(url: str, body: bytes, unpack: str, target: str, checksum: str | None = "") -> Remote:
    digest = hashlib.sha256(body).hexdigest() if checksum == "" else checksum
    return Remote(url, "sha256", digest, len(body), "built by the test", unpack, target)


def toy(server: FileServer, name: str = "TOY.zip", size: int = 200_000, **kwargs) -> Dataset:
    """A one-archive dataset; the zip is stored (not deflated) so its size is ~``size``."""
    payload = bytes(range(256)) * (size // 256)
    body = zip_bytes({"TOY/train.tsv": payload, "TOY/dev.tsv": b"x\n"}, stored=True)
    url = server.add(f"/official/glue/data/{name}", body)
    files = (remote(url, body, "zip", "glue", **kwargs),)
    return Dataset("toy", "toy", "glue/TOY", files, ("glue/TOY/train.tsv", "glue/TOY/dev.tsv"))


# --------------------------------------------------------- the pinned table
def test_pinned_table_is_well_formed():
    assert {d.name for d in CATALOG} == OFFICIAL
    names = [r.file_name for d in CATALOG for r in d.files]
    assert len(names) == len(set(names)), "a flat --mirror folder needs unique file names"
    for dataset in CATALOG:
        assert dataset.files and dataset.provides
        for path in dataset.provides:
            assert path.startswith(dataset.root + "/")
        for r in dataset.files:
            where = f"{dataset.name}/{r.file_name}"
            assert r.url.startswith("https://"), where
            assert r.checksum_kind in CHECKSUM_KINDS, where
            assert r.unpack in UNPACK_KINDS, where
            assert r.source.strip(), where
            if r.checksum is None:
                assert "unknown" in r.source.lower(), f"{where}: say why the checksum is unknown"
            else:
                assert re.fullmatch(f"[0-9a-f]{{{CHECKSUM_KINDS[r.checksum_kind]}}}", r.checksum)
                assert r.size is not None and r.size > 0, where
            # Where the file or archive lands must be inside (or be the parent of) the root.
            assert r.target.startswith(dataset.root) or dataset.root.startswith(r.target), where


def test_pinned_table_provides_what_the_readers_read(data_task_defs):
    glue = {path for source in GLUE_SOURCES for c in source.candidates for path in c.paths}
    nli = {
        name: {path for source in sources for c in source.candidates for path in c.paths}
        for name, sources in nli_sources(data_task_defs).items()
    }
    for dataset in CATALOG:  # every download is read by a converter
        for path in dataset.provides:
            top, rest = path.split("/", 1)
            read = glue if top == "glue" else nli[top]
            assert rest in read, f"{dataset.name}: no reader looks for {path}"
    # every GLUE task of the readers can be downloaded
    provided = {p for d in CATALOG for p in d.provides}
    for source in GLUE_SOURCES:
        assert any(f"glue/{p}" in provided for c in source.candidates for p in c.paths), source


def test_pins_match_the_files_staged_byte_for_byte(data_real_dir):
    """AX.tsv and MRPC's three files are staged unchanged: their pins must match them."""
    staged = {
        "AX.tsv": "glue/diagnostic/diagnostic.tsv",
        "msr_paraphrase_train.txt": "glue/MRPC/msr_paraphrase_train.txt",
        "msr_paraphrase_test.txt": "glue/MRPC/msr_paraphrase_test.txt",
        "mrpc_dev_ids.tsv": "glue/MRPC/dev_ids.tsv",
    }
    pins = {r.file_name: r for d in CATALOG for r in d.files}
    for name, path in staged.items():
        body = (data_real_dir / path).read_bytes()
        assert len(body) == pins[name].size, name
        assert hashlib.sha256(body).hexdigest() == pins[name].checksum, name


def test_mrpc_split_reproduces_glue_files(data_real_dir, tmp_path):
    mrpc = data_real_dir / "glue" / "MRPC"
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "dev_ids.tsv"):
        (tmp_path / name).write_bytes((mrpc / name).read_bytes())
    finish_glue_mrpc(tmp_path)
    for split in ("train", "dev", "test"):
        assert (tmp_path / f"{split}.tsv").read_bytes() == (mrpc / f"{split}.tsv").read_bytes()


def test_real_pins_end_to_end_through_a_mirror(data_real_dir, server, tmp_path):
    """The script with the real table: AX and MRPC served from a mirror, checked by real pins."""
    mrpc = data_real_dir / "glue" / "MRPC"
    server.add("/m/AX.tsv", (data_real_dir / "glue/diagnostic/diagnostic.tsv").read_bytes())
    server.add("/m/mrpc_dev_ids.tsv", (mrpc / "dev_ids.tsv").read_bytes())
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        server.add(f"/m/{name}", (mrpc / name).read_bytes())
    out = tmp_path / "raw"
    args = ["--tasks", "ax,mrpc", "--mirror", server.base + "/m/", "--output_dir", str(out)]
    proc = run_script("experiments/download_data.py", *args, "--progress", "false")
    assert proc.returncode == 0, proc.stderr
    assert (out / "glue/MRPC/dev.tsv").read_bytes() == (mrpc / "dev.tsv").read_bytes()
    assert sorted(p for p, _ in server.requests) == [
        "/m/AX.tsv",
        "/m/mrpc_dev_ids.tsv",
        "/m/msr_paraphrase_test.txt",
        "/m/msr_paraphrase_train.txt",
    ]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``script`` by path from the checkout, or ``-m module`` (run from the repo root)."""
    entry = ["-m", script[3:]] if script.startswith("-m ") else [str(REPO_ROOT / script)]
    return subprocess.run(
        [sys.executable, *entry, *args], capture_output=True, text=True, cwd=REPO_ROOT
    )


@pytest.mark.parametrize("script", ["experiments/download_data.py", "-m data_utils.download"])
def test_script_list_help_and_bad_name(script):
    listed = run_script(script, "--list")
    assert listed.returncode == 0, listed.stderr
    for dataset in CATALOG:
        assert dataset.name in listed.stdout
    assert "MNLI.zip" in listed.stdout and "298.3 MiB" in listed.stdout
    assert "total: 725.3 MiB" in listed.stdout
    only = run_script(script, "--tasks", "rte,snli", "--list", "true").stdout
    assert "RTE.zip" in only and "snli_1.0.zip" in only and "MNLI.zip" not in only
    helped = run_script(script, "--help")
    for flag in ("--output_dir", "--tasks", "--mirror", "--progress", "--allow_unverified"):
        assert flag in helped.stdout
    assert "scitail" in helped.stdout and "hans" in helped.stdout
    bad = run_script(script, "--tasks", "rte,nope", "--list")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: flags: tasks: unknown name(s) ['nope']; valid are [")


def test_select_names_and_groups():
    assert [d.name for d in select(["rte", "snli"])] == ["rte", "snli"]
    glue = [d.name for d in select(["glue"])]
    assert glue == ["cola", "sst", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "ax"]
    assert len(select(None)) == len(select(["all"])) == len(CATALOG)
    with pytest.raises(DownloadError, match="unknown name"):
        select(["rtee"])


def test_format_table_marks_unknown_checksums(server):
    dataset = toy(server, checksum=None)
    assert "UNKNOWN (needs --allow_unverified)" in format_table([dataset])


# ------------------------------------------------------- the download itself
def test_downloads_unpack_into_the_readers_layout(
    data_real_dir, data_fixtures_dir, server, tmp_path
):
    fixtures = data_fixtures_dir
    rte = folder_members(data_real_dir / "glue" / "RTE", "RTE")
    rte["__MACOSX/RTE/._train.tsv"] = b"resource fork junk"  # as macOS zips carry
    ax = (data_real_dir / "glue/diagnostic/diagnostic.tsv").read_bytes()
    snli = folder_members(fixtures / "snli", "snli_1.0")
    scitail = folder_members(fixtures / "scitail" / "SciTailV1.1", "SciTailV1.1")
    real_test = data_real_dir / "scitail/SciTailV1.1/tsv_format/scitail_1.0_test.tsv"
    scitail["SciTailV1.1/tsv_format/scitail_1.0_test.tsv"] = real_test.read_bytes()
    xnli = folder_members(fixtures / "xnli" / "XNLI-1.0", "XNLI-1.0")
    hans_train = (fixtures / "hans/heuristics_train_set.txt").read_bytes()
    hans_eval = (fixtures / "hans/heuristics_evaluation_set.txt").read_bytes()
    archives = {
        "RTE.zip": zip_bytes(rte),
        "AX.tsv": ax,
        "snli_1.0.zip": zip_bytes(snli),
        "SciTailV1.1.tar.gz": tar_gz_bytes(scitail),
        "XNLI-1.0.zip": zip_bytes(xnli),
        "heuristics_train_set.txt": hans_train,
        "heuristics_evaluation_set.txt.gz": gzip.compress(hans_eval),
    }
    url = {name: server.add(f"/official/{name}", body) for name, body in archives.items()}

    def entry(name, root, unpack, target, provides):
        return Dataset(
            name, name, root, (remote(url[name], archives[name], unpack, target),), provides
        )

    catalog = [
        entry("RTE.zip", "glue/RTE", "zip", "glue", tuple(f"glue/RTE/{s}.tsv" for s in rte_splits)),
        entry("AX.tsv", "glue/diagnostic", "file", "glue/diagnostic/diagnostic.tsv", ()),
        entry("snli_1.0.zip", "snli", "zip", "snli", ("snli/snli_1.0/snli_1.0_dev.jsonl",)),
        entry("SciTailV1.1.tar.gz", "scitail", "tar.gz", "scitail", ()),
        entry("XNLI-1.0.zip", "xnli", "zip", "xnli", ("xnli/XNLI-1.0/xnli.dev.tsv",)),
        Dataset(
            "hans",
            "hans",
            "hans",
            (
                remote(
                    url["heuristics_train_set.txt"],
                    hans_train,
                    "file",
                    "hans/heuristics_train_set.txt",
                ),
                remote(
                    url["heuristics_evaluation_set.txt.gz"],
                    archives["heuristics_evaluation_set.txt.gz"],
                    "gz",
                    "hans/heuristics_evaluation_set.txt",
                ),
            ),
            ("hans/heuristics_evaluation_set.txt",),
        ),
    ]
    out = tmp_path / "raw"
    logs: list[str] = []
    assert len(download(catalog, out, progress=False, log=logs.append)) == len(catalog)

    for split in rte_splits:
        assert (out / f"glue/RTE/{split}.tsv").read_bytes() == rte[f"RTE/{split}.tsv"]
    assert not (out / "glue/__MACOSX").exists()
    assert (out / "glue/diagnostic/diagnostic.tsv").read_bytes() == ax
    assert (out / "hans/heuristics_evaluation_set.txt").read_bytes() == hans_eval
    assert (out / "scitail/SciTailV1.1/tsv_format/scitail_1.0_test.tsv").read_bytes() == (
        real_test.read_bytes()
    )
    assert not list(out.glob(f"{DOWNLOADS}/*.part"))

    # The converters read the result as it is.
    canonical = tmp_path / "canonical"
    glue = run_script(
        "experiments/glue/glue_prepro.py",
        "--glue_dir",
        str(out / "glue"),
        "--out_dir",
        str(canonical),
    )
    assert glue.returncode == 0, glue.stderr
    nli = run_script(
        "experiments/nli/nli_prepro.py", "--data_dir", str(out), "--out_dir", str(canonical)
    )
    assert nli.returncode == 0, nli.stderr
    rows = {
        p.stem: len(p.read_text(encoding="utf-8").splitlines()) - 1 for p in canonical.glob("*.tsv")
    }
    assert rows["rte_train"] == 2490 and rows["rte_dev"] == 277 and rows["rte_test"] == 3000
    assert rows["ax_test"] == 1104
    assert rows["scitail_test"] == 2126
    assert {
        "snli_dev",
        "snli_test",
        "scitail_dev",
        "scitail_train",
        "hans_dev",
        "hans_train",
    } <= set(rows)
    assert "xnli_dev_en" in rows and "xnli_test_fr" in rows

    # A second run finds everything in place and asks the server nothing.
    before = len(server.requests)
    assert download(catalog, out, progress=False, log=logs.append) == []
    assert len(server.requests) == before


def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path):
    dataset = toy(server, checksum="0" * 64)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download([dataset], out, progress=False, log=lambda _: None)
    message = str(info.value)
    assert message.startswith("TOY.zip: sha256 mismatch: expected 0000")
    assert "deleted" in message and "/official/glue/data/TOY.zip" in message
    assert not (out / DOWNLOADS / "TOY.zip").exists()
    assert not (out / DOWNLOADS / "TOY.zip.part").exists()
    assert not (out / "glue").exists()  # nothing unpacked


def test_wrong_size_is_refused(server, tmp_path):
    good = toy(server)
    pinned = good.files[0]
    bad = Dataset(
        "toy",
        "toy",
        good.root,
        (Remote(pinned.url, "sha256", pinned.checksum, pinned.size + 1, "x", "zip", "glue"),),
        good.provides,
    )
    with pytest.raises(
        DownloadError, match=r"^TOY.zip: size mismatch: expected \d+ bytes, got \d+"
    ):
        download([bad], tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / DOWNLOADS / "TOY.zip").exists()


def test_cut_transfer_keeps_part_and_rerun_resumes_with_range(server, tmp_path):
    dataset = toy(server)
    path = "/official/glue/data/TOY.zip"
    size = dataset.files[0].size
    server.cut[path] = 70_000
    with pytest.raises(DownloadError) as info:
        download([dataset], tmp_path, progress=False, retries=0, log=lambda _: None)
    assert f"transfer cut off after 70000 of {size} bytes" in str(info.value)
    assert "rerun to resume" in str(info.value)
    part = tmp_path / DOWNLOADS / "TOY.zip.part"
    assert part.stat().st_size == 70_000
    assert not (tmp_path / DOWNLOADS / "TOY.zip").exists()
    assert not (tmp_path / "glue").exists()

    logs: list[str] = []
    assert download([dataset], tmp_path, progress=False, log=logs.append) == ["toy"]
    assert server.ranges(path) == [None, "bytes=70000-"]
    assert any("resuming at byte 70000" in line for line in logs)
    assert not part.exists()
    assert (tmp_path / "glue/TOY/train.tsv").stat().st_size == 199_936


def test_cut_transfer_is_retried_within_one_run(server, tmp_path):
    dataset = toy(server)
    path = "/official/glue/data/TOY.zip"
    server.cut[path] = 50_000
    assert download([dataset], tmp_path, progress=False, retries=1, log=lambda _: None) == ["toy"]
    assert server.ranges(path) == [None, "bytes=50000-"]


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    dataset = toy(server)
    path = "/official/glue/data/TOY.zip"
    part = tmp_path / DOWNLOADS / "TOY.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 1000)  # not a prefix of the file: appending would corrupt it
    server.ignore_range.add(path)
    logs: list[str] = []
    assert download([dataset], tmp_path, progress=False, log=logs.append) == ["toy"]
    assert server.ranges(path) == ["bytes=1000-"]
    assert any("ignored the Range request" in line for line in logs)
    assert (tmp_path / DOWNLOADS / "TOY.zip").read_bytes() == server.files[path]


def test_mirror_replaces_the_official_prefix(server, tmp_path):
    assert (
        mirror_url("https://dl.fbaipublicfiles.com/glue/data/RTE.zip", "https://proxy.example/ds/")
        == "https://proxy.example/ds/RTE.zip"
    )
    assert mirror_url("https://x.org/a/b.zip?alt=media", "http://m") == "http://m/b.zip"
    assert mirror_url("https://x.org/a/b.zip", None) == "https://x.org/a/b.zip"
    assert mirror_url("https://x.org/a/b.zip", str(tmp_path)) == (tmp_path / "b.zip").as_uri()

    dataset = toy(server)  # its official URL is /official/glue/data/TOY.zip
    server.add("/mirror/TOY.zip", server.files.pop("/official/glue/data/TOY.zip"))
    assert download(
        [dataset], tmp_path / "a", mirror=server.base + "/mirror", progress=False, log=print
    )
    assert [p for p, _ in server.requests] == ["/mirror/TOY.zip"]

    folder = tmp_path / "local-copy"
    folder.mkdir()
    (folder / "TOY.zip").write_bytes(server.files["/mirror/TOY.zip"])
    assert download([dataset], tmp_path / "b", mirror=str(folder), progress=False, log=print)
    assert (tmp_path / "b/glue/TOY/dev.tsv").read_bytes() == b"x\n"


def test_missing_file_on_the_server_names_it(server, tmp_path):
    dataset = toy(server)
    server.files.clear()
    with pytest.raises(DownloadError) as info:
        download([dataset], tmp_path, progress=False, log=lambda _: None)
    assert str(info.value) == (
        f"TOY.zip: not found on the server (HTTP 404): {server.base}/official/glue/data/TOY.zip"
    )
    with pytest.raises(DownloadError, match=r"^TOY.zip: not found in the mirror folder: "):
        download([dataset], tmp_path, mirror=str(tmp_path), progress=False, log=lambda _: None)


def test_unknown_checksum_needs_allow_unverified(server, tmp_path):
    dataset = toy(server, checksum=None)
    with pytest.raises(DownloadError, match="rerun with --allow_unverified"):
        download([dataset], tmp_path, progress=False, log=lambda _: None)
    assert server.requests == []  # refused before fetching anything
    logs: list[str] = []
    assert download([dataset], tmp_path, progress=False, allow_unverified=True, log=logs.append)
    digest = hashlib.sha256(server.files["/official/glue/data/TOY.zip"]).hexdigest()
    assert any("NOT VERIFIED" in line and digest in line for line in logs)


def test_archive_without_the_expected_files_is_not_installed(server, tmp_path):
    body = zip_bytes({"Other/train.tsv": b"a\n"})
    url = server.add("/official/RTE.zip", body)
    dataset = Dataset(
        "rte", "rte", "glue/RTE", (remote(url, body, "zip", "glue"),), ("glue/RTE/train.tsv",)
    )
    with pytest.raises(
        DownloadError, match=r"^RTE.zip: unpacked, but \['glue/RTE/train.tsv'\] is missing"
    ):
        download([dataset], tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "glue").exists()
    assert (tmp_path / DOWNLOADS / "RTE.zip").is_file()  # verified download kept for a retry


def test_unsafe_archive_member_is_refused(server, tmp_path):
    body = zip_bytes({"../escape.txt": b"a\n", "RTE/train.tsv": b"b\n"})
    url = server.add("/official/RTE.zip", body)
    dataset = Dataset("rte", "rte", "glue/RTE", (remote(url, body, "zip", "glue"),), ())
    with pytest.raises(DownloadError, match="unsafe member name '../escape.txt'"):
        download([dataset], tmp_path / "out", progress=False, log=lambda _: None)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out/escape.txt").exists()
