"""The embedded store's segment layout: configured (not default) optimizer, HNSW and memory
placement, compaction into indexed segments, and exact search over what is not indexed yet."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports.vector_store import CollectionSpec, Range, Record

DIM = 32
SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project"),
                      hot_fields=("tenant", "project"), sparse=True)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _records(vectors: np.ndarray, project: str = "p") -> list[Record]:
    return [
        Record(str(uuid.uuid4()), {"tenant": "t", "project": project, "n": i}, v.tolist(), {i % 50: 1.0})
        for i, v in enumerate(vectors)
    ]


def test_a_new_collection_gets_the_configured_segment_layout(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    store.close()
    config = json.loads((tmp_path / "keys" / "edge_config.json").read_text())
    text = json.dumps(config)
    assert str(edge.INDEXING_THRESHOLD_KB) in text and str(edge.MAX_SEGMENT_KB) in text, config
    assert str(edge.HNSW_M) in text and str(edge.HNSW_EF_CONSTRUCT) in text, config


def test_a_store_made_without_segment_settings_gets_them_when_opened(tmp_path: Path) -> None:
    # What the store looked like before: vectors only, the engine's default optimizer.
    vectors = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine, memory=qe.Memory.Cold,
                                  datatype=qe.VectorStorageDatatype.Turbo8)
    sparse = {"lexical": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
    old = qe.EdgeShard.create(str(tmp_path / "keys"), qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse))
    point = qe.Point(id=str(uuid.uuid4()), vector=[1.0] + [0.0] * (DIM - 1), payload={"tenant": "t", "project": "p"})
    old.update(qe.UpdateOperation.upsert_points([point]))
    old.flush()
    old.close()
    (tmp_path / "keys" / "contextd-collection.json").write_text(json.dumps({"model": "test-model", "dim": DIM}))
    before = (tmp_path / "keys" / "edge_config.json").read_text()
    assert str(edge.MAX_SEGMENT_KB) not in before

    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    hits = store.search("keys", [1.0] + [0.0] * (DIM - 1), {"tenant": "t"}, 5)
    store.close()
    assert [h.id for h in hits] == [str(point.id)]
    assert str(edge.MAX_SEGMENT_KB) in (tmp_path / "keys" / "edge_config.json").read_text()


def test_compaction_indexes_segments_and_keeps_the_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small thresholds so that 3,000 points of 32 dims make an indexed segment.
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 50)
    monkeypatch.setattr(edge, "FULL_SCAN_KB", 10)
    rng = np.random.default_rng(1)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    store.upsert("keys", _records(_unit(rng, 3000)))
    queries = _unit(rng, 40)
    exact = [[h.id for h in store.search("keys", q.tolist(), {"project": "p"}, 10)] for q in queries]
    # Counted per vector: the sparse index is built as points arrive, the dense graph is not.
    assert edge_info(store).indexed_vectors_count == 3000

    took = store.compact()

    assert took["keys"] >= 0
    assert edge_info(store).indexed_vectors_count == 6000
    approx = [[h.id for h in store.search("keys", q.tolist(), {"project": "p"}, 10)] for q in queries]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.98, recall
    store.close()


def test_writes_after_compaction_are_found_at_once_and_deletes_apply_to_indexed_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 50)
    rng = np.random.default_rng(2)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    old = _records(_unit(rng, 2000))
    store.upsert("keys", old)
    store.compact()
    fresh = _records(_unit(rng, 1), project="q")[0]
    store.upsert("keys", [fresh])
    # No compaction in between: the new point sits in an unindexed segment, searched exactly.
    assert [h.id for h in store.search("keys", fresh.vector or [], {"project": "q"}, 3)] == [fresh.id]
    store.delete("keys", [old[0].id], {"tenant": "t"})
    assert old[0].id not in [h.id for h in store.search("keys", old[0].vector or [], {"project": "p"}, 5)]
    assert store.count("keys", {"tenant": "t"}) == 2000
    store.close()
    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    assert [h.id for h in reopened.search("keys", fresh.vector or [], {"project": "q"}, 3)] == [fresh.id]
    assert reopened.count("keys", {"tenant": "t"}) == 2000
    reopened.close()


def edge_info(store: EdgeStore) -> qe.ShardInfo:
    return store._shards["keys"].info()  # the engine's own view of its segments


def test_the_compact_command_indexes_a_stopped_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import run_cli

    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 50)  # stored in the shard's config at creation
    data_dir = tmp_path / "data"
    store = EdgeStore(data_dir / "store")
    store.ensure(SPEC)
    store.upsert("keys", _records(_unit(np.random.default_rng(3), 2000)))
    assert edge_info(store).indexed_vectors_count == 2000  # the sparse vectors only
    store.close()

    done = run_cli(data_dir, "compact", "--data-dir", str(data_dir), timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("keys: "), done.stdout
    reopened = EdgeStore(data_dir / "store")
    reopened.ensure(SPEC)
    assert edge_info(reopened).indexed_vectors_count == 4000
    assert reopened.count("keys", {"project": "p"}) == 2000
    reopened.close()


FLOAT_SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project", "kind"),
                            hot_fields=("tenant", "project"), float_fields=("n",), sparse=True)


def _placements(store: EdgeStore) -> dict[str, object]:
    return {name: getattr(info.params, "memory", None) for name, info in edge_info(store).payload_schema.items()}


def test_payload_indexes_are_memory_mapped(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure(FLOAT_SPEC)
    store.upsert("keys", _records(_unit(np.random.default_rng(4), edge.KEYWORD_INDEX_AT + 64)))
    placements = _placements(store)
    store.close()
    assert set(placements) == {"tenant", "project", "kind", "n"}, placements
    assert all(p == qe.Memory.Cold for p in placements.values()), placements


def test_a_store_with_heap_payload_indexes_gets_them_on_disk_when_opened(tmp_path: Path) -> None:
    # A store as written before: keyword and float indexes without a placement (on the heap),
    # compacted, so the points sit in an immutable segment with those indexes.
    rng = np.random.default_rng(5)
    config = edge._config(FLOAT_SPEC)
    old = qe.EdgeShard.create(str(tmp_path / "keys"), config)
    old.update(qe.UpdateOperation.create_field_index("n", qe.PayloadSchemaType.Float))
    for name in ("tenant", "project", "kind"):
        old.update(qe.UpdateOperation.create_field_index(name, qe.KeywordIndexParams(is_tenant=name != "kind")))
    records = _records(_unit(rng, 600)) + _records(_unit(rng, 600), project="q")
    old.update(qe.UpdateOperation.upsert_points(
        [qe.Point(id=r.id, vector=r.vector or [], payload={**r.payload, "kind": "doc"}) for r in records]))
    old.optimize()
    old.flush()
    old.close()
    (tmp_path / "keys" / "contextd-collection.json").write_text(json.dumps({"model": "test-model", "dim": DIM}))
    query = records[700].vector or []

    store = EdgeStore(tmp_path)
    store.ensure(FLOAT_SPEC)
    placements = _placements(store)
    hits = [h.id for h in store.search("keys", query, {"project": "q", "kind": "doc"}, 5)]
    newest = store.scan("keys", {"project": "p"}, 3, order_by="n")
    store.close()

    assert placements == dict.fromkeys(("tenant", "project", "kind", "n"), qe.Memory.Cold), placements
    assert hits[0] == records[700].id and len(hits) == 5
    assert [r.payload["n"] for r in newest] == [599, 598, 597]
    reopened = EdgeStore(tmp_path)
    reopened.ensure(FLOAT_SPEC)
    assert reopened.count("keys", {"project": "q"}) == 600
    reopened.close()


def test_a_range_field_added_to_a_spec_is_indexed_when_the_collection_is_next_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-keying sweep asks ``memories`` for ``keys_version`` by range: a store made before the
    field was in the spec gets its index at the next open, kept, with the range answered from it."""
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 50)  # the points in an immutable segment
    rng = np.random.default_rng(6)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    # 2 kB of text a point that does not compress: 6 MB of payload pages for the index to read.
    records = [Record(r.id, {**r.payload, "text": rng.bytes(1000).hex()}, r.vector, r.sparse) for r in _records(_unit(rng, 3000))]
    for i in range(0, len(records), 500):
        store.upsert("keys", records[i : i + 500])
    store.compact()
    store.close()
    grown = CollectionSpec(**{**SPEC.__dict__, "float_fields": ("n",)})

    reopened = EdgeStore(tmp_path)
    reopened.ensure(grown)
    indexed = set(edge_info(reopened).payload_schema)
    # The index read every payload; they are not left in the process's RSS.
    payload_resident = _rss_kib(tmp_path / "keys", "/payload_storage/")
    below = reopened.count("keys", {"n": Range(lte=99)})
    reopened.close()
    assert "n" in indexed and below == 100
    assert payload_resident < 1024, f"{payload_resident} KiB of payload resident after the index was made"
    again = EdgeStore(tmp_path)
    again.ensure(SPEC)  # a spec without it keeps the index: nothing is dropped
    assert "n" in set(edge_info(again).payload_schema)
    again.close()


PINNED_SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project", "kind"),
                             hot_fields=("tenant", "project"), pinned_fields=("tenant", "project"), float_fields=("n",),
                             sparse=True)


def test_pinned_fields_are_indexed_on_the_heap_the_others_memory_mapped(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure(PINNED_SPEC)
    rng = np.random.default_rng(6)
    store.upsert("keys", _records(_unit(rng, edge.KEYWORD_INDEX_AT)) + _records(_unit(rng, 64), project="q"))
    placements = _placements(store)
    store.close()
    # Every point has tenant "t": no search filters on it (adapters/uniform_fields.py), so it is not pinned.
    assert placements == {"tenant": qe.Memory.Cold, "project": qe.Memory.Pinned,
                          "kind": qe.Memory.Cold, "n": qe.Memory.Cold}, placements


def test_a_store_of_one_owner_pins_nothing_until_a_second_owner_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    store = EdgeStore(tmp_path)
    store.ensure(PINNED_SPEC)
    store.upsert("keys", _records(_unit(rng, 1500)))
    store.compact()
    assert _placements(store)["project"] == qe.Memory.Cold and _placements(store)["tenant"] == qe.Memory.Cold
    store.close()
    reopened = EdgeStore(tmp_path)
    reopened.ensure(PINNED_SPEC)
    assert _placements(reopened)["project"] == qe.Memory.Cold
    newcomer = _records(_unit(rng, 10), project="q")
    reopened.upsert("keys", newcomer)
    hits = reopened.search("keys", newcomer[0].vector or [], {"tenant": "t", "project": "p"}, 20, ["project"])
    reopened.close()
    assert len(hits) == 20 and {h.payload["project"] for h in hits} == {"p"}
    again = EdgeStore(tmp_path)
    again.ensure(PINNED_SPEC)  # two projects now: the project's index goes to the heap; the tenant's stays mapped
    assert _placements(again)["project"] == qe.Memory.Pinned and _placements(again)["tenant"] == qe.Memory.Cold
    again.close()


def test_a_built_store_gets_its_pinned_fields_on_the_heap_when_opened_and_back_when_unpinned(tmp_path: Path) -> None:
    # A store built before fields were pinned: every index memory-mapped, in an immutable segment.
    rng = np.random.default_rng(7)
    store = EdgeStore(tmp_path)
    store.ensure(FLOAT_SPEC)
    records = _records(_unit(rng, 1500)) + _records(_unit(rng, 1500), project="q")
    store.upsert("keys", records)
    store.compact()
    assert all(p == qe.Memory.Cold for p in _placements(store).values())
    store.close()
    query = records[2100].vector or []

    pinned = EdgeStore(tmp_path)
    pinned.ensure(PINNED_SPEC)
    placements = _placements(pinned)
    hits = pinned.search("keys", query, {"tenant": "t", "project": "q"}, 20)
    counted = pinned.count("keys", {"project": "q"})
    pinned.close()

    assert placements == {"tenant": qe.Memory.Cold, "project": qe.Memory.Pinned,  # one tenant: not pinned
                          "kind": qe.Memory.Cold, "n": qe.Memory.Cold}, placements
    assert hits[0].id == records[2100].id and len(hits) == 20
    assert {h.id for h in hits} <= {r.id for r in records[1500:]}  # the filter still holds
    assert counted == 1500
    unpinned = EdgeStore(tmp_path)
    unpinned.ensure(FLOAT_SPEC)
    assert all(p == qe.Memory.Cold for p in _placements(unpinned).values())
    unpinned.close()


def test_pinned_fields_go_back_to_mapped_indexes_once_the_collection_is_past_the_pin_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their heap grows with every point; past the limit the store keeps them memory-mapped.
    rng = np.random.default_rng(9)
    store = EdgeStore(tmp_path)
    store.ensure(PINNED_SPEC)
    records = _records(_unit(rng, 1500)) + _records(_unit(rng, 1500), project="q")
    store.upsert("keys", records)
    store.compact()
    assert _placements(store)["project"] == qe.Memory.Pinned
    store.close()

    monkeypatch.setattr(edge, "PIN_MAX_POINTS", 2000, raising=False)
    reopened = EdgeStore(tmp_path)
    reopened.ensure(PINNED_SPEC)
    placements = _placements(reopened)
    hits = reopened.search("keys", records[2100].vector or [], {"tenant": "t", "project": "q"}, 20)
    reopened.close()

    assert all(p == qe.Memory.Cold for p in placements.values()), placements
    assert hits[0].id == records[2100].id and {h.id for h in hits} <= {r.id for r in records[1500:]}

    # Back just under the limit it stays mapped (no move at every start of a store hovering at
    # it); well under it, the fields are pinned again.
    monkeypatch.setattr(edge, "PIN_MAX_POINTS", 3200, raising=False)
    again = EdgeStore(tmp_path)
    again.ensure(PINNED_SPEC)
    assert all(p == qe.Memory.Cold for p in _placements(again).values())
    again.close()
    monkeypatch.setattr(edge, "PIN_MAX_POINTS", 4000, raising=False)
    repinned = EdgeStore(tmp_path)
    repinned.ensure(PINNED_SPEC)
    assert _placements(repinned)["project"] == qe.Memory.Pinned
    repinned.close()


def test_memory_keys_pin_the_scope_fields_of_every_key_search() -> None:
    from contextd_mcp.services import memory_keys

    spec = memory_keys.keys_spec(DIM, "test-model")
    assert set(spec.pinned_fields) == {"tenant", "team", "project"} <= set(spec.keyword_fields)


def test_dense_searches_walk_the_graph_with_the_configured_ef(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A graph small enough to build here, searched through it (not by the exact scan below the
    # threshold): the store's searches keep DENSE_EF candidates, which decides their recall.
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 20)
    monkeypatch.setattr(edge, "FULL_SCAN_KB", 1)
    rng = np.random.default_rng(8)
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    store.upsert("keys", _records(_unit(rng, 6000)))
    store.compact()
    assert edge_info(store).indexed_vectors_count == 12000  # dense (the graph) and sparse
    queries = _unit(rng, 60)
    shard = store._shards["keys"]

    def recall() -> float:
        found = 0
        for q in queries:
            exact = shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(q.tolist()), params=qe.SearchParams(exact=True)))
            found += len({str(p.id) for p in exact} & {h.id for h in store.search("keys", q.tolist(), {}, 10)})
        return found / (10 * len(queries))

    shipped = recall()
    monkeypatch.setattr(edge, "DENSE_EF", 10, raising=False)  # no more candidates than the limit
    narrow = recall()
    store.close()
    assert shipped >= 0.98 and narrow < shipped - 0.05, (shipped, narrow)


def _rss_kib(directory: Path, part: str = "") -> int:
    """This process's resident KiB of mappings of files in ``directory`` (whose path holds ``part``)."""
    prefix, total, inside = str(directory.resolve()) + "/", 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            inside = len(fields) > 5 and fields[5].startswith(prefix) and part in fields[5]
        elif fields[0] == "Rss:" and inside:
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc")
def test_the_write_ahead_log_read_at_open_is_not_left_resident(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    records = _records(_unit(np.random.default_rng(6), 4000))
    for i in range(0, len(records), 200):  # a WAL of some MiB: what the open reads through
        store.upsert("keys", records[i : i + 200])
    store.close()

    reopened = EdgeStore(tmp_path)
    reopened.ensure(SPEC)
    resident = _rss_kib(tmp_path / "keys" / "wal")
    hits = reopened.search("keys", records[7].vector or [], {"project": "p"}, 1)
    reopened.upsert("keys", _records(_unit(np.random.default_rng(7), 10), project="after"))
    found = reopened.count("keys", {"project": "after"})
    reopened.close()

    assert resident < 256, f"{resident} KiB of the WAL resident after the open"
    assert [h.id for h in hits] == [records[7].id] and found == 10  # and the store works as before


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc")
def test_the_payload_indexes_an_open_reads_whole_are_not_left_resident(tmp_path: Path) -> None:
    """An appendable segment's keyword and range indexes are page files the engine reads whole at
    load (3 MiB each, however few their points): 30 MiB of every restarted daemon was the small
    collections' range indexes. They are paged out after the open; filters still answer."""
    store = EdgeStore(tmp_path)
    store.ensure(FLOAT_SPEC)
    records = _records(_unit(np.random.default_rng(8), edge.KEYWORD_INDEX_AT + 64))
    store.upsert("keys", records)
    store.close()

    reopened = EdgeStore(tmp_path)
    reopened.ensure(FLOAT_SPEC)
    resident = _rss_kib(tmp_path / "keys", "/payload_index/")
    below = reopened.count("keys", {"n": Range(lte=99), "project": "p"})
    newest = [r.payload["n"] for r in reopened.scan("keys", {"project": "p"}, 2, order_by="n")]
    reopened.upsert("keys", _records(_unit(np.random.default_rng(9), 10), project="after"))
    after = reopened.count("keys", {"project": "after"})
    reopened.close()

    assert resident < 1024, f"{resident} KiB of payload index files resident after the open"
    assert below == 100 and newest == [len(records) - 1, len(records) - 2] and after == 10


@pytest.mark.slow  # a graph of 10,000 points of 384 dims: ~5 s
def test_a_project_of_a_thousand_memories_is_searched_exactly_and_a_tenant_through_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The product's vectors (384 dims) and full-scan threshold; a segment small enough to be
    # indexed here. Two projects of 5,000 keys (1,000 memories with five keys each): a search
    # within one is an exact scan through the project's payload index (recall 1.0 even at
    # hnsw_ef 10); a search of the whole tenant walks the graph (BENCHMARKS.md, "Session 12").
    dim = 384
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 2_000)
    spec = CollectionSpec(name="keys", dim=dim, model="test-model", keyword_fields=("tenant", "project"),
                          hot_fields=("tenant", "project"))
    rng = np.random.default_rng(12)
    store = EdgeStore(tmp_path)
    store.ensure(spec)
    for project in ("a", "b"):
        v = rng.standard_normal((5000, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        records = [Record(str(uuid.uuid4()), {"tenant": "t", "project": project}, x.tolist()) for x in v]
        for i in range(0, len(records), 1000):
            store.upsert("keys", records[i : i + 1000])
    store.compact()
    shard = store._shards["keys"]
    queries = rng.standard_normal((20, dim)).astype(np.float32)

    def recall(where: dict[str, str]) -> float:
        flt = edge._filter(where)
        found = 0
        for q in queries:
            nearest = qe.Query.Nearest(q.tolist())
            exact = shard.query(qe.QueryRequest(limit=10, query=nearest, filter=flt, params=qe.SearchParams(exact=True)))
            walked = shard.query(qe.QueryRequest(limit=10, query=nearest, filter=flt, params=qe.SearchParams(hnsw_ef=10)))
            found += len({p.id for p in exact} & {p.id for p in walked})
        return found / (10 * len(queries))

    project, tenant = recall({"tenant": "t", "project": "a"}), recall({"tenant": "t"})
    store.close()
    assert project == 1.0 and tenant < 0.95, (project, tenant)


def test_a_key_search_makes_no_id_strings_it_is_not_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key search reads ~240 hits for their payload alone: their ids become strings (a
    ``uuid.UUID`` built in Python, then formatted) only when read, and then equal the port's."""
    from contextd_mcp.ports.vector_store import Hit

    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    records = _records(_unit(np.random.default_rng(21), 60))
    store.upsert("keys", records)
    made: list[int] = []
    real = uuid.UUID.__init__

    def counted(self: uuid.UUID, *args: object, **kwargs: object) -> None:
        made.append(1)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(uuid.UUID, "__init__", counted)
    dense, lexical = store.dense_and_sparse("keys", records[3].vector or [], {3: 1.0}, {"tenant": "t"}, 20, ["n"])
    assert len(dense) == 20 and lexical and {h.payload["n"] for h in dense} and not made
    assert dense[0].id == records[3].id and made  # read: made, and the record's own id
    monkeypatch.undo()
    assert dense[0] == Hit(id=records[3].id, score=dense[0].score, payload=dense[0].payload) == dense[0]
    assert dense[0] != dense[1]
    store.close()


def test_a_bulk_store_compacts_each_chunk_without_a_graph_and_the_real_settings_build_it_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``contextd-mcp compact`` does when it moves keys in chunks: each chunk compacted under
    the bulk settings leaves the appendable segment (which holds its points on the heap) for a
    memory-mapped one with no graph; reopened as a daemon opens it, the compaction builds the graph."""
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 10)  # a chunk of 500 codes of 32 bytes is over
    with pytest.raises(ValueError, match="bulk"):
        EdgeStore(tmp_path, index_after=100, bulk=True)
    records = _records(_unit(np.random.default_rng(5), 2000))
    bulk = EdgeStore(tmp_path, bulk=True)
    bulk.ensure(SPEC)
    for chunk in range(4):
        bulk.upsert("keys", records[chunk * 500:(chunk + 1) * 500])
        bulk.compact()
        info = edge_info(bulk)
        # indexed_vectors_count counts the sparse vectors too: every dense one has left the appendable segment
        assert info.indexed_vectors_count - info.points_count == (chunk + 1) * 500
        assert _graphs(tmp_path) == {None, 0}  # the empty appendable segment's "plain", and m 0
    bulk.close()

    store = EdgeStore(tmp_path)
    store.ensure(SPEC)
    store.compact()
    hits = store.search("keys", records[7].vector, {}, 1)  # type: ignore[arg-type]
    store.close()
    assert _graphs(tmp_path) == {None, edge.HNSW_M}
    assert hits[0].id == records[7].id


def _graphs(root: Path) -> set[int | None]:
    """The HNSW ``m`` of each segment of the collection "keys" (None: no graph index at all)."""
    found = set()
    for segment in (root / "keys").resolve().joinpath("segments").iterdir():
        index = json.loads((segment / "segment.json").read_text())["config"]["vector_data"][""]["index"]
        found.add(index.get("options", {}).get("m") if index["type"] == "hnsw" else None)
    return found


def test_the_compact_command_refuses_a_chunk_of_no_memories(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    done = run_cli(tmp_path / "data", "compact", "--data-dir", str(tmp_path / "data"), "--chunk", "0")

    assert done.returncode == 2
    assert "--chunk" in done.stderr and "from 1 to 10,000,000" in done.stderr, done.stderr
