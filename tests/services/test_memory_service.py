"""MemoryService directly, on the real store and model."""

from __future__ import annotations

from contextd_mcp.container import Container
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, SearchMemories, StoreMemory
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


def test_the_same_text_in_another_scope_is_another_memory(container: Container) -> None:
    request = StoreMemory(title="Pin the base image", content="Use a digest, not a tag, for the base image.")
    ours = container.memory.store(SCOPE, request)
    other_scope = Scope(tenant="other", team="x", project="p")
    theirs = container.memory.store(other_scope, request)
    assert theirs.id != ours.id and not theirs.duplicate_of_existing
    container.memory.feedback(other_scope, MemoryFeedback(memory_id=theirs.id, helpful=False))
    mine = container.memory.get(SCOPE, GetMemory(memory_id=ours.id))
    assert mine.unhelpful_count == 0 and container.memory.counts(SCOPE) == 1
