"""Shared fixtures: the real embedded store, the real offline model, a real MCP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite exercises every tool: its servers and daemons list all of them unless a test picks
# toolsets itself (tests/mcp/test_toolsets.py, and any test that proves the default set).
os.environ.setdefault("CONTEXTD_TOOLSETS", "all")

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.container import Container, build
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import connected
from contextd_mcp.paths import DataPaths
from contextd_mcp.settings import DEFAULT_MODEL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> FastEmbedEmbedder:
    """The real default model, loaded once per test session (about 1 s)."""
    return FastEmbedEmbedder(DEFAULT_MODEL, model_cache)


@pytest.fixture
def container(tmp_path: Path, embedder: FastEmbedEmbedder) -> Iterator[Container]:
    built = build(DataPaths(tmp_path / "data"), embedder=embedder)
    yield built
    built.close()


SCOPE_A = Scope(tenant="acme", team="core", project="api")


@pytest.fixture
async def client(container: Container) -> AsyncIterator[object]:
    """An MCP SDK client connected in-process, acting as a caller in SCOPE_A."""
    
    async with connected(container, Caller(scope=SCOPE_A, transport="memory")) as client:
        yield client
