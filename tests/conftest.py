"""Shared fixtures: the real offline embedder (loaded once), settings in a temp data dir, both store backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from retrieval.embedders import UseMultilingualEmbedder  # noqa: E402
from retrieval.index import KnowledgeIndex  # noqa: E402
from retrieval.settings import Settings  # noqa: E402
from tests.postgres_support import empty_postgres, needs_postgres  # noqa: E402

# The datasets ship with the tests (licences in tests/data/README.md), so a fresh clone needs nothing beside it.
DATA = Path(__file__).resolve().parent / "data"
XQUAD_DEV = DATA / "xquad-tr-dev"
DBANK = DATA / "dbank"
SHOP_TR_DEV = DATA / "shop-tr-dev"


@pytest.fixture(scope="session")
def use_embedder() -> UseMultilingualEmbedder:
    return UseMultilingualEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The registry's database, once on each backend: a SQLite file in the test's temp dir (where
    Settings puts it by default), and the test PostgreSQL emptied (tests/postgres_support.py)."""
    if request.param == "postgresql":
        return empty_postgres()
    return f"sqlite:///{(tmp_path / 'data' / 'registry.sqlite3').resolve()}"


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


def wait_for_exit(pid: int, timeout_s: float = 15) -> bool:
    """Return True once process `pid` has exited (a zombie counts as exited), False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.2)
    return False


def child_of_killed_parent(script: str, folder: Path) -> int:
    """Run `script` (it prints the pid of a child process it started) as a parent process, SIGKILL the
    parent once the pid is printed, and return that child's pid. The script runs as __main__ from a file,
    so it may start children with `spawn`."""
    path = folder / "parent.py"
    path.write_text(script, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    parent = subprocess.Popen(
        [sys.executable, str(path)], cwd=root, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)  # no shutdown code runs in the parent
        parent.wait()
        return child
    finally:
        parent.kill()
