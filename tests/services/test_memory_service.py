"""MemoryService directly, on the real store and model."""

from __future__ import annotations

from contextd_mcp.container import Container
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope

SCOPE = Scope(tenant="t", team="x", project="p")


def test_store_many_batches_and_dedupes(container: Container) -> None:
    # Five memories that differ in what they are about, not only in a digit: which of five
    # texts differing in one digit ranks first is the model's noise, not the search's.
    topics = ["redis", "memcached", "varnish", "a CDN edge", "the browser"]
    requests = [StoreMemory(title=f"Lesson {i}", content=f"Fact number {i} about caching in {t}.") for i, t in enumerate(topics)]
    requests.append(StoreMemory(title="Lesson 0", content="Fact number 0 about caching in redis."))
    stored = container.memory.store_many(SCOPE, requests)
    assert len(stored) == 6 and len({s.id for s in stored[:5]}) == 5
    assert stored[5].id == stored[0].id and stored[5].duplicate_of_existing
    again = container.memory.store(SCOPE, requests[3])
    assert again.id == stored[3].id and again.duplicate_of_existing
    assert container.memory.counts(SCOPE) == 5
    hits = container.memory.search(SCOPE, SearchMemories(query="caching at a CDN edge", limit=1))
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


def test_a_ratings_comment_is_kept_scrubbed_in_the_memorys_history(container: Container) -> None:
    """memory_feedback accepted a comment and dropped it (issue 18): now the history keeps it."""
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.services.memory import COLLECTION

    stored = container.memory.store(SCOPE, StoreMemory(title="Pin pip", content="Pin pip to 24 in CI."))
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    comment = f"outdated since pip 25; the CI token was {secret}"
    container.memory.feedback(SCOPE, MemoryFeedback(memory_id=stored.id, helpful=False, comment=comment))
    container.memory.reinforce(SCOPE, stored.id)  # learned again: the same history, no comment
    events = Stores(container.store).of(SCOPE).get(COLLECTION, [stored.id])[0].payload["events"]
    assert [e["kind"] for e in events] == ["unhelpful_count", "reinforced_count"]
    assert events[0]["comment"].startswith("outdated since pip 25") and secret not in events[0]["comment"]
    assert "comment" not in events[1]
    assert container.memory.get(SCOPE, GetMemory(memory_id=stored.id)).unhelpful_count == 1
