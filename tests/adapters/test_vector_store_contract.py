"""One contract, every VectorStore adapter: embedded edge, qdrant-client local mode, and a
real Qdrant server when CONTEXTD_TEST_QDRANT_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.errors import Unavailable
from contextd_mcp.ports.vector_store import CollectionSpec, Range, Record, VectorStore

BACKENDS = ["edge", "qdrant-client-local"] + (["qdrant-server"] if os.environ.get("CONTEXTD_TEST_QDRANT_URL") else [])
SPEC = CollectionSpec(
    name="things", dim=4, model="test-model", keyword_fields=("tenant", "tags"), float_fields=("confidence", "ts")
)


def open_store(kind: str, path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(path / "edge")
    # Imported here: qdrant_client costs every xdist worker ~1.6 s at collection otherwise.
    from contextd_mcp.adapters.qdrant_client_store import QdrantClientStore

    if kind == "qdrant-client-local":
        return QdrantClientStore(path=path / "local")
    return QdrantClientStore(url=os.environ["CONTEXTD_TEST_QDRANT_URL"], api_key=os.environ.get("CONTEXTD_TEST_QDRANT_API_KEY"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield request.param, tmp_path


@pytest.fixture
def store(backend: tuple[str, Path]) -> Iterator[VectorStore]:
    kind, path = backend
    opened = open_store(kind, path)
    spec = SPEC if kind != "qdrant-server" else CollectionSpec(**{**SPEC.__dict__, "name": f"t{uuid.uuid4().hex[:8]}"})
    opened.ensure(spec)
    opened.spec = spec  # type: ignore[attr-defined]
    yield opened
    opened.close()


def rec(tenant: str, vector: list[float], **payload: object) -> Record:
    return Record(id=str(uuid.uuid4()), vector=vector, payload={"tenant": tenant, **payload})


def name(store: VectorStore) -> str:
    return store.spec.name  # type: ignore[attr-defined]


def test_upsert_get_search_with_scope_filter(store: VectorStore) -> None:
    a = rec("a", [1, 0, 0, 0], tags=["x"], confidence=0.9, ts=1.0)
    b = rec("a", [0.9, 0.1, 0, 0], tags=["y"], confidence=0.2, ts=2.0)
    c = rec("b", [1, 0, 0, 0], tags=["x"], confidence=0.9, ts=3.0)
    store.upsert(name(store), [a, b, c])
    hits = store.search(name(store), [1, 0, 0, 0], {"tenant": "a"}, limit=10)
    assert [h.id for h in hits] == [a.id, b.id]
    assert hits[0].score == pytest.approx(1.0, abs=1e-3) and hits[0].payload["tags"] == ["x"]
    narrow = store.search(name(store), [1, 0, 0, 0], {"tenant": "a"}, limit=1, fields=("tags",))
    assert [(h.id, h.payload) for h in narrow] == [(a.id, {"tags": ["x"]})]
    assert [h.id for h in store.search(name(store), [1, 0, 0, 0], {"tenant": "a", "tags": ["y", "z"]}, 10)] == [b.id]
    assert [h.id for h in store.search(name(store), [1, 0, 0, 0], {"tenant": "a", "confidence": Range(gte=0.5)}, 10)] == [a.id]
    assert [r.id for r in store.get(name(store), [a.id, c.id], {"tenant": "a"})] == [a.id]
    assert store.get(name(store), [c.id], {"tenant": "a"}) == []
    assert store.get(name(store), ["not-a-uuid", str(uuid.uuid4())], {"tenant": "a"}) == []
    assert store.count(name(store), {"tenant": "a"}) == 2
    assert store.count(name(store), {}) == 3


def test_scan_orders_and_set_fields_and_delete(store: VectorStore) -> None:
    records = [rec("a", [1, i, 0, 0], ts=float(i), confidence=0.5) for i in range(5)]
    store.upsert(name(store), records)
    newest = store.scan(name(store), {"tenant": "a"}, limit=3, order_by="ts")
    assert [r.payload["ts"] for r in newest] == [4.0, 3.0, 2.0]
    store.set_fields(name(store), records[0].id, {"confidence": 0.99, "note": "n"}, {"tenant": "a"})
    (updated,) = store.get(name(store), [records[0].id], {"tenant": "a"})
    assert updated.payload["confidence"] == 0.99 and updated.payload["note"] == "n" and updated.payload["ts"] == 0.0
    store.delete(name(store), [records[1].id, "garbage"], {"tenant": "a"})
    assert store.count(name(store), {"tenant": "a"}) == 4
    store.set_fields(name(store), "garbage", {"note": "x"}, {"tenant": "a"})  # not an id: nothing, no error


def test_a_scan_reads_only_the_fields_asked_for(store: VectorStore) -> None:
    """A sweep over every memory reads a few small fields of each, not its content."""
    records = [rec("a", [1, i, 0, 0], ts=float(i), confidence=0.5, content="x" * 1000) for i in range(3)]
    store.upsert(name(store), records)
    page = store.scan(name(store), {"tenant": "a"}, limit=10, order_by="ts", descending=False, fields=("ts", "tenant"))
    assert [r.payload for r in page] == [{"ts": float(i), "tenant": "a"} for i in range(3)]
    assert "content" in store.scan(name(store), {"tenant": "a"}, limit=1)[0].payload


def test_by_id_writes_apply_only_to_records_matching_the_filter(store: VectorStore) -> None:
    """set_fields and delete take the scope filter into the engine: an id outside it is left alone."""
    mine, theirs = rec("a", [1, 0, 0, 0], note="mine"), rec("b", [1, 0, 0, 0], note="theirs")
    store.upsert(name(store), [mine, theirs])
    store.set_fields(name(store), theirs.id, {"note": "changed"}, {"tenant": "a"})
    store.delete(name(store), [theirs.id], {"tenant": "a"})
    assert [r.payload["note"] for r in store.get(name(store), [theirs.id], {"tenant": "b"})] == ["theirs"]
    store.set_fields(name(store), mine.id, {"note": "changed"}, {"tenant": ["a", "c"]})
    assert store.get(name(store), [mine.id], {})[0].payload["note"] == "changed"
    store.delete(name(store), [mine.id, theirs.id], {"tenant": "a"})
    assert store.get(name(store), [mine.id], {}) == [] and store.count(name(store), {}) == 1


def test_reopen_keeps_data_and_refuses_another_model(backend: tuple[str, Path]) -> None:
    kind, path = backend
    if kind == "qdrant-server":
        pytest.skip("reopen semantics are the server's")
    first = open_store(kind, path)
    first.ensure(SPEC)
    kept = rec("a", [0, 1, 0, 0], ts=1.0)
    first.upsert(SPEC.name, [kept])
    first.close()
    second = open_store(kind, path)
    second.ensure(SPEC)
    assert [r.id for r in second.get(SPEC.name, [kept.id], {"tenant": "a"})] == [kept.id]
    second.close()
    third = open_store(kind, path)
    with pytest.raises(Unavailable, match="embedding model 'test-model'"):
        third.ensure(CollectionSpec(name=SPEC.name, dim=4, model="other-model"))
    third.close()


def test_records_without_vectors(store: VectorStore) -> None:
    plain = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "ts": 5.0})
    store.upsert(name(store), [plain])
    assert [r.id for r in store.get(name(store), [plain.id], {"tenant": "a"})] == [plain.id]
    assert [r.id for r in store.scan(name(store), {"tenant": "a"}, limit=5, order_by="ts")] == [plain.id]


HYBRID = CollectionSpec(name="hybrid", dim=4, model="test-model", keyword_fields=("tenant",), sparse=True)


@pytest.fixture
def hybrid_store(backend: tuple[str, Path]) -> Iterator[tuple[VectorStore, str]]:
    kind, path = backend
    opened = open_store(kind, path)
    spec = HYBRID if kind != "qdrant-server" else CollectionSpec(**{**HYBRID.__dict__, "name": f"h{uuid.uuid4().hex[:8]}"})
    opened.ensure(spec)
    yield opened, spec.name
    opened.close()


def test_hybrid_search_fuses_dense_and_sparse_rankings(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    dense_best = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[1, 0, 0, 0], sparse={7: 1.0})
    both = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0.95, 0.31, 0, 0], sparse={42: 2.0, 7: 1.0})
    sparse_second = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 0, 1, 0], sparse={42: 1.0})
    no_sparse = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0.5, 0, 0.86, 0])
    foreign = Record(id=str(uuid.uuid4()), payload={"tenant": "b"}, vector=[1, 0, 0, 0], sparse={42: 5.0})
    store.upsert(coll, [dense_best, both, sparse_second, no_sparse, foreign])
    hits = store.hybrid_search(coll, [1, 0, 0, 0], {42: 1.0}, {"tenant": "a"}, limit=4)
    # Dense order: dense_best, both, no_sparse, sparse_second; sparse order: both, sparse_second.
    # `both` is first in one list and second in the other: fusion puts it on top for any RRF k.
    ids = [h.id for h in hits]
    assert ids[0] == both.id and ids[-1] == no_sparse.id and foreign.id not in ids
    assert set(ids) == {both.id, dense_best.id, sparse_second.id, no_sparse.id}
    assert hits[0].score > hits[1].score > hits[-1].score > 0
    assert hits[0].payload == {"tenant": "a"}
    # Weights tilt the fusion: all weight on the dense list gives the dense order.
    dense_only = store.hybrid_search(coll, [1, 0, 0, 0], {42: 1.0}, {"tenant": "a"}, limit=2, weights=(1.0, 0.0))
    assert [h.id for h in dense_only] == [dense_best.id, both.id]


def test_sparse_query_weights_are_scaled_by_idf(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    common, rare = 1, 2
    records = [
        Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 0, 0, 1], sparse={common: 1.0}) for _ in range(4)
    ]
    heavy_common = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 0, 0, 1], sparse={common: 3.0})
    with_rare = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 0, 0, 1], sparse={common: 1.0, rare: 1.0})
    store.upsert(coll, [*records, heavy_common, with_rare])
    hits = store.hybrid_search(coll, [1, 0, 0, 0], {common: 1.0, rare: 1.0}, {"tenant": "a"}, limit=2, weights=(0.0, 1.0))
    # Without IDF the 3.0 on the common term would win (3 > 1 + 1).
    assert [h.id for h in hits] == [with_rare.id, heavy_common.id]


def test_sparse_search_ranks_by_sparse_terms_alone_within_the_filter(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    dense_near = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[1, 0, 0, 0], sparse={7: 1.0})
    term = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "k"}, vector=[0, 1, 0, 0], sparse={42: 1.0})
    foreign = Record(id=str(uuid.uuid4()), payload={"tenant": "b"}, vector=[0, 1, 0, 0], sparse={42: 9.0})
    store.upsert(coll, [dense_near, term, foreign])
    hits = store.sparse_search(coll, {42: 1.0}, {"tenant": "a"}, limit=5, fields=["kind"])
    assert [h.id for h in hits] == [term.id] and hits[0].score > 0 and hits[0].payload == {"kind": "k"}
    assert store.sparse_search(coll, {}, {"tenant": "a"}, limit=5) == []


def test_hybrid_search_with_an_empty_sparse_query_is_dense_ranking(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    near = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[1, 0, 0, 0], sparse={1: 1.0})
    far = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 1, 0, 0], sparse={2: 1.0})
    store.upsert(coll, [far, near])
    assert [h.id for h in store.hybrid_search(coll, [1, 0.1, 0, 0], {}, {"tenant": "a"}, limit=5)] == [near.id, far.id]
    # The plain dense search still works on a collection that also holds sparse vectors.
    assert [h.id for h in store.search(coll, [1, 0.1, 0, 0], {"tenant": "a"}, limit=5)] == [near.id, far.id]


def test_sparse_collection_survives_reopen(backend: tuple[str, Path]) -> None:
    kind, path = backend
    if kind == "qdrant-server":
        pytest.skip("reopen semantics are the server's")
    first = open_store(kind, path)
    first.ensure(HYBRID)
    kept = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 1, 0, 0], sparse={99: 1.0})
    other = Record(id=str(uuid.uuid4()), payload={"tenant": "a"}, vector=[0, 1, 0, 0], sparse={98: 1.0})
    first.upsert(HYBRID.name, [kept, other])
    first.close()
    second = open_store(kind, path)
    second.ensure(HYBRID)
    hits = second.hybrid_search(HYBRID.name, [1, 0, 0, 0], {99: 1.0}, {"tenant": "a"}, limit=1)
    assert [h.id for h in hits] == [kept.id]
    second.close()


def test_edge_builds_keyword_indexes_once_a_collection_is_large(tmp_path: Path) -> None:
    from contextd_mcp.adapters import qdrant_edge_store

    store = EdgeStore(tmp_path / "edge")
    store.ensure(SPEC)
    shard = store._shards[SPEC.name]
    assert set(shard.info().payload_schema) == {"confidence", "ts"}
    records = [rec("a" if i % 2 else "b", [1, i, 0, 0], tags=["x"], ts=float(i)) for i in range(qdrant_edge_store.KEYWORD_INDEX_AT)]
    for start in range(0, len(records), 500):
        store.upsert(SPEC.name, records[start : start + 500])
    assert {"tenant", "tags"} <= set(shard.info().payload_schema)
    assert store.count(SPEC.name, {"tenant": "a"}) == qdrant_edge_store.KEYWORD_INDEX_AT // 2
    assert len(store.search(SPEC.name, [1, 0, 0, 0], {"tenant": "b", "tags": ["x"]}, 5)) == 5
    store.close()


def test_hybrid_search_returns_only_the_fields_asked_for(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    record = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "title": "t", "body": "x" * 5000}, vector=[1, 0, 0, 0], sparse={3: 1.0})
    store.upsert(coll, [record])
    (hit,) = store.hybrid_search(coll, [1, 0, 0, 0], {3: 1.0}, {"tenant": "a"}, limit=1, fields=["tenant", "title"])
    assert hit.id == record.id and hit.payload == {"tenant": "a", "title": "t"}


def test_edge_indexes_hot_fields_early_and_keeps_vectors_cold(tmp_path: Path) -> None:
    import dataclasses
    import json

    from contextd_mcp.adapters import qdrant_edge_store

    spec = dataclasses.replace(SPEC, name="hot", hot_fields=("tenant",))
    store = EdgeStore(tmp_path / "edge")
    store.ensure(spec)
    shard = store._shards[spec.name]
    assert set(shard.info().payload_schema) == {"confidence", "ts"}  # an empty collection maps no index
    records = [rec("a" if i % 2 else "b", [1, i, 0, 0]) for i in range(qdrant_edge_store.HOT_INDEX_AT + 63)]
    store.upsert(spec.name, records[:-64])
    assert "tenant" not in shard.info().payload_schema
    for record in records[-64:]:  # one at a time, as tools write
        store.upsert(spec.name, [record])
    assert set(shard.info().payload_schema) == {"confidence", "ts", "tenant"}
    expected = sum(1 for r in records if r.payload["tenant"] == "b")
    assert len(store.search(spec.name, [1, 0, 0, 0], {"tenant": "b"}, 500)) == expected
    store.close()
    # The shard's own config records where its vectors live: paged in on use, not pinned.
    config = json.loads((tmp_path / "edge" / "hot" / "edge_config.json").read_text())
    assert config["vectors"][""]["memory"] == "cold"


def test_dense_and_sparse_are_the_two_searches_in_one_call(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    near = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "n"}, vector=[1, 0, 0, 0], sparse={7: 1.0})
    term = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "t"}, vector=[0, 1, 0, 0], sparse={42: 1.0})
    foreign = Record(id=str(uuid.uuid4()), payload={"tenant": "b", "kind": "f"}, vector=[1, 0, 0, 0], sparse={42: 9.0})
    store.upsert(coll, [near, term, foreign])
    where = {"tenant": "a"}
    dense, lexical = store.dense_and_sparse(coll, [1, 0.1, 0, 0], {42: 1.0}, where, limit=5, fields=["kind"])
    assert dense == store.search(coll, [1, 0.1, 0, 0], where, 5, ["kind"])
    assert lexical == store.sparse_search(coll, {42: 1.0}, where, 5, ["kind"])
    assert [h.id for h in dense] == [near.id, term.id] and [h.id for h in lexical] == [term.id]
    assert lexical[0].payload == {"kind": "t"}
    # No sparse query: the dense list alone, as sparse_search finds nothing for it.
    assert store.dense_and_sparse(coll, [1, 0, 0, 0], {}, where, limit=5)[1] == []


def test_a_narrowed_third_search_finds_what_the_first_list_crowds_out(hybrid_store: tuple[VectorStore, str]) -> None:
    store, coll = hybrid_store
    crowd = [
        Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "doc"}, vector=[1, 0.01 * i, 0, 0], sparse={7: 1.0})
        for i in range(6)
    ]
    far = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "learned"}, vector=[0, 0, 1, 0], sparse={42: 1.0})
    foreign = Record(id=str(uuid.uuid4()), payload={"tenant": "b", "kind": "learned"}, vector=[1, 0, 0, 0])
    store.upsert(coll, [*crowd, far, foreign])
    where = {"tenant": "a"}
    dense, lexical, narrowed = store.dense_sparse_narrowed(
        coll, [1, 0, 0.1, 0], {42: 1.0}, where, 5, {"kind": "learned"}, 3, fields=["kind"]
    )
    two = store.dense_and_sparse(coll, [1, 0, 0.1, 0], {42: 1.0}, where, limit=5, fields=["kind"])
    assert [[h.id for h in hits] for hits in (dense, lexical)] == [[h.id for h in hits] for hits in two]
    assert far.id not in {h.id for h in dense} and [h.id for h in lexical] == [far.id]  # five nearer points fill the first list
    # The third list: the same query under both filters, the other tenant's nearer point not in it.
    assert [h.id for h in narrowed] == [far.id] and narrowed[0].payload == {"kind": "learned"}
    alone = store.search(coll, [1, 0, 0.1, 0], {"tenant": "a", "kind": "learned"}, 3, ["kind"])
    assert narrowed[0].score == pytest.approx(alone[0].score) and len(alone) == 1


def test_get_returns_only_the_fields_asked_for_and_still_checks_the_scope(store: VectorStore) -> None:
    record = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "title": "t", "body": "x" * 5000}, vector=[1, 0, 0, 0])
    store.upsert(SPEC.name, [record])
    (got,) = store.get(SPEC.name, [record.id], {"tenant": "a"}, fields=["title"])
    assert got.payload["title"] == "t" and "body" not in got.payload
    assert store.get(SPEC.name, [record.id], {"tenant": "b"}, fields=["title"]) == []


def test_rename_moves_vectors_and_payload_as_stored_and_only_inside_the_filter(hybrid_store: tuple[VectorStore, str]) -> None:
    """memory_keys' migration to slot ids: the record under its new id is the same record (both
    vectors, the payload), the old id is gone, and a record outside the filter does not move."""
    store, coll = hybrid_store
    mine = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "kind": "k"}, vector=[1, 0, 0, 0], sparse={3: 1.0})
    theirs = Record(id=str(uuid.uuid4()), payload={"tenant": "b", "kind": "k"}, vector=[0, 1, 0, 0], sparse={5: 1.0})
    store.upsert(coll, [mine, theirs])
    new_mine, new_theirs = str(uuid.uuid4()), str(uuid.uuid4())
    store.rename(coll, {mine.id: new_mine, theirs.id: new_theirs}, {"tenant": "a"})
    assert store.get(coll, [mine.id, new_theirs], {}) == []
    assert [r.id for r in store.get(coll, [theirs.id], {})] == [theirs.id]
    assert [r.payload for r in store.get(coll, [new_mine], {})] == [mine.payload]
    (dense,) = store.search(coll, [1, 0, 0, 0], {"tenant": "a"}, 5)
    (lexical,) = store.sparse_search(coll, {3: 1.0}, {"tenant": "a"}, 5)
    assert dense.id == lexical.id == new_mine and dense.score == pytest.approx(1.0, abs=0.01)
    store.rename(coll, {mine.id: new_mine}, {"tenant": "a"})  # again (an interrupted run's retry): nothing to move
    assert store.count(coll, {}) == 2


def test_a_search_for_no_fields_returns_no_payload(hybrid_store: tuple[VectorStore, str]) -> None:
    """A key search reads its hits' memory from their ids and asks for no payload (an empty list
    of fields still made the embedded engine read each hit's payload)."""
    store, coll = hybrid_store
    record = Record(id=str(uuid.uuid4()), payload={"tenant": "a", "title": "t"}, vector=[1, 0, 0, 0], sparse={3: 1.0})
    store.upsert(coll, [record])
    dense, lexical, third = store.dense_sparse_narrowed(coll, [1, 0, 0, 0], {3: 1.0}, {"tenant": "a"}, 5, {"title": "t"}, 5, fields=())
    assert [(h.id, h.payload) for h in [*dense, *lexical, *third]] == [(record.id, {})] * 3
