"""The official release files of every dataset the project reads, with pinned sizes and checksums.

One :class:`Dataset` per ``mtdnn-download --tasks`` name. Each lists the
files to fetch (:class:`Remote`: URL, checksum, size, where those values come
from, how to unpack) and the files it must leave behind (``provides``, paths
under the output folder), which are exactly the paths the readers in
:mod:`data_utils.sources` look for. The downloader refuses a file whose size
or checksum differs from the pin, and a file without a pin unless the user
passes ``--allow_unverified``.

Where the values come from (copied from public code, not computed here: the
official hosts could not be reached when this table was written):

- ``HF`` = huggingface/datasets ``datasets/<name>/dataset_infos.json``
  (``download_checksums``: ``num_bytes`` and sha256), at the commits named in
  each entry. The same sha256 values are pinned independently by other public
  projects (e.g. Transformers.jl DataDeps for GLUE/SNLI/MultiNLI/SciTail/XNLI,
  ParlAI for SNLI/MultiNLI), which is noted where it was seen.
- Four pins are also checked byte for byte against the copies staged in
  ``../shared/data`` (MRPC's three source files and AX.tsv), by
  ``tests/test_download.py``.

Every file name (the last URL path segment) is unique, so a mirror can be one
flat folder: see :func:`data_utils.download.mirror_url`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Checksum kinds the downloader can verify, with the length of their hex digest.
CHECKSUM_KINDS = {"sha256": 64, "md5": 32}

# How a downloaded file becomes files on disk (see data_utils.download.UNPACKERS).
UNPACK_KINDS = ("zip", "tar.gz", "gz", "file")


@dataclass(frozen=True)
class Remote:
    """One file on a server.

    ``checksum=None`` means "not known": the entry must then say why in
    ``source``, and the downloader uses the file only with ``allow_unverified``.
    ``target`` is relative to the output folder: the folder a ``zip``/``tar.gz``
    is extracted into, or the file a ``gz``/``file`` becomes.
    """

    url: str
    checksum_kind: str  # key of CHECKSUM_KINDS
    checksum: str | None  # lower-case hex digest; None = unknown
    size: int | None  # bytes; None = unknown
    source: str  # where url, checksum and size were taken from
    unpack: str  # one of UNPACK_KINDS
    target: str

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Dataset:
    """What ``--tasks NAME`` fetches and what it leaves on disk.

    ``root`` (relative to the output folder) is owned by this dataset: it is
    built aside and swapped in whole, so a reader never sees half of it.
    ``finish`` names a step of :data:`data_utils.download.FINISHERS` run after
    unpacking (MRPC's train/dev split, as GLUE's own download script does it).
    """

    name: str
    title: str
    root: str
    files: tuple[Remote, ...]
    provides: tuple[str, ...]
    finish: str | None = None
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)  # groups usable in --tasks


_HF = "huggingface/datasets datasets/{}/dataset_infos.json @ {}"
_HF_2021 = "040102f100964a33fd334e2695f1c493fa6b92db"
_HF_XNLI = "0006d14cecbac8ac58265977ecdb3aea8cdd97c6"
_GLUE_BASE = "https://dl.fbaipublicfiles.com/glue/data/"


def _glue_zip(
    name: str,
    folder: str,
    archive: str,
    size: int,
    sha256: str,
    splits: tuple[str, ...],
) -> Dataset:
    return Dataset(
        name=name,
        title=f"GLUE {folder}",
        root=f"glue/{folder}",
        files=(
            Remote(
                url=_GLUE_BASE + archive,
                checksum_kind="sha256",
                checksum=sha256,
                size=size,
                source=_HF.format("glue", _HF_2021)
                + " (Transformers.jl's GLUE DataDeps pin the same sha256)",
                unpack="zip",
                target="glue",
            ),
        ),
        provides=tuple(f"glue/{folder}/{split}.tsv" for split in splits),
        tags=("glue",),
    )


_TRAIN_DEV_TEST = ("train", "dev", "test")

CATALOG: tuple[Dataset, ...] = (
    _glue_zip(
        "cola",
        "CoLA",
        "CoLA.zip",
        376971,
        "f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff",
        _TRAIN_DEV_TEST,
    ),
    _glue_zip(
        "sst",
        "SST-2",
        "SST-2.zip",
        7439277,
        "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa",
        _TRAIN_DEV_TEST,
    ),
    Dataset(
        name="mrpc",
        title="GLUE MRPC (Microsoft's files as hosted for SentEval, split as GLUE does)",
        root="glue/MRPC",
        files=(
            Remote(
                url="https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt",
                checksum_kind="sha256",
                checksum="60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89",
                size=1047044,
                source=_HF.format("glue", _HF_2021)
                + "; equals ../shared/data/glue/MRPC/msr_paraphrase_train.txt",
                unpack="file",
                target="glue/MRPC/msr_paraphrase_train.txt",
            ),
            Remote(
                url="https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt",
                checksum_kind="sha256",
                checksum="a04e271090879aaba6423d65b94950c089298587d9c084bf9cd7439bd785f784",
                size=441275,
                source=_HF.format("glue", _HF_2021)
                + "; equals ../shared/data/glue/MRPC/msr_paraphrase_test.txt",
                unpack="file",
                target="glue/MRPC/msr_paraphrase_test.txt",
            ),
            Remote(
                url=_GLUE_BASE + "mrpc_dev_ids.tsv",
                checksum_kind="sha256",
                checksum="971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7",
                size=6222,
                source=_HF.format("glue", _HF_2021)
                + "; equals ../shared/data/glue/MRPC/dev_ids.tsv",
                unpack="file",
                target="glue/MRPC/dev_ids.tsv",
            ),
        ),
        provides=tuple(f"glue/MRPC/{split}.tsv" for split in _TRAIN_DEV_TEST),
        finish="glue_mrpc",
        note="train.tsv/dev.tsv/test.tsv are derived locally with GLUE's download_glue_data.py "
        "procedure (dev = the pairs listed in dev_ids.tsv)",
        tags=("glue",),
    ),
    _glue_zip(
        "qqp",
        "QQP",
        "QQP-clean.zip",
        41696084,
        "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0",
        _TRAIN_DEV_TEST,
    ),
    _glue_zip(
        "stsb",
        "STS-B",
        "STS-B.zip",
        802872,
        "e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85",
        _TRAIN_DEV_TEST,
    ),
    _glue_zip(
        "mnli",
        "MNLI",
        "MNLI.zip",
        312783507,
        "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633",
        ("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"),
    ),
    _glue_zip(
        "qnli",
        "QNLI",
        "QNLIv2.zip",
        10627589,
        "e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5",
        _TRAIN_DEV_TEST,
    ),
    _glue_zip(
        "rte",
        "RTE",
        "RTE.zip",
        697150,
        "6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee",
        _TRAIN_DEV_TEST,
    ),
    _glue_zip(
        "wnli",
        "WNLI",
        "WNLI.zip",
        28999,
        "ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46",
        _TRAIN_DEV_TEST,
    ),
    Dataset(
        name="ax",
        title="GLUE diagnostic (AX)",
        root="glue/diagnostic",
        files=(
            Remote(
                url=_GLUE_BASE + "AX.tsv",
                checksum_kind="sha256",
                checksum="0e13510b1bb14436ff7e2ee82338f0efb0133ecf2e73507a697dc210db3f05fd",
                size=222257,
                source=_HF.format("glue", _HF_2021)
                + "; equals ../shared/data/glue/diagnostic/diagnostic.tsv",
                unpack="file",
                # the name GLUE's download_glue_data.py gave it
                target="glue/diagnostic/diagnostic.tsv",
            ),
        ),
        provides=("glue/diagnostic/diagnostic.tsv",),
        tags=("glue",),
    ),
    Dataset(
        name="snli",
        title="SNLI 1.0",
        root="snli",
        files=(
            Remote(
                url="https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
                checksum_kind="sha256",
                checksum="afb3d70a5af5d8de0d9d81e2637e0fb8c22d1235c2749d83125ca43dab0dbd3e",
                size=94550081,
                source=_HF.format("snli", _HF_2021)
                + " (also pinned by ParlAI and Transformers.jl)",
                unpack="zip",
                target="snli",
            ),
        ),
        provides=tuple(f"snli/snli_1.0/snli_1.0_{split}.jsonl" for split in _TRAIN_DEV_TEST),
        tags=("nli",),
    ),
    Dataset(
        name="multinli",
        title="MultiNLI 1.0 (the original release, with genres and parses)",
        root="multinli",
        files=(
            Remote(
                url="https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip",
                checksum_kind="sha256",
                checksum="049f507b9e36b1fcb756cfd5aeb3b7a0cfcb84bf023793652987f7e7e0957822",
                size=226850426,
                source=_HF.format("multi_nli", _HF_2021)
                + " (ParlAI and Transformers.jl pin the same sha256 for the www.nyu.edu copy)",
                unpack="zip",
                target="multinli",
            ),
        ),
        provides=tuple(
            f"multinli/multinli_1.0/multinli_1.0_{split}.jsonl"
            for split in ("train", "dev_matched", "dev_mismatched")
        ),
        note="read by mtdnn-nli-prepro as the mnli task's train/dev_matched/dev_mismatched "
        "(uid: pairID); GLUE's MNLI.zip (`--tasks mnli`) has the same pairs plus the "
        "unlabelled test sets",
        tags=("nli",),
    ),
    Dataset(
        name="scitail",
        title="SciTail 1.1",
        root="scitail",
        files=(
            Remote(
                # HF pins http://data.allenai.org.s3.amazonaws.com/downloads/SciTailV1.1.zip;
                # the same S3 object over https (the bucket name has dots, so only the
                # path-style address has a valid certificate).
                url="https://s3-us-west-2.amazonaws.com/data.allenai.org/downloads/SciTailV1.1.zip",
                checksum_kind="sha256",
                checksum="3fccd37350a94ca280b75998568df85fc2fc62843a3198d644fcbf858e6943d5",
                size=14174621,
                source=_HF.format("scitail", _HF_2021)
                + " for the http:// virtual-host address of the same S3 object (also pinned "
                "by Transformers.jl); the https path-style address is used here",
                unpack="zip",
                target="scitail",
            ),
        ),
        provides=tuple(
            f"scitail/SciTailV1.1/tsv_format/scitail_1.0_{split}.tsv" for split in _TRAIN_DEV_TEST
        ),
        tags=("nli",),
    ),
    Dataset(
        name="xnli",
        title="XNLI 1.0 (dev and test, 15 languages)",
        root="xnli",
        files=(
            Remote(
                url="https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip",
                checksum_kind="sha256",
                checksum="4ba1d5e1afdb7161f0f23c66dc787802ccfa8a25a3ddd3b165a35e50df346ab1",
                size=17865352,
                source=_HF.format("xnli", _HF_XNLI) + " (also pinned by Transformers.jl)",
                unpack="zip",
                target="xnli",
            ),
        ),
        provides=("xnli/XNLI-1.0/xnli.dev.tsv", "xnli/XNLI-1.0/xnli.test.tsv"),
        tags=("nli",),
    ),
    Dataset(
        name="hans",
        title="HANS",
        root="hans",
        files=tuple(
            Remote(
                # HF fetches .../hans/master/...; the commit is pinned here so that the URL
                # cannot move under the checksum (same bytes: the sha256 is HF's).
                url="https://raw.githubusercontent.com/tommccoy1/hans/"
                f"7299f6f657089ce06a0f98e7e81f8d0f5b7741ce/{name}",
                checksum_kind="sha256",
                checksum=sha256,
                size=size,
                source=_HF.format("hans", _HF_2021)
                + " for the master-branch URL; commit 7299f6f6 is the one the staged "
                "../shared/data files came from",
                unpack="file",
                target=f"hans/{name}",
            )
            for name, size, sha256 in (
                (
                    "heuristics_train_set.txt",
                    15485296,
                    "49245bd5fdb0b185dcbfbf48f0f16513c62ad5bc9fad0b8800dc48d6818ee5cf",
                ),
                (
                    "heuristics_evaluation_set.txt",
                    15462062,
                    "c55b62feef9913070e88f38938dc2492018c945ac81f70139346472494124e79",
                ),
            )
        ),
        provides=("hans/heuristics_train_set.txt", "hans/heuristics_evaluation_set.txt"),
        tags=("nli",),
    ),
)
