"""How one memory_search spends its time (real store and model; BENCHMARKS.md "Session 8: memory")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.container import Container, build
from contextd_mcp.models.requests import SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.embedder import Embedder

A = Scope(tenant="acme", team="core", project="api")
LESSON = StoreMemory(
    title="Wrap each test in a nested transaction that rolls back",
    content="A session-scoped db fixture shared one transaction, so tests depended on order. "
    "Use a function-scoped fixture with conn.begin_nested() and roll back on teardown.",
)
OTHERS = [
    StoreMemory(title="Freeze time in tests that compare timestamps", content="Tests comparing datetime.now() flaked at midnight; use freezegun."),
    StoreMemory(title="Use a tmp_path per test instead of a shared directory", content="Tests writing to /tmp/out collided under xdist."),
]
# How long each query embedding is made to take: far above an engine call (about 1-3 ms).
EMBED_S = 0.3


class SlowQueries:
    """The real model, with every query embedding taking at least ``EMBED_S`` and its span kept."""

    def __init__(self, model: Embedder) -> None:
        self._model = model
        self.spans: list[tuple[float, float]] = []

    @property
    def model_name(self) -> str:
        return self._model.model_name

    @property
    def dim(self) -> int:
        return self._model.dim

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        started = time.monotonic()
        vector = self._model.embed_query(text)
        time.sleep(max(0.0, EMBED_S - (time.monotonic() - started)))
        self.spans.append((started, time.monotonic()))
        return vector


@pytest.fixture
def slow(store_dir: Path, embeddings: Embedder) -> Iterator[tuple[Container, SlowQueries]]:
    embedder = SlowQueries(embeddings)
    built = build(DataPaths(store_dir), embedder=embedder)
    yield built, embedder
    built.close()


def _spy(container: Container, name: str, spans: list[tuple[str, float, float]]) -> None:
    """Records when the real store's ``name`` ran (by which thread); the store still answers."""
    real = getattr(container.store, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return real(*args, **kwargs)
        finally:
            spans.append((threading.current_thread().name, started, time.monotonic()))

    setattr(container.store, name, recorded)


def test_the_lexical_half_of_a_search_runs_while_its_query_is_embedded(slow: tuple[Container, SlowQueries]) -> None:
    container, embedder = slow
    lesson = container.memory.store(A, LESSON).id
    container.memory.store_many(A, OTHERS)
    sparse: list[tuple[str, float, float]] = []
    dense: list[tuple[str, float, float]] = []
    _spy(container, "sparse_search", sparse)
    _spy(container, "search", dense)
    started = time.monotonic()
    hits = container.memory.search(A, SearchMemories(query="tests depend on order: roll back a nested transaction"))
    took = time.monotonic() - started
    assert hits[0].id == lesson
    ((_, embed_end),) = embedder.spans
    # The terms were matched on another thread, done before the embedding was; the vector search
    # could only start once the vector existed.
    assert len(sparse) == 1 and sparse[0][0] != threading.current_thread().name
    assert sparse[0][2] <= embed_end, (sparse, embedder.spans)
    assert len(dense) == 1 and dense[0][1] >= embed_end
    assert took < EMBED_S + 0.25, took


def test_a_search_whose_lexical_half_fails_reports_the_failure(
    slow: tuple[Container, SlowQueries], monkeypatch: pytest.MonkeyPatch
) -> None:
    container, _ = slow
    container.memory.store_many(A, [LESSON, *OTHERS])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("sparse index unreadable")

    monkeypatch.setattr(container.store, "sparse_search", broken)
    with pytest.raises(RuntimeError, match="sparse index unreadable"):
        container.memory.search(A, SearchMemories(query="tests depend on order"))
    # The pool is not stuck behind the failure: the next search runs its lexical half again.
    monkeypatch.undo()
    assert container.memory.search(A, SearchMemories(query="roll back a nested transaction"))
