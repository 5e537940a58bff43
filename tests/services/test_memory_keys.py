"""Memory keys: found by any key, taught by feedback, scoped like the memory (real store and model)."""

from __future__ import annotations

import json
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contextd_mcp import limits
from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.container import Container, build
from contextd_mcp.errors import InvalidInput
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, MemoryOutcome, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import KEYED, KEYS_VERSION
from contextd_mcp.services.error_text import term_index
from contextd_mcp.services.content_ids import content_id, digest
from contextd_mcp.services.memory import key_texts
from contextd_mcp.services.memory_keys import (
    KEYS, KeyFlags, KeyKind, LegacyKeys, find, free_slots, key_id, key_of, key_records, key_sparse, legacy_key_id,
    query_sparse, slot_of,
)
from contextd_mcp.services.memory_rekey import MemoryRekey

A = Scope(tenant="acme", team="core", project="api")
B = Scope(tenant="other", team="core", project="api")
LEGACY = Path(__file__).parents[1] / "data" / "legacy_store" / "memories-aa7b155.tgz"

LESSON = StoreMemory(
    title="Wrap each test in a nested transaction that rolls back",
    content="A session-scoped db fixture shared one transaction, so tests depended on order. "
    "Use a function-scoped fixture with conn.begin_nested() and roll back on teardown.",
)
DISTRACTORS = [
    StoreMemory(title="Module-level mutable default made tests order-dependent", content="def f(items=[]) shared a list across tests; use None."),
    StoreMemory(title="Freeze time in tests that compare timestamps", content="Tests comparing datetime.now() flaked at midnight; use freezegun."),
    StoreMemory(title="Reset the global registry between tests", content="A plugin registry kept entries from earlier tests; clear it in an autouse fixture."),
    StoreMemory(title="Use a tmp_path per test instead of a shared directory", content="Tests writing to /tmp/out collided when run in parallel with xdist."),
]


def rank_of(container: Container, scope: Scope, query: str, memory_id: str) -> int | None:
    hits = container.memory.search(scope, SearchMemories(query=query, limit=10, min_confidence=0.0))
    ids = [h.id for h in hits]
    return ids.index(memory_id) + 1 if memory_id in ids else None


def keys_of(container: Container, scope: Scope, memory_id: str, kind: str) -> list[dict[str, object]]:
    records = Stores(container.store).of(scope).scan(KEYS, 100, match={"memory_id": memory_id, "kind": kind})
    return [r.payload for r in records]


def test_applies_when_phrases_find_a_memory_in_the_agents_words(container: Container) -> None:
    situated = LESSON.model_copy(update={"applies_when": ["integration tests only pass one file at a time"]})
    plain = container.memory.store(A, LESSON).id
    container.memory.store_many(A, DISTRACTORS)
    query = "my integration tests pass only when I run each file by itself"
    before = rank_of(container, A, query, plain)
    other = container.memory.store(B, situated).id  # same text, another tenant, with the situation
    container.memory.store_many(B, DISTRACTORS)
    assert rank_of(container, B, query, other) == 1
    # Without the situation the lesson is not the first answer to that query.
    assert before is None or before > 1
    assert container.memory.get(B, GetMemory(memory_id=other)).applies_when == situated.applies_when


def test_helpful_feedback_teaches_the_query_and_only_in_its_tenant(container: Container) -> None:
    in_a = container.memory.store(A, LESSON).id
    in_b = container.memory.store(B, LESSON).id
    container.memory.store_many(A, DISTRACTORS)
    container.memory.store_many(B, DISTRACTORS)
    phrasing_a = "integration tests only go green when I run them one file at a time"
    phrasing_b = "the suite passes test by test but fails when run all together"
    before_a, before_b = rank_of(container, A, phrasing_b, in_a), rank_of(container, B, phrasing_b, in_b)
    search_id, hits = container.memory.search_logged(A, SearchMemories(query=phrasing_a, limit=10), "conn-1")
    assert in_a in [h.id for h in hits]
    container.memory.feedback(A, MemoryFeedback(memory_id=in_a, helpful=True), "conn-1")  # attributed, no id
    learned = keys_of(container, A, in_a, "learned")
    assert [k["text"] for k in learned] == [phrasing_a]
    after_a = rank_of(container, A, phrasing_b, in_a)
    assert after_a == 1 and (before_a is None or before_a >= after_a)
    # Tenant B's identical memory learned nothing and ranks as it did.
    assert keys_of(container, B, in_b, "learned") == []
    assert rank_of(container, B, phrasing_b, in_b) == before_b
    events = container.store.get("memories", [in_a], {})[0].payload["events"]
    assert events[-1]["helpful"] is True and events[-1]["query"] == phrasing_a and events[-1]["search_id"] == search_id


def test_unhelpful_feedback_demotes_only_near_its_query(container: Container) -> None:
    mid = container.memory.store(A, LESSON).id
    container.memory.store_many(A, DISTRACTORS)
    wrong_for = "tests fail at midnight when comparing timestamps of nested transactions"
    elsewhere = "integration tests pass alone but fail together because of a shared db fixture"
    assert rank_of(container, A, elsewhere, mid) == 1
    baseline = rank_of(container, A, wrong_for, mid)
    assert baseline is not None
    search_id, _ = container.memory.search_logged(A, SearchMemories(query=wrong_for, limit=10), "c")
    container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=False, search_id=search_id))
    assert len(keys_of(container, A, mid, "negative")) == 1
    demoted = rank_of(container, A, wrong_for, mid)
    assert demoted is None or demoted > baseline
    assert rank_of(container, A, elsewhere, mid) == 1  # a different need still finds it first


def test_learned_keys_are_capped_deduplicated_and_scrubbed(container: Container) -> None:
    mid = container.memory.store(A, LESSON).id
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    queries = [f"flaky tests number {i} of {topic}" for i, topic in enumerate(
        ["postgres fixtures", "kafka consumers", "redis locks", "s3 uploads", "grpc streams", "celery beat",
         "oauth tokens", "css grid", "webpack chunks", "terraform state", "helm charts"])]
    queries[0] += f" token {secret}"
    for query in [*queries, queries[3]]:  # the repeat is a duplicate, not a new key
        container.memory.search_logged(A, SearchMemories(query=query, limit=10, min_confidence=0.0), "c")
        container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    learned = keys_of(container, A, mid, "learned")
    assert len(learned) == limits.LEARNED_KEYS_MAX
    assert all(secret not in str(k["text"]) for k in learned)
    payload = container.store.get("memories", [mid], {})[0].payload
    assert payload["helpful_count"] == len(queries) + 1  # confidence still counts every rating
    assert all(secret not in str(e) for e in payload["events"])
    assert payload["events"][-1]["key"] == "known"


def test_events_are_capped(container: Container) -> None:
    mid = container.memory.store(A, LESSON).id
    for i in range(limits.MEMORY_EVENTS_MAX + 3):
        container.memory.outcome(A, MemoryOutcome(memory_id=mid, succeeded=i % 2 == 0))
    events = container.store.get("memories", [mid], {})[0].payload["events"]
    assert len(events) == limits.MEMORY_EVENTS_MAX


def test_a_search_id_of_another_tenant_or_without_the_memory_is_refused(container: Container) -> None:
    in_a = container.memory.store(A, LESSON).id
    in_b = container.memory.store(B, LESSON).id
    search_b, _ = container.memory.search_logged(B, SearchMemories(query="nested transaction fixture"), "c")
    with pytest.raises(InvalidInput, match="search_id"):
        container.memory.feedback(A, MemoryFeedback(memory_id=in_a, helpful=True, search_id=search_b))
    with pytest.raises(InvalidInput, match="search_id"):
        container.memory.feedback(A, MemoryFeedback(memory_id=in_a, helpful=True, search_id="0" * 32))
    other = container.memory.store(B, DISTRACTORS[0]).id
    search_b2, hits = container.memory.search_logged(B, SearchMemories(query="nested transaction fixture", limit=1), "c")
    assert [h.id for h in hits] == [in_b]
    with pytest.raises(InvalidInput, match="did not return"):
        container.memory.feedback(B, MemoryFeedback(memory_id=other, helpful=True, search_id=search_b2))
    assert keys_of(container, A, in_a, "learned") == [] and keys_of(container, B, other, "learned") == []


def test_a_store_written_by_the_previous_version_is_rekeyed(tmp_path: Path, embedder: FastEmbedEmbedder) -> None:
    """tests/data/legacy_store: the memories collection as aa7b155 wrote it (3 memories in
    acme/core/api, 1 in other/t/p), with no key points."""
    data = tmp_path / "data"
    with tarfile.open(LEGACY) as tar:
        tar.extractall(tmp_path, filter="data")
    container = build(DataPaths(data), embedder=embedder)
    try:
        query = "CI broke after the database container image moved to a new major version"
        assert container.memory.search(A, SearchMemories(query=query)) == []  # no keys yet
        keyed = MemoryRekey(container.memory, Stores(container.store), AcrossScopes(container.store)).run()
        assert keyed == 4
        hits = container.memory.search(A, SearchMemories(query=query))
        assert hits[0].title == "Pin the Postgres image tag in CI" and len(hits) == 3
        # Each memory's keys were written in its own scope: acme never sees the other tenant's.
        other = container.memory.search(Scope(tenant="other", team="t", project="p"), SearchMemories(query="pinning"))
        assert [h.title for h in other] == ["Other tenant lesson"]
        again = MemoryRekey(container.memory, Stores(container.store), AcrossScopes(container.store)).run()
        assert again == 0
    finally:
        container.close()


class _CountedScans(AcrossScopes):
    """The real cross-scope reads, counted, with the payload fields each one returned."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.scans: list[set[str]] = []
        self.reads: list[int] = []

    def scan(self, *args: Any, **kwargs: Any) -> list[Record]:
        page = super().scan(*args, **kwargs)
        self.scans.append({k for r in page for k in r.payload})
        self.reads.append(len(page))
        return page


def test_the_rekey_sweep_reads_batches_once_and_no_content(container: Container) -> None:
    """Memories stored in batches share one timestamp (imports, distillation): the sweep widens
    its page to get past a batch, and must keep it wide, not read every batch three times over
    again at each step; and it reads the fields it sorts and filters on, not whole memories."""
    store = Stores(container.store).of(A)
    for batch in range(4):
        records = [
            Record(f"00000000-0000-4000-8000-{batch:04d}{i:08d}",
                   {**A.fields(), "created_ts": float(batch), "keys_version": KEYS_VERSION, "content": "x" * 500})
            for i in range(300)
        ]
        store.upsert(MEMORIES, records)
    # One memory as written before keys_version existed: the store is read in creation order.
    _unversioned(container, container.memory.store(A, LESSON).id, created_ts=4.0)
    sweeps = _CountedScans(container.store)
    rekey = MemoryRekey(container.memory, Stores(container.store), sweeps, page=100)
    assert rekey.run() == 1
    assert set().union(*sweeps.scans) <= {"created_ts", "keys_version", "tenant", "team", "project"}
    assert len(sweeps.scans) <= 8, f"{len(sweeps.scans)} scans for 5 batches"


def _unversioned(container: Container, memory_id: str, created_ts: float, version: int | None = None) -> None:
    """Rewrites a stored memory as an older version left it: no ``keys_version`` (or ``version``)."""
    record = container.store.get(MEMORIES, [memory_id], {})[0]
    payload = {k: v for k, v in record.payload.items() if k != "keys_version"}
    if version is not None:
        payload["keys_version"] = version
    container.store.upsert(MEMORIES, [Record(memory_id, {**payload, "created_ts": created_ts})])


def test_a_keyed_store_is_swept_from_the_index_without_reading_its_memories(container: Container) -> None:
    """At every start the sweep used to read every memory (1M memories: ~750 MiB of payload pages
    resident for the daemon's life); now the range index on ``keys_version`` names the ones behind."""
    container.memory.store_many(A, DISTRACTORS)
    container.memory.store_many(B, DISTRACTORS[:3])
    behind = container.memory.store(B, LESSON).id
    _unversioned(container, behind, created_ts=1.0, version=KEYS_VERSION - 1)
    own_keys = [r.id for r in container.store.scan(KEYS, {"memory_id": behind}, 100)]
    container.store.delete(KEYS, own_keys, {})  # as an older key set: found by none of today's keys
    assert behind not in [h.id for h in container.memory.search(B, SearchMemories(query=LESSON.title))]
    sweeps = _CountedScans(container.store)
    assert MemoryRekey(container.memory, Stores(container.store), sweeps).run() == 1
    assert sum(sweeps.reads) == 1, f"{sum(sweeps.reads)} memories read"
    assert container.store.get(MEMORIES, [behind], {})[0].payload["keys_version"] == KEYS_VERSION
    found = container.memory.search(B, SearchMemories(query=LESSON.title, limit=1))
    assert [h.id for h in found] == [behind]
    again = _CountedScans(container.store)
    assert MemoryRekey(container.memory, Stores(container.store), again).run() == 0
    assert sum(again.reads) == 0


@pytest.mark.anyio
async def test_a_session_outcome_reinforces_what_was_injected_for_its_task(container: Container) -> None:
    from contextd_mcp.mcp.caller import Caller
    from tests.helpers import connected, data

    mid = container.memory.store(A, LESSON).id
    container.memory.store_many(A, DISTRACTORS)
    task = "make the integration tests that share one database fixture pass in any order"
    async with connected(container, Caller(scope=A, transport="memory", connection_id="s")) as client:
        started = data(await client.call_tool("session_start", {"task": task}))
        assert mid in [m["id"] for m in started["memories"]]
        assert started["injection_tokens"] < limits.INJECTION_MAX_TOKENS + 10
        await client.call_tool("session_end", {"session_id": started["session_id"], "outcome": "success"})
    payload = container.store.get("memories", [mid], {})[0].payload
    assert payload["uses_succeeded"] == 1 and payload["events"][-1]["kind"] == "uses_succeeded"
    assert [k["text"] for k in keys_of(container, A, mid, "learned")] == [task]


def test_a_learned_key_that_repeats_one_of_the_memorys_own_keys_is_not_added(container: Container) -> None:
    # The learning protocol's decoy: rated helpful after a search for its own title. Kept as a
    # learned key, the title would count twice and lift the decoy on every query near it.
    mid = container.memory.store(A, LESSON).id
    container.memory.store_many(A, DISTRACTORS)
    container.memory.search_logged(A, SearchMemories(query=LESSON.title, limit=10), "c")
    container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    assert keys_of(container, A, mid, "learned") == []
    payload = container.store.get("memories", [mid], {})[0].payload
    assert payload["events"][-1]["key"] == "known" and payload["helpful_count"] == 1
    # A query in other words is still learned.
    other = "integration tests only go green when I run them one file at a time"
    container.memory.search_logged(A, SearchMemories(query=other, limit=10, min_confidence=0.0), "c")
    container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    assert [k["text"] for k in keys_of(container, A, mid, "learned")] == [other]


def test_a_rated_phrasing_lifts_its_memory_for_another_phrasing_of_the_same_need(
    tmp_path: Path, embedder: FastEmbedEmbedder
) -> None:
    """A confirmed query is evidence even when it is only loosely similar to a new one: two
    phrasings of one need are ~0.2-0.3 apart for MiniLM (dev median 0.29), below the old floor
    of 0.3 (BENCHMARKS.md, "Session 9: memory"). Dev lesson d117 among its own hard negatives;
    its strongest peer for phrasing B is rated too (after a search for its own title, the
    protocol's control), so confidence is equal and only the learned key can move the lesson.

    Cold, d117 and that peer are within 0.01 of each other, and which leads moved with every change
    of the model's vectors (with 8-bit weights, from one CPU to another: BENCHMARKS.md, "Session
    11"). So the lift is asserted on the score gap, which such noise does not move by
    anything near the ~0.02 a learned key at ~0.23 similarity adds (0 under the old floor)."""
    from bench.bench_memory_learning import _store_args, load

    split = load("dev")
    lesson = next(item for item in split["lessons"] if item["key"] == "d117")
    peers = [item for item in split["negatives"] if item["negative_of"] == "d117"]
    a, b = (np.array(embedder.embed_query(lesson[p])) for p in ("phrasing_a", "phrasing_b"))
    similarity = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert 0.2 < similarity < 0.3, similarity
    # Its own container on the model itself, storing one by one as memory_store does.
    container = build(DataPaths(tmp_path / "store"), embedder=embedder)
    query = SearchMemories(query=lesson["phrasing_b"], limit=10, min_confidence=0.0)
    try:
        memory = container.memory
        # The first stage's near tie is the premise: the second stage (services/memory_rerank.py,
        # its own tests) reorders it; learning with both is held by the dev protocol's floors.
        memory.flags = replace(memory.flags, rerank=False)
        ids = [memory.store(A, StoreMemory(**_store_args(item))).id for item in [lesson, *peers]]
        cold = {h.id: h.score for h in memory.search(A, query)}
        rival = max(ids[1:], key=lambda i: cold.get(i, -1.0))
        assert abs(cold[ids[0]] - cold[rival]) < 0.02  # a near tie that a ranking alone would hide
        for text, memory_id in ((lesson["phrasing_a"], ids[0]), (peers[ids.index(rival) - 1]["title"], rival)):
            search_id, hits = memory.search_logged(A, SearchMemories(query=text, limit=10), "c")
            assert memory_id in [h.id for h in hits]
            memory.feedback(A, MemoryFeedback(memory_id=memory_id, helpful=True, search_id=search_id))
        after = memory.search(A, query)
    finally:
        container.close()
    scores = {h.id: h.score for h in after}
    assert [h.id for h in after[:2]] == [ids[0], rival]
    assert (scores[ids[0]] - scores[rival]) - (cold[ids[0]] - cold[rival]) > 0.01
    assert after[0].confidence == after[1].confidence  # not popularity: both were rated once


def test_a_query_searches_no_function_words_and_a_key_keeps_them() -> None:
    # Function words were 1/3 of a key search's lexical work at 100k memories (BENCHMARKS.md,
    # "Session 15"); a stored key keeps them so that stored scores do not change.
    query = "we keep getting a timeout between these workflow runs"
    searched, stored = query_sparse(query), key_sparse(query)
    for word in ("we", "between", "these"):
        assert term_index(word) not in searched
        assert term_index(word) in stored
    for term in ("keep", "timeout", "workflow", "we+keep", "getting+timeout"):
        assert term_index(term) in searched
    # Negations and particles carry meaning in an error; they stay.
    assert {term_index("not"), term_index("up")} <= query_sparse("pip does not pick up the lockfile").keys()
    # Pairs stay, even of two function words: a phrase is rarer than its words.
    pairs = {term_index(p) for p in ("what+did", "did+we", "we+do", "do+about")}
    assert query_sparse("what did we do about it").keys() == pairs
    # Not scaled: the engine ranks by dot product, and a query's length changes no order.
    assert all(weight == 1.0 for weight in searched.values())


def test_a_key_id_names_its_memory_and_kind_and_an_older_id_names_nothing() -> None:
    memory_id = content_id("memory", A, digest("t", "c"))
    seen = set()
    for kind in KeyKind:
        for slot in free_slots(kind, ()):
            ident = key_id(memory_id, kind, "any text", slot)
            assert key_of(ident) == (memory_id, kind) and slot_of(ident) == slot
            assert uuid.UUID(ident).int != uuid.UUID(memory_id).int
            seen.add(ident)
        assert key_of(legacy_key_id(memory_id, kind, "any text")) is None
    assert len(seen) == limits.APPLIES_WHEN_MAX + limits.LEARNED_KEYS_MAX + limits.NEGATIVE_KEYS_MAX + 4
    with pytest.raises(ValueError, match="slot"):
        key_id(memory_id, KeyKind.learned, "x", free_slots(KeyKind.negative, ())[0])
    # An id that cannot carry a slot (not a canonical UUIDv5) keeps the older, text-derived id.
    for odd in ("not-a-uuid", str(uuid.uuid4()), memory_id.upper()):
        assert key_id(odd, KeyKind.doc, "t", 0) == legacy_key_id(odd, KeyKind.doc, "t")


def test_a_search_ranks_from_key_ids_and_reads_no_key_payload(container: Container) -> None:
    """With ``memory_id`` and ``kind`` gone from every key's stored payload, search still ranks
    the same: it reads which memory a key is of from the key's id (memory_keys.key_id)."""
    mid = container.memory.store(A, LESSON.model_copy(update={"applies_when": ["order dependent test failures"]})).id
    container.memory.store_many(A, DISTRACTORS)
    query = "tests fail depending on the order they run in"
    container.memory.search_logged(A, SearchMemories(query=query, limit=10, min_confidence=0.0), "c")
    container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    before = [(h.id, h.score) for h in container.memory.search(A, SearchMemories(query=query, limit=5))]
    points = container.store.scan(KEYS, {}, 1000)
    assert {key_of(p.id) for p in points} == {(p.payload["memory_id"], KeyKind(p.payload["kind"])) for p in points}
    # Each key's payload now names another memory, as a negative key: ranking by payload would
    # rank nothing (negative keys find nothing), and by ids it ranks as before.
    for point in points:
        container.store.set_fields(KEYS, point.id, {"memory_id": str(uuid.uuid4()), "kind": "negative"}, {})
    assert all(p.payload["kind"] == "negative" for p in container.store.scan(KEYS, {}, 1000))
    after = [(h.id, h.score) for h in container.memory.search(A, SearchMemories(query=query, limit=5))]
    assert after == before and after[0][0] == mid


class _CountedEmbedder:
    """The container's real embedder, counting the texts it is asked to embed."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.texts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def embed_documents(self, texts: Any) -> Any:
        self.texts += len(texts)
        return self._model.embed_documents(texts)

    def embed_query(self, text: str) -> Any:
        self.texts += 1
        return self._model.embed_query(text)


def _as_version_1(container: Container) -> dict[str, dict[str, Any]]:
    """Rewrites the store as version 1 left it: each key under the hash of (memory, kind, text),
    every memory at keys_version 1; returns the memories' payloads by id."""
    slotted = {p.id: p for p in container.store.scan(KEYS, {}, 1000)}
    texts = {m.id: dict(m.payload) for m in container.store.scan(MEMORIES, {}, 100)}
    old: dict[str, str] = {}
    for memory, payload in texts.items():
        derived = key_texts(payload)
        for made, (kind, text) in zip(key_records(payload, memory, derived, [[0.0]] * len(derived), 0.0), derived, strict=True):
            old[made.id] = legacy_key_id(memory, kind, text)
    for ident, point in slotted.items():
        if "text" in point.payload:  # learned
            old[ident] = legacy_key_id(point.payload["memory_id"], KeyKind(point.payload["kind"]), point.payload["text"])
    assert set(old) == set(slotted)
    container.store.rename(KEYS, old, {})
    for memory in texts:
        container.store.set_fields(MEMORIES, memory, {"keys_version": 1}, {})
    assert all(key_of(p.id) is None for p in container.store.scan(KEYS, {}, 1000))
    return texts


class _Settling(AcrossScopes):
    """The real cross-scope reads; the store reported settling (an index build under way) while ``busy``."""

    busy = True

    def settling(self, collection: str) -> bool:
        return self.busy


def test_the_sweep_moves_no_key_while_the_store_settles(container: Container) -> None:
    container.memory.store_many(A, [LESSON, *DISTRACTORS])
    texts = _as_version_1(container)
    sweeps = _Settling(container.store)
    rekey = MemoryRekey(container.memory, Stores(container.store), sweeps)
    assert rekey.step() == 0 and rekey.waiting and not rekey.done
    assert all(key_of(p.id) is None for p in container.store.scan(KEYS, {}, 1000))
    sweeps.busy = False
    assert rekey.run() == len(texts) and not rekey.waiting
    assert all(key_of(p.id) is not None for p in container.store.scan(KEYS, {}, 1000))


def test_keys_stored_before_slots_are_found_then_moved_to_slot_ids_without_embedding(container: Container) -> None:
    """A store of keys_version 1 (text-derived key ids): search reads those keys' payload, and the
    sweep moves every key to its slot id as stored (no embedding), learned keys included."""
    mid = container.memory.store(A, LESSON.model_copy(update={"applies_when": ["a", "order dependent test failures"]})).id
    container.memory.store_many(A, DISTRACTORS)
    query = "tests fail depending on the order they run in"
    for asked in (query, "nested savepoint per test"):
        container.memory.search_logged(A, SearchMemories(query=asked, limit=10, min_confidence=0.0), "c")
        container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    slotted = {p.id: p for p in container.store.scan(KEYS, {}, 1000)}
    before = [(h.id, round(h.score, 4)) for h in container.memory.search(A, SearchMemories(query=query, limit=5))]
    texts = _as_version_1(container)
    found = container.memory.search(A, SearchMemories(query=query, limit=5))
    # The same order; scores within what storing a vector again may round (its stored datatype).
    assert [h.id for h in found] == [i for i, _ in before]
    assert [h.score for h in found] == pytest.approx([s for _, s in before], abs=1e-3)
    # Having met such keys, a search reads every hit's fields with it (no read by id after): the same ranking.
    handle, vector, flags = Stores(container.store).of(A), container.memory._embedder.embed_query(query), KeyFlags()
    legacy = LegacyKeys()
    first = find(handle, vector, query, ScopeLevel.project, {}, flags, legacy)
    assert legacy.seen and find(handle, vector, query, ScopeLevel.project, {}, flags, legacy) == first
    counted = _CountedEmbedder(container.memory._embedder)
    container.memory._embedder = counted  # type: ignore[assignment]
    assert MemoryRekey(container.memory, Stores(container.store), AcrossScopes(container.store)).run() == len(texts)
    assert counted.texts == 0
    moved = {p.id: p for p in container.store.scan(KEYS, {}, 1000)}
    assert set(moved) == set(slotted)
    assert all(moved[i].payload == slotted[i].payload for i in moved)
    after = container.memory.search(A, SearchMemories(query=query, limit=5))
    assert [h.id for h in after] == [i for i, _ in before]
    fresh = LegacyKeys()
    assert [r.memory_id for r in find(handle, vector, query, ScopeLevel.project, {}, flags, fresh)] == [r.memory_id for r in first]
    assert not fresh.seen
    assert [h.score for h in after] == pytest.approx([s for _, s in before], abs=1e-3)
    assert all(m.payload["keys_version"] == KEYS_VERSION for m in container.store.scan(MEMORIES, {}, 100))


def test_learned_keys_at_the_cap_reuse_the_oldest_slot(container: Container) -> None:
    mid = container.memory.store(A, LESSON).id
    queries = [
        "kafka consumer group rebalancing loses offsets", "redis lock expires before the job ends",
        "grpc stream closes after idle timeout", "css grid collapses in safari", "helm chart values not applied",
        "s3 multipart upload hangs", "oauth refresh token rotation", "celery beat runs tasks twice",
        "dns lookups slow inside containers", "tls handshake fails with old clients",
    ]
    for query in queries:
        container.memory.search_logged(A, SearchMemories(query=query, limit=10, min_confidence=0.0), "c")
        container.memory.feedback(A, MemoryFeedback(memory_id=mid, helpful=True), "c")
    events = container.store.get(MEMORIES, [mid], {})[0].payload["events"]
    assert [e["key"] for e in events].count("added") == len(queries)  # every one added: the cap was passed
    learned = container.store.scan(KEYS, {"memory_id": mid, "kind": "learned"}, 100)
    assert len(learned) == limits.LEARNED_KEYS_MAX
    assert sorted(slot_of(p.id) for p in learned) == free_slots(KeyKind.learned, ())
    assert {p.payload["text"] for p in learned} == set(queries[-limits.LEARNED_KEYS_MAX:])  # the oldest went


def test_the_daemons_sweep_leaves_keys_before_slots_and_the_compact_command_moves_them(
    tmp_path: Path, embedder: FastEmbedEmbedder
) -> None:
    """Moved by a daemon, 100k memories' keys cost an index build per 20k keys and searches
    10-20 ms (spikes of 0.5 s) for ~40 minutes; ``contextd-mcp compact`` (daemon stopped) moves
    them in one pass, before it indexes the store: in chunks, each compacted under bulk settings
    (no graph, no merges) so the moved keys never pile up on the heap, then under the real ones."""
    from tests.helpers import run_cli

    data_dir = tmp_path / "data"
    container = build(DataPaths(data_dir), embedder=embedder)
    query = "tests fail depending on the order they run in"
    try:
        container.memory.store_many(A, [LESSON, *DISTRACTORS])
        before = [h.id for h in container.memory.search(A, SearchMemories(query=query, limit=5))]
        texts = _as_version_1(container)
        daemon_sweep = MemoryRekey(container.memory, Stores(container.store), AcrossScopes(container.store), below=KEYED)
        assert daemon_sweep.run() == 0
        assert all(key_of(p.id) is None for p in container.store.scan(KEYS, {}, 1000))
        assert [h.id for h in container.memory.search(A, SearchMemories(query=query, limit=5))] == before
    finally:
        container.close()

    done = run_cli(data_dir, "compact", "--data-dir", str(data_dir), "--chunk", "2", timeout=300)

    assert done.returncode == 0, done.stderr
    chunks = -(-len(texts) // 2)
    assert f"memory keys: {len(texts)} memories brought to the current key layout in {chunks} chunks" in done.stdout, done.stdout
    for collection in (KEYS, MEMORIES):  # the bulk settings did not outlive the move
        config = json.loads((data_dir / "store" / collection / "edge_config.json").read_text())
        assert config["hnsw_config"]["m"] == edge.HNSW_M, collection
        assert config["optimizers"]["default_segment_number"] == edge.SEGMENTS, collection
        assert config["optimizers"]["deleted_threshold"] is None, collection
    reopened = build(DataPaths(data_dir), embedder=embedder)
    try:
        keys = reopened.store.scan(KEYS, {}, 1000)
        assert keys and all(key_of(p.id) == (p.payload["memory_id"], p.payload["kind"]) for p in keys)
        assert [h.id for h in reopened.memory.search(A, SearchMemories(query=query, limit=5))] == before
        assert {m.payload["keys_version"] for m in reopened.store.scan(MEMORIES, {}, 100)} == {KEYS_VERSION}
    finally:
        reopened.close()
