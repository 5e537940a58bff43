"""VectorStore on the embedded Qdrant Edge engine: one shard directory per collection.

Edge shards are synchronous and not documented as thread-safe, so every call holds
one lock; calls take microseconds to a few milliseconds (DESIGN.md §3). Writes also take a
second lock, the write gate, which indexing holds while it copies a shard (searches go on).

A collection whose unindexed part passes ``index_after`` points is indexed by a child process
on a copy, swapped in when built (adapters/edge_indexing.py, edge_generations.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from uuid import UUID
from typing import Any

import qdrant_edge as qe

from contextd_mcp import limits
from contextd_mcp.adapters import edge_generations as gen
from contextd_mcp.adapters import edge_warm
from contextd_mcp.adapters.edge_indexing import IndexJob, StageHook
from contextd_mcp.adapters.mapped_files import let_go, page_out
from contextd_mcp.adapters.sparse_rewrite import OWNER, Engine, Page, TermLayouts
from contextd_mcp.adapters.store_meta import check_model
from contextd_mcp.adapters import uniform_fields
from contextd_mcp.adapters.uniform_fields import UniformFields
from contextd_mcp.errors import NotFound
from contextd_mcp.ports import vector_store as port
from contextd_mcp.ports.vector_store import (
    CollectionSpec,
    Hit,
    Range,
    Record,
    Sparse,
    SparseRemap,
    Where,
    placeholder_vector,
)

log = logging.getLogger("contextd_mcp")

_META = "contextd-collection.json"
# Keyword payload indexes are built once a collection holds this many points (see _index_if_large):
# a spec's hot fields early, the others late.
HOT_INDEX_AT = 200
KEYWORD_INDEX_AT = 2000
# The sparse vector's name; the dense one stays unnamed, so dense-only collections are unchanged.
_SPARSE = "lexical"
# Segments (BENCHMARKS.md, "Session 5: scale"). Points arrive in an appendable segment that keeps
# its id tracker, payload indexes and sparse index on the heap (100k memories with five keys: a
# 2 GiB daemon, tens of seconds to reopen). The optimizer (``compact``) turns segments over INDEXING_THRESHOLD_KB into
# immutable ones, memory-mapped and built with an HNSW graph; until then they are searched exactly.
INDEXING_THRESHOLD_KB = 8_000  # ≈ 5k float32 vectors of 384 dims
MAX_SEGMENT_KB = 400_000  # ≈ 260k vectors: two segments for 100k memories' keys, one per core
SEGMENTS = 2  # searched in parallel, one per core
# A mass rewrite (``contextd-mcp compact`` moving every key of an older store) writes into the
# appendable segment, which holds its points on the heap: 500k moved keys peaked at 2.2 GiB of
# heap (BENCHMARKS.md, "Session 17"). Compacted after each chunk under these settings, a chunk
# moves to a memory-mapped segment at the cost of a copy: no graph (m 0), many segments allowed
# before the merge optimizer joins them, and no vacuum of the segment the points left (each would
# copy it again). The compaction under the real settings afterwards builds the graphs once.
BULK_SEGMENTS = 200
BULK_DELETED = 0.99
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
# Candidates a dense search keeps while walking a segment's graph (at least its limit). The
# engine's default (ef_construct, 100) found 0.974-0.978 of the exact top 10 at 100k memories
# (500k keys); 160 finds 0.986-0.988 for ~0.4 ms more a search (BENCHMARKS.md, "Session 11: scale").
DENSE_EF = 160
# Below this many KB of vectors in a segment a filtered search scans exactly, not the graph
# (a project of a few thousand keys among many projects).
FULL_SCAN_KB = 2_000
# Scope fields: stored per tenant in immutable segments, so a project's points are read together.
_TENANT_FIELDS = ("tenant", "project")
# Payload indexes are memory-mapped (Cold), not rebuilt on the heap at every open: in an
# immutable segment they are then read from the page cache, which makes opening a built
# generation cheap and keeps them out of RSS (BENCHMARKS.md, "Session 7: scale"). An appendable
# segment keeps its indexes on the heap whatever the setting (the engine's).
# Except a spec's pinned fields (Pinned: on the heap): a filtered graph search checks each of
# them at every point it visits, and on the mapped index those checks were most of a dense key
# search at 100k memories (3.5 ms of 3.7 with the three owner fields; 1.05 ms pinned), for
# ~12 MiB of heap per field at 500k points and no measurable cost to an open
# (BENCHMARKS.md, "Session 11: scale").
_ON_DISK_TYPES = (qe.PayloadSchemaType.Keyword, qe.PayloadSchemaType.Float)
# ... but only while the collection holds at most this many points. The pinned indexes' heap grows
# with every point (~100 B a point for the three owner fields: 1M memories, 5M keys, 500 MiB of a
# 1 GiB daemon), and what they buy, a cheap filter check at each point a graph walk visits, is
# spent only by searches that walk the graph with the scope's filter: a project under the
# full-scan threshold (about 1,000 memories) is scanned through its payload index instead, nearly
# as fast on mapped indexes (1M memories over 1,000 projects: key batch 1.3 ms mapped, 1.7 pinned;
# through MCP ~0.5 ms of p50, for 460 MiB of RSS). Up to this size (100k memories in one project:
# 500k keys) they stay pinned (BENCHMARKS.md, "Session 12").
PIN_MAX_POINTS = 2_000_000
# Pinned again only once back under this share of the limit: a collection hovering at the limit
# would otherwise move its indexes (15-40 s) at every start.
_REPIN_BELOW = 0.8


def _index_params(
    name: str, kind: qe.PayloadSchemaType, pinned: bool = False
) -> qe.KeywordIndexParams | qe.FloatIndexParams:
    if kind == qe.PayloadSchemaType.Float:
        return qe.FloatIndexParams(memory=qe.Memory.Cold)
    memory = qe.Memory.Pinned if pinned else qe.Memory.Cold
    return qe.KeywordIndexParams(is_tenant=name in _TENANT_FIELDS, memory=memory)


def placement_moves(shard: qe.EdgeShard, pinned: Sequence[str]) -> list[qe.UpdateOperation]:
    """The index operations that put each of ``shard``'s payload indexes where ``pinned`` says:
    on the heap for those fields, memory-mapped for the others (none where all are in place)."""
    moves = []
    for name, info in shard.info().payload_schema.items():
        if info.data_type not in _ON_DISK_TYPES:
            continue
        params = _index_params(name, info.data_type, name in pinned)
        if getattr(info.params, "memory", None) != params.memory:
            moves.append(qe.UpdateOperation.create_field_index(name, params))
    return moves


def _config(spec: CollectionSpec, bulk: bool = False) -> qe.EdgeConfig:
    """``bulk``: the settings of a mass rewrite (``EdgeStore(bulk=True)``), which a compaction
    under the real ones follows; see ``BULK_SEGMENTS``."""
    # Cold: vectors are paged in as searches touch them. The default (Cached) keeps a 32 MiB
    # preallocated chunk resident per collection, even for a handful of points. Turbo8 (8-bit
    # TurboQuant codes): a quarter of float32's memory and bandwidth for an exact search (100k
    # memories: 38 MiB and 19 ms, against 154 MiB and 31 ms); R@k and MRR on both retrieval
    # sets are the same as with float32 (BENCHMARKS.md).
    vectors = qe.EdgeVectorParams(
        size=spec.dim, distance=qe.Distance.Cosine, memory=qe.Memory.Cold, datatype=qe.VectorStorageDatatype.Turbo8
    )
    # The sparse index defaults to Pinned (on the heap); Cold maps it from disk.
    sparse = {_SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, memory=qe.Memory.Cold)} if spec.sparse else None
    return qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors=sparse,
        hnsw_config=qe.HnswIndexConfig(
            m=0 if bulk else HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB, max_indexing_threads=1,
            memory=qe.Memory.Cold,
        ),
        optimizers=qe.EdgeOptimizersConfig(
            indexing_threshold=INDEXING_THRESHOLD_KB, max_segment_size=MAX_SEGMENT_KB,
            default_segment_number=BULK_SEGMENTS if bulk else SEGMENTS,
            deleted_threshold=BULK_DELETED if bulk else None,
            prevent_unoptimized=False,  # a point is searchable (exactly) as soon as it is written
        ),
        payload_memory=qe.Memory.Cold,
        id_tracker_memory=qe.Memory.Cold,
    )


def _dense_params() -> qe.SearchParams:
    return qe.SearchParams(hnsw_ef=DENSE_EF)


def _condition(key: str, value: object) -> qe.FieldCondition:
    if isinstance(value, Range):
        return qe.FieldCondition(key=key, range=qe.RangeFloat(gte=value.gte, lte=value.lte))
    if isinstance(value, list):
        return qe.FieldCondition(key=key, match=qe.MatchAny(list(value)))
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))  # type: ignore[arg-type]


def _filter(where: Where) -> qe.Filter | None:
    if not where:
        return None
    return qe.Filter(must=[_condition(k, v) for k, v in where.items()])


def _by_ids(ids: Sequence[str], where: Where) -> qe.Filter:
    """These ids, if they match ``where``: what by-id writes apply to, checked by the engine."""
    return qe.Filter(must=[qe.HasIdCondition(set(ids)), *(_condition(k, v) for k, v in where.items())])


def _matches(payload: Mapping[str, Any], where: Where) -> bool:
    """Re-checks a by-id read against the scope filter (retrieve takes no filter)."""
    for key, cond in where.items():
        value = payload.get(key)
        if isinstance(cond, Range):
            if not isinstance(value, int | float):
                return False
            if (cond.gte is not None and value < cond.gte) or (cond.lte is not None and value > cond.lte):
                return False
        elif isinstance(cond, list):
            values = value if isinstance(value, list) else [value]
            if not set(values) & set(cond):
                return False
        elif value != cond:
            return False
    return True


def _sparse(values: Sparse) -> qe.SparseVector:
    indices = sorted(values)
    return qe.SparseVector(indices, [float(values[i]) for i in indices])


def _of_sparse(vector: Any) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    """Replaces ``path`` durably: a crash leaves the old file or the new one, never half."""
    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as out:
        out.write(json.dumps(value))  # dumps: the C encoder (dump streams through the Python one)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _payload(fields: Sequence[str] | None) -> bool | list[str]:
    """What of each point's payload to read: all (None), none (empty: the engine then does not
    touch the payload storage, which a list of no fields still reads), or those fields."""
    if fields is None:
        return True
    return list(fields) or False


def _valid_id(record_id: str) -> bool:
    try:
        uuid.UUID(record_id)
    except ValueError:
        return False
    return True


def _optimize(shard: qe.EdgeShard) -> float:
    started = time.perf_counter()
    shard.optimize()
    shard.flush()
    return round(time.perf_counter() - started, 2)


def compact_store(root: Path) -> dict[str, float]:
    """``EdgeStore.compact`` for every collection under ``root``, each under the settings it was
    last opened with (the daemon writes ``_config``'s at every open). No daemon may hold it."""
    took = {}
    for path in sorted(p for p in root.iterdir() if (p / _META).exists()):
        gen.recover(root, path.name)
        shard = qe.EdgeShard.load(str(path))
        try:
            took[path.name], _ = _compact(shard, path)
        finally:
            shard.close()
    return took


def _compact(shard: qe.EdgeShard, path: Path) -> tuple[float, int]:
    """Optimizes ``shard`` (at ``path``) and records in its generation's marker that every point
    is indexed now: left at an older count, the next daemon would index the whole collection again
    at its first writes (BENCHMARKS.md, "Session 12: 100k with writes", §1). Seconds, points."""
    took = _optimize(shard)
    points = int(shard.info().points_count)
    gen.write_marker(path.resolve(), {"indexed_points": points, "built_at": time.time()})
    return took, points


class EdgeStore:
    def __init__(
        self, root: Path, index_after: int = 0, on_stage: StageHook | None = None, index_nice: int = 19, bulk: bool = False
    ) -> None:
        """``index_after``: unindexed points at which a collection is indexed in a child process
        (0: never, the default of a store opened by a command rather than the daemon), run at
        ``index_nice``. ``bulk``: collections open under the settings of a mass rewrite (``_config``),
        for a command that compacts them afterwards; never with indexing."""
        if bulk and index_after:
            raise ValueError("a bulk store is compacted by its command, not indexed in the background")
        self._bulk = bulk
        self._root = self.root = root
        self._index_after = index_after
        self._on_stage = on_stage
        self._index_nice = index_nice
        self._specs: dict[str, CollectionSpec] = {}
        self._term_layouts = TermLayouts(self._terms_engine)
        self._indexed: dict[str, int] = {}  # points the live generation's indexing saw
        self._jobs: dict[str, IndexJob] = {}
        self._oplogs: dict[str, list[qe.UpdateOperation]] = {}  # writes since a copy, per collection
        self._logged: dict[str, int] = {}  # points those writes carry
        self._closing = False
        self.write_gate = threading.RLock()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        # Keyword indexes not built yet: (points at which to build them, fields), soonest first.
        self._unindexed: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        self._writes: dict[str, int] = {}
        self._uniform = UniformFields()  # read and written under the lock, with the engine
        self._lock = threading.RLock()
        root.mkdir(parents=True, exist_ok=True)

    def _shard(self, collection: str) -> qe.EdgeShard:
        try:
            return self._shards[collection]
        except KeyError:
            raise NotFound("collection", collection) from None

    def ensure(self, spec: CollectionSpec) -> None:
        with self.write_gate, self._lock:
            if spec.name in self._shards:
                return
            gen.recover(self._root, spec.name)
            path = self._root / spec.name
            meta_path = path / _META
            self._indexed[spec.name] = int(gen.read_marker(path.resolve()).get("indexed_points", 0))
            if meta_path.exists():
                meta = json.loads(meta_path.read_text())
                check_model(spec, meta.get("model"), meta.get("dim"))
                # The config given at load replaces the stored one: shards made before segment
                # settings existed get them (the vectors' own parameters are unchanged).
                shard = qe.EdgeShard.load(str(path), _config(spec, self._bulk))
            else:
                shard = qe.EdgeShard.create(str(path), _config(spec, self._bulk))
                # Range indexes are what order_by needs, so they exist from the start.
                for name in spec.float_fields:
                    shard.update(qe.UpdateOperation.create_field_index(name, _index_params(name, qe.PayloadSchemaType.Float)))
                shard.flush()
                meta_path.write_text(json.dumps({"model": spec.model, "dim": spec.dim}))
            self._shards[spec.name] = shard
            self._specs[spec.name] = spec
            self._dims[spec.name] = spec.dim
            cold = tuple(f for f in spec.keyword_fields if f not in spec.hot_fields)
            self._unindexed[spec.name] = [(HOT_INDEX_AT, tuple(spec.hot_fields)), (KEYWORD_INDEX_AT, cold)]
            self._add_range_indexes(spec.name)
            self._index_if_large(spec.name)
            # Before the placement: a field every point shares is never in a search's filter,
            # so its index is not pinned.
            self._uniform.learn(spec.name, shard, spec.hot_fields, path / uniform_fields.RECORD)
            self._place_indexes(spec.name)
            page_out(path / "wal")  # read through at open, only appended to after
            # What the engine read whole at load, and the indexes the question above read through
            # (45 MiB of three owner fields' at 500k points); a search's few pages come back as
            # minor faults.
            let_go(path / "segments", _index_file)

    def _apply(self, collection: str, op: qe.UpdateOperation, points: int = 1) -> None:
        """Every write goes through here, under the write gate and the lock: while the collection
        is being indexed, it is logged for the replay onto the new generation. ``points``: how
        many the operation carries (what the log's bound counts)."""
        self._shard(collection).update(op)
        log = self._oplogs.get(collection)
        if log is not None:
            log.append(op)
            self._logged[collection] = self._logged.get(collection, 0) + points
            if self._logged[collection] > limits.INDEX_OPLOG_MAX_POINTS:
                del self._oplogs[collection]  # the job sees it gone and gives up

    def _create_indexes(self, collection: str, fields: Sequence[str], kind: qe.PayloadSchemaType) -> bool:
        """Indexes of ``kind`` for those of ``fields`` the collection has none for; whether it made any."""
        shard = self._shards[collection]
        present = set(shard.info().payload_schema)
        missing = [name for name in fields if name not in present]
        pinned = self._pinned(collection)
        for name in missing:
            params = _index_params(name, kind, name in pinned)
            self._apply(collection, qe.UpdateOperation.create_field_index(name, params))
        if missing:
            shard.flush()
        return bool(missing)

    def _add_range_indexes(self, collection: str) -> None:
        """Range indexes the spec names that the collection was made without (a field added to a
        spec later, as ``keys_version``), made once, at the open that first knows of them: the
        engine reads every payload for it (BENCHMARKS.md "Session 13")."""
        if self._create_indexes(collection, self._specs[collection].float_fields, qe.PayloadSchemaType.Float):
            log.info("indexed %s's new range fields (once)", collection)
            # Every payload was read for them; the searches' few are read again as minor faults.
            let_go(self._root / collection / "segments", _payload_file)

    def _pinned(self, collection: str) -> tuple[str, ...]:
        """The spec's pinned fields, none once the collection is past PIN_MAX_POINTS (and until it
        is back under _REPIN_BELOW of it)."""
        info = self._shards[collection].info()
        points = int(info.points_count)
        # A field every point shares is left out of every filter (adapters/uniform_fields.py):
        # pinned, it would hold ~25 MiB of heap at 500k points for no check.
        fields = tuple(f for f in self._specs[collection].pinned_fields if not self._uniform.holds(collection, f))
        if points > PIN_MAX_POINTS:
            return ()
        if points > PIN_MAX_POINTS * _REPIN_BELOW:
            schema = info.payload_schema
            if any(getattr(schema[name].params, "memory", None) == qe.Memory.Cold for name in fields if name in schema):
                return ()
        return fields

    def _place_indexes(self, collection: str) -> None:
        """Payload indexes placed otherwise than the spec says (made before they were placed on
        disk, or before a field was pinned, or before the collection passed PIN_MAX_POINTS) are
        made again where they belong (once per store: the placement is kept with the index; 500k
        points: ~10 s for three fields; 5M points, unpinned: 38 s)."""
        moves = placement_moves(self._shards[collection], self._pinned(collection))
        for op in moves:
            self._apply(collection, op)
        if moves:
            self._shards[collection].flush()

    def pinned(self, name: str) -> tuple[str, ...]:
        """The fields whose indexes the collection's owners now call for on the heap: an indexing
        job's child places the new generation's indexes so (adapters/edge_indexer.py), and a store
        that gained an owner since its open has them at the next swap, not at the next open."""
        with self._lock:
            return self._pinned(name)

    def _index_if_large(self, collection: str) -> None:
        """Build keyword indexes once a collection is big enough for them to pay.

        Every payload index maps 4-6 MiB that stays resident once the shard is loaded. Without
        one a filter reads each candidate's stored payload (1,000 memories: 22 ms against
        0.9 ms; 200: ~1 ms), which small collections (sessions, branches, policies, skills...)
        can afford. A spec's hot_fields, on which its every search filters, are indexed at
        HOT_INDEX_AT points, the rest at KEYWORD_INDEX_AT. Filters give the same results either
        way: an index only changes the speed.
        """
        stages = self._unindexed.get(collection)
        if not stages:
            return
        shard = self._shards[collection]
        points = int(shard.info().points_count)
        while stages and points >= stages[0][0]:
            self._create_indexes(collection, stages.pop(0)[1], qe.PayloadSchemaType.Keyword)
        if not stages:
            self._unindexed.pop(collection, None)

    def _filter(self, collection: str, where: Where) -> qe.Filter | None:
        """The engine's filter for ``where``: without the conditions every point of the
        collection meets (adapters/uniform_fields.py). Under the lock, with the query it serves."""
        return _filter(self._uniform.needed(collection, where))

    def _vector(self, collection: str, record: Record) -> Any:
        dense = record.vector or placeholder_vector(self._dims[collection])
        if not record.sparse:
            return dense
        return {"": dense, _SPARSE: _sparse(record.sparse)}

    def upsert(self, collection: str, records: Sequence[Record]) -> None:
        points = [qe.Point(id=r.id, vector=self._vector(collection, r), payload=r.payload) for r in records]
        with self.write_gate, self._lock:
            self._uniform.wrote(collection, (r.payload for r in records))
            self._apply(collection, qe.UpdateOperation.upsert_points(points), len(points))
            self._writes[collection] = self._writes.get(collection, 0) + len(points)
            if self._writes[collection] >= 64:  # look at the size now and then, not per write
                self._writes[collection] = 0
                self._index_if_large(collection)
                self._maybe_index(collection)

    def get(
        self, collection: str, ids: Sequence[str], where: Where, fields: Sequence[str] | None = None
    ) -> list[Record]:
        wanted: list[int | UUID | str] = [i for i in ids if _valid_id(i)]
        if not wanted:
            return []
        # The filter's fields are read too: the scope is re-checked on what comes back.
        payload: Any = True if fields is None else sorted({*fields, *where})
        with self._lock:
            found = self._shard(collection).retrieve(wanted, with_payload=payload, with_vector=False)
        return [Record(id=str(r.id), payload=dict(r.payload or {})) for r in found if _matches(r.payload or {}, where)]

    def search(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]:
        payload = _payload(fields)
        query = qe.Query.Nearest(list(vector))
        with self._lock:
            request = qe.QueryRequest(
                limit=limit, query=query, filter=self._filter(collection, where), with_payload=payload,
                params=_dense_params(),
            )
            points = self._shard(collection).query(request)
        return _hits(points)

    def sparse_search(
        self, collection: str, sparse: Sparse, where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]:
        if not sparse:
            return []
        payload = _payload(fields)
        query = qe.Query.Nearest(_sparse(sparse), using=_SPARSE)
        with self._lock:
            request = qe.QueryRequest(limit=limit, query=query, filter=self._filter(collection, where), with_payload=payload)
            points = self._shard(collection).query(request)
        return _hits(points)

    def dense_and_sparse(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        dense, lexical, _ = self._key_batch(collection, vector, sparse, where, limit, fields, None)
        return dense, lexical

    def dense_sparse_narrowed(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        narrowed: Where,
        narrowed_limit: int,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit], list[Hit]]:
        return self._key_batch(collection, vector, sparse, where, limit, fields, ({**where, **narrowed}, narrowed_limit))

    def _key_batch(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        fields: Sequence[str] | None,
        narrowed: tuple[Where, int] | None,
    ) -> tuple[list[Hit], list[Hit], list[Hit]]:
        payload = _payload(fields)
        nearest = qe.Query.Nearest(list(vector))
        dense = _dense_params()
        lexical = qe.Query.Nearest(_sparse(sparse), using=_SPARSE) if sparse else None
        with self._lock:
            flt = self._filter(collection, where)
            queries = [qe.QueryRequest(limit=limit, query=nearest, filter=flt, with_payload=payload, params=dense)]
            if narrowed is not None:
                learned = self._filter(collection, narrowed[0])
                queries.append(
                    qe.QueryRequest(limit=narrowed[1], query=nearest, filter=learned, with_payload=payload, params=dense)
                )
            if lexical is not None:
                queries.append(qe.QueryRequest(limit=limit, query=lexical, filter=flt, with_payload=payload))
            # One planned batch: the searches share a pass over the segments.
            found = self._shard(collection).query_batch(qe.QueryBatchRequest(queries))
        hits = [_hits(points) for points in found]
        third = hits.pop(1) if narrowed is not None else []
        return hits[0], hits[1] if sparse else [], third

    def hybrid_search(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        candidates: int = 50,
        weights: tuple[float, float] = (1.0, 1.0),
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        payload = _payload(fields)
        with self._lock:
            flt = self._filter(collection, where)
            prefetches = [
                qe.Prefetch(limit=candidates, query=qe.Query.Nearest(list(vector)), filter=flt, params=_dense_params())
            ]
            if sparse:
                query = qe.Query.Nearest(_sparse(sparse), using=_SPARSE)
                prefetches.append(qe.Prefetch(limit=candidates, query=query, filter=flt))
            fusion = qe.Fusion.Rrf(k=port.RRF_K, weights=list(weights[: len(prefetches)]))
            # The filter sits on the prefetches only: fused results come from them, and a second
            # top-level pass over the same filter costs ~30 % more on unindexed collections.
            request = qe.QueryRequest(limit=limit, query=fusion, prefetches=prefetches, with_payload=payload)  # type: ignore[arg-type]  # the stub lists Fusion, not its Rrf variant
            points = self._shard(collection).query(request)
        return _hits(points)

    def scan(
        self,
        collection: str,
        where: Where,
        limit: int,
        order_by: str | None = None,
        descending: bool = True,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        order = None
        if order_by:
            direction = qe.Direction.Desc if descending else qe.Direction.Asc
            order = qe.OrderBy(key=order_by, direction=direction)
        payload = _payload(fields)
        with self._lock:
            request = qe.ScrollRequest(limit=limit, filter=self._filter(collection, where), with_payload=payload, order_by=order)
            records, _ = self._shard(collection).scroll(request)
        return [Record(id=str(r.id), payload=dict(r.payload or {})) for r in records]

    def set_fields(self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where) -> None:
        if not _valid_id(record_id):
            return
        flt = _by_ids([record_id], where)
        with self.write_gate, self._lock:
            self._uniform.set(collection, fields)
            self._apply(collection, qe.UpdateOperation.set_payload_by_filter(flt, dict(fields)))

    def delete(self, collection: str, ids: Sequence[str], where: Where) -> None:
        wanted = [i for i in ids if _valid_id(i)]
        if wanted:
            with self.write_gate, self._lock:
                self._apply(collection, qe.UpdateOperation.delete_points_by_filter(_by_ids(wanted, where)))

    def count(self, collection: str, where: Where) -> int:
        with self._lock:
            return int(self._shard(collection).count(qe.CountRequest(exact=True, filter=self._filter(collection, where))))

    # -- term layout (adapters/sparse_rewrite.py) --------------------------------------------

    def term_key(self, collection: str) -> bytes:
        return self._term_layouts.key(collection)

    def rewrite_sparse(self, collection: str, layout: str, remap: SparseRemap) -> int:
        written = self._term_layouts.rewrite(collection, layout, remap)
        if written:
            self._unindexed_by_rewrite(collection, written)
        return written

    def _unindexed_by_rewrite(self, collection: str, written: int) -> None:
        """A rewritten point leaves its indexed segment (the engine copies it on write into the
        appendable one), so the live generation's record of what its indexing saw no longer
        holds: left as it was, no job would start and a large store would be scanned whole
        from then on. The record is lowered on disk too, for the next open."""
        with self.write_gate, self._lock:
            live = (self._root / collection).resolve()
            indexed = max(0, self._indexed.get(collection, 0) - written)
            self._indexed[collection] = indexed
            record = gen.read_marker(live)
            if record:
                gen.write_marker(live, {**record, "indexed_points": indexed})
            self._maybe_index(collection)

    def _terms_engine(self, collection: str) -> Engine:
        meta_path = self._root / collection / _META
        shard = self._shard(collection)

        def read(offset: Any, limit: int) -> Page:
            request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=list(OWNER), with_vector=[_SPARSE])
            with self._lock:
                points, following = shard.scroll(request)
            vectors: list[Any] = [p.vector or {} for p in points]
            items = [(str(p.id), dict(p.payload or {}), _of_sparse(v[_SPARSE]))
                     for p, v in zip(points, vectors, strict=True) if _SPARSE in v]
            return items, None if following is None else str(following)

        def write(batch: list[tuple[str, Sparse]]) -> None:
            op = qe.UpdateOperation.update_vectors([qe.PointVectors(id=i, vector={_SPARSE: _sparse(v)}) for i, v in batch])
            with self.write_gate, self._lock:
                self._apply(collection, op, len(batch))
                shard.flush()  # durable before the journal that holds it is dropped

        def load() -> dict[str, Any]:
            return dict(json.loads(meta_path.read_text()))

        return Engine(read, write, load, lambda state: _write_json(meta_path, state))

    def move_sparse(
        self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where, remap: SparseRemap
    ) -> None:
        if not _valid_id(record_id):
            return
        with self.write_gate, self._lock:
            shard = self._shard(collection)
            found = [p for p in shard.retrieve([record_id], with_payload=True, with_vector=True)
                     if _matches(p.payload or {}, where)]
            if not found:
                return
            point, payload = found[0], dict(found[0].payload or {})
            vector: dict[str, Any] = dict(point.vector or {})  # type: ignore[arg-type]  # named vectors
            if _SPARSE in vector:  # the dense vector as stored: one upsert moves owner and terms together
                vector[_SPARSE] = _sparse(remap(payload, _of_sparse(vector[_SPARSE])))
            self._uniform.wrote(collection, [{**payload, **fields}])
            self._apply(collection, qe.UpdateOperation.upsert_points([qe.Point(id=point.id, vector=vector,
                                                                               payload={**payload, **fields})]))

    def rename(self, collection: str, moves: Mapping[str, str], where: Where) -> None:
        wanted: list[int | UUID | str] = [i for i in moves if _valid_id(i) and _valid_id(moves[i])]
        if not wanted:
            return
        with self.write_gate, self._lock:
            shard = self._shard(collection)
            found = [p for p in shard.retrieve(wanted, with_payload=True, with_vector=True) if _matches(p.payload or {}, where)]
            if not found:
                return
            payloads = [dict(p.payload or {}) for p in found]
            self._uniform.wrote(collection, payloads)
            points = [qe.Point(id=moves[str(p.id)], vector=p.vector, payload=payload)  # type: ignore[arg-type]  # as read
                      for p, payload in zip(found, payloads, strict=True)]
            self._apply(collection, qe.UpdateOperation.upsert_points(points), len(points))
            self._apply(collection, qe.UpdateOperation.delete_points([p.id for p in found]))
        # The count stays, so nothing else would tell the indexing job these points need it.
        self._unindexed_by_rewrite(collection, len(points))

    def settling(self, collection: str) -> bool:
        if not self._index_after:  # never indexes (a command's store): nothing to wait for
            return False
        with self._lock:
            job = self._jobs.get(collection)
            if job is not None and job.is_alive():
                return True
            return self._backlog(collection) >= self._index_after

    def compact(self) -> dict[str, float]:
        """Runs the engine's optimizer on every collection: segments over the indexing threshold
        become immutable, memory-mapped and HNSW-indexed. Seconds per collection.

        Blocking, and it holds the GIL (qdrant-edge 0.9): for a store no daemon is serving
        (``contextd-mcp`` with the daemon stopped, the bench), never on a request path.
        """
        took = {}
        with self._lock:
            for name, shard in self._shards.items():
                took[name], self._indexed[name] = _compact(shard, self._root / name)
        return took

    def flush(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()

    def close(self) -> None:
        self._closing = True
        for job in list(self._jobs.values()):
            job.stop()  # kills its child; a job already swapping finishes the swap first
        for job in list(self._jobs.values()):
            job.join(timeout=60)
        with self._lock:
            if self._shards:
                self._record_working_set()
            for name, shard in self._shards.items():
                shard.flush()
                self._remember_uniform(name, shard)
                shard.close()
            self._shards.clear()
            self._uniform = UniformFields()

    def _remember_uniform(self, name: str, shard: qe.EdgeShard) -> None:
        try:
            self._uniform.remember(name, self._root / name / uniform_fields.RECORD, int(shard.info().points_count))
        except OSError as exc:  # not fatal: the next open asks the engine
            log.warning("could not record the shared scope fields of %s: %s", name, exc)

    def _record_working_set(self) -> None:
        """Which pages of the store's files this process touched, for the next start to read
        back (adapters/edge_warm.py): the engine's close is about to drop them from the cache."""
        if not self._root.is_dir():  # the data directory was removed under the daemon
            return
        try:
            edge_warm.record(self._root)
        except OSError as exc:  # not fatal: the next start reads the last record, or whole files
            log.warning("could not record the store's working set for the next start: %s", exc)

    def describe(self) -> dict[str, Any]:
        size = gen.disk_bytes(self._root)  # every generation, the one being built included
        with self._lock:
            points = {name: int(s.info().points_count) for name, s in self._shards.items()}
            shared = self._uniform.shared()
        return {
            "engine": "qdrant-edge (embedded)", "path": str(self._root), "disk_bytes": size, "points": points,
            "indexing": self.indexing(points),
            # Left out of every filter, and not pinned (adapters/uniform_fields.py).
            "shared_by_every_point": shared,
        }

    # Indexing off the request path (adapters/edge_indexing.py drives these).

    def indexing(self, points: Mapping[str, int]) -> dict[str, Any]:
        """Per collection: points not indexed yet, the threshold, and the current or last job."""
        return {
            name: {
                "unindexed_points": max(0, count - self._indexed.get(name, 0)),
                "index_after": self._index_after,
                **({"job": dict(self._jobs[name].state)} if name in self._jobs else {}),
            }
            for name, count in points.items()
        }

    def _maybe_index(self, collection: str) -> None:
        """Starts an IndexJob when the collection's unindexed part passes the threshold: one at a
        time per collection, none while closing, none within INDEX_RETRY_S of a failed one."""
        if not self._index_after or self._closing:
            return
        job = self._jobs.get(collection)
        if job is not None and (job.is_alive() or self._failed_lately(job)):
            return
        if self._backlog(collection) < self._index_after:
            return
        self._jobs[collection] = IndexJob(self, collection, self._on_stage, self._index_nice)
        self._jobs[collection].start()

    def _backlog(self, collection: str) -> int:
        """Points written since the live generation's index build saw the collection."""
        return int(self._shards[collection].info().points_count) - self._indexed.get(collection, 0)

    @staticmethod
    def _failed_lately(job: IndexJob) -> bool:
        return job.state.get("stage") == "failed" and time.time() - job.state.get("ended_at", 0) < limits.INDEX_RETRY_S

    def begin_log(self, name: str) -> int:
        """Flushes the shard and starts logging its writes; the caller holds the write gate and
        copies the files next. The points it holds now."""
        with self._lock:
            shard = self._shard(name)
            shard.flush()
            self._oplogs[name] = []
            self._logged[name] = 0
            return int(shard.info().points_count)

    def logged(self, name: str, start: int) -> list[qe.UpdateOperation] | None:
        """Writes logged since the copy, from ``start`` on; None if the log overflowed."""
        with self._lock:
            log = self._oplogs.get(name)
            return None if log is None else log[start:]

    def end_log(self, name: str) -> None:
        with self._lock:
            self._oplogs.pop(name, None)

    def open_generation(self, name: str, path: Path) -> qe.EdgeShard:
        return qe.EdgeShard.load(str(path), _config(self._specs[name]))

    def swap_in(self, name: str, shard: qe.EdgeShard, path: Path, replayed: int, record: dict[str, Any]) -> Path:
        """Replays the last logged writes onto ``shard`` (opened at ``path``), makes it the live
        generation and returns the old one's directory, to delete. Writes and searches wait for
        this step, and only this one."""
        with self.write_gate, self._lock:
            log = self._oplogs.pop(name, None)
            if log is None:
                raise RuntimeError("operations log overflowed")
            for op in log[replayed:]:
                shard.update(op)
            shard.flush()
            gen.write_marker(path, record)
            live = self._root / name
            old = live.resolve() if live.is_symlink() else gen.generations_dir(self._root, name) / gen.RETIRED
            # Closed before the link moves: a close flushes, and must not write through the new link.
            self._shards[name].close()
            try:
                gen.link(self._root, name, path)
            except BaseException:
                self._shards[name] = qe.EdgeShard.load(str(live), _config(self._specs[name]))
                raise
            self._shards[name] = shard
            self._indexed[name] = int(record.get("indexed_points", 0))
            page_out(path / "wal")
            let_go(path / "segments", _loaded_index_file)
            return old


# An appendable segment's payload index files (the engine's page store: pages, tracker, bitmask,
# gaps), read whole at load into the index it keeps on the heap; an immutable segment's indexes
# (data.bin, point_to_values.bin...) are what its searches read, and stay.
_LOADED_INDEX_FILE = re.compile(r"/payload_index/[^/]+/(page_\d+|tracker|bitmask|gaps)\.dat$")


def _loaded_index_file(path: str) -> bool:
    return _LOADED_INDEX_FILE.search(path) is not None


def _index_file(path: str) -> bool:
    return "/payload_index/" in path


def _payload_file(path: str) -> bool:
    return "/payload_storage/" in path


class _PointHit(Hit):
    """A hit whose id is made a string when first read. A key search reads ~240 hits for their
    payload alone, and each of the engine's ids costs ~1.2 µs to become a string (the binding
    builds a ``uuid.UUID`` in Python): 0.3 ms of a search at 100k memories (BENCHMARKS.md
    "Session 14"). Equal to a ``Hit`` of the same fields, as the port's hits are."""

    _point: Any

    def __init__(self, point: Any) -> None:  # the frozen dataclass's fields, set as it sets them
        init = object.__setattr__
        init(self, "_point", point)
        init(self, "score", float(point.score))
        init(self, "payload", dict(point.payload or {}))

    @property
    def id(self) -> str:  # the field, made read-only and lazy
        made = self.__dict__.get("_id")
        if made is None:
            made = str(self._point.id)
            object.__setattr__(self, "_id", made)
        return made

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return (self.id, self.score, self.payload) == (other.id, other.score, other.payload)

    __hash__ = None  # type: ignore[assignment]  # as the port's Hit: its payload is a dict


def _hits(points: Any) -> list[Hit]:
    """The engine's scored points as the port's hits."""
    return [_PointHit(p) for p in points]
