"""Shared fixtures: the real embedded store, the real offline model, a real MCP client."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite exercises every tool: its servers and daemons list all of them unless a test picks
# toolsets itself (tests/mcp/test_toolsets.py, and any test that proves the default set).
os.environ.setdefault("CONTEXTD_TOOLSETS", "all")
# One onnxruntime thread per inference: the suite runs two worker processes (and their daemons)
# on two cores, where a second intra-op thread mostly spins: it doubled the CPU of each short
# embedding (BENCHMARKS.md "Session 8: the fast suite"). Vectors are the model's either way.
os.environ.setdefault("CONTEXTD_EMBEDDING_THREADS", "1")

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.container import Container, build
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from tests import zygote
from tests.helpers import connected
from tests.memo_embedder import MemoEmbedder
from contextd_mcp.paths import DataPaths, default_cache_dir
from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings


def pytest_configure(config: pytest.Config) -> None:
    """The suite's daemons and CLI commands start from a fork server (tests/zygote.py)."""
    zygote.in_use = True


def pytest_unconfigure(config: pytest.Config) -> None:
    """After every fixture's teardown: the worker's zygote (tests/zygote.py) ends with its children."""
    zygote.finish()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The per-user model cache the daemons of the suite use too (they inherit HOME).

    A fresh directory per session made every xdist worker rebuild the int8-kernel model (~10 s
    of CPU each, more under load) although the product builds it once per user. The build itself
    is tested in a new home of its own (tests/e2e/test_cli_quiet.py) and for its fallback
    (tests/adapters/test_embedder.py)."""
    return default_cache_dir() / "models"


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> FastEmbedEmbedder:
    """The real default model, loaded once per test session (about 1 s), shared by every container of the session."""
    return FastEmbedEmbedder(DEFAULT_MODEL, model_cache, threads=EmbeddingSettings().threads)


def _ram_disk() -> Path | None:
    """A RAM-backed file system (/dev/shm), when the machine has one.

    The store is the real embedded Qdrant writing real files either way; on disk, creating a
    data directory's nine collections and flushing them at close is fsync-bound: 2.6 s + 1.1 s a
    test on this machine under load, against 0.4 s + 0.01 s in RAM (bench/bench_test_setup.py).
    Only in-process stores go there: daemons, projects and the sandbox's view stay on disk.
    """
    shm = Path("/dev/shm")
    try:
        mounts = Path("/proc/mounts").read_text().split("\n")
    except OSError:
        return None
    on_tmpfs = any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts if len(line.split()) > 2)
    return shm if on_tmpfs and os.access(shm, os.W_OK) else None


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for an in-process container's data: in RAM when possible, else tmp_path."""
    ram = _ram_disk()
    if ram is None:
        yield tmp_path / "data"
        return
    root = Path(tempfile.mkdtemp(prefix="contextd-test-", dir=ram))
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def embeddings(embedder: FastEmbedEmbedder) -> MemoEmbedder:
    """The session's model behind a memo of the texts it has embedded (tests/memo_embedder.py)."""
    return MemoEmbedder(embedder)


@pytest.fixture
def container(store_dir: Path, embeddings: MemoEmbedder) -> Iterator[Container]:
    """A whole container on the session's model (its vectors memoised per text); a fresh store
    and audit log for each test."""
    built = build(DataPaths(store_dir), embedder=embeddings)
    yield built
    built.close()


SCOPE_A = Scope(tenant="acme", team="core", project="api")


@pytest.fixture
async def client(container: Container) -> AsyncIterator[object]:
    """An MCP SDK client connected in-process, acting as a caller in SCOPE_A."""
    
    async with connected(container, Caller(scope=SCOPE_A, transport="memory")) as client:
        yield client
