"""MemoryService directly, on the real store and model."""

from __future__ import annotations

from contextd_mcp.container import Container
from contextd_mcp.models.requests import SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope

SCOPE = Scope(tenant="t", team="x", project="p")


def test_store_many_batches_and_dedupes(container: Container) -> None:
    requests = [StoreMemory(title=f"Lesson {i}", content=f"Fact number {i} about caching.") for i in range(5)]
    requests.append(StoreMemory(title="Lesson 0", content="Fact number 0 about caching."))
    stored = container.memory.store_many(SCOPE, requests)
    assert len(stored) == 6 and len({s.id for s in stored[:5]}) == 5
    assert stored[5].id == stored[0].id and stored[5].duplicate_of_existing
    again = container.memory.store(SCOPE, requests[3])
    assert again.id == stored[3].id and again.duplicate_of_existing
    assert container.memory.counts(SCOPE) == 5
    hits = container.memory.search(SCOPE, SearchMemories(query="fact number 3 about caching", limit=1))
    assert hits[0].id == stored[3].id
