"""Shared fixtures: the real offline embedder (loaded once), settings in a temp data dir, both store backends."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from retrieval.embedders import UseMultilingualEmbedder  # noqa: E402
from retrieval.index import KnowledgeIndex  # noqa: E402
from retrieval.settings import Settings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
XQUAD_DEV = SHARED / "data" / "xquad-tr-dev"
DBANK = SHARED / "data" / "dbank"


@pytest.fixture(scope="session")
def use_embedder() -> UseMultilingualEmbedder:
    return UseMultilingualEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(params=["edge", "server-local"])
def index(
    request: pytest.FixtureRequest, tmp_path: Path, use_embedder: UseMultilingualEmbedder
) -> Iterator[KnowledgeIndex]:
    """A real index on each backend: Qdrant Edge on disk, and qdrant-client's local mode for the server path."""
    if request.param == "edge":
        s = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    else:
        s = Settings(  # type: ignore[call-arg]
            data_dir=tmp_path / "data",
            store="server",
            qdrant_url=f"local:{tmp_path / 'qdrant'}",
            _env_file=None,
        )
    idx = KnowledgeIndex(s, embedder=use_embedder)
    yield idx
    idx.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
