"""VectorStore on a Qdrant server or cluster through ``qdrant-client``.

Also runs against qdrant-client's local mode (a folder), which is how the contract
tests exercise this adapter on machines where no Qdrant server can run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from contextd_mcp.adapters.server_layout import ServerLayout
from contextd_mcp.adapters.sparse_rewrite import OWNER, Engine, Page, TermLayouts
from contextd_mcp.adapters.store_meta import check_model
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

_PREFIX = "contextd_"
# The sparse vector's name; the dense one stays unnamed, so dense-only collections are unchanged.
_SPARSE = "lexical"


def _condition(key: str, value: object) -> models.FieldCondition:
    if isinstance(value, Range):
        return models.FieldCondition(key=key, range=models.Range(gte=value.gte, lte=value.lte))
    if isinstance(value, list):
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _filter(where: Where) -> models.Filter | None:
    if not where:
        return None
    return models.Filter(must=[_condition(k, v) for k, v in where.items()])


def _by_ids(ids: Sequence[str], where: Where) -> models.Filter:
    """These ids, if they match ``where``: by-id reads and writes go through the filter in the engine."""
    conditions: list[Any] = [models.HasIdCondition(has_id=list(ids))]
    return models.Filter(must=conditions + [_condition(k, v) for k, v in where.items()])


def _sparse(values: Sparse) -> models.SparseVector:
    indices = sorted(values)
    return models.SparseVector(indices=indices, values=[float(values[i]) for i in indices])


# Scope fields every search filters on: stored by tenant (is_tenant) so a filtered search reads
# the points of one scope together, on a server that co-locates them.
_TENANT_FIELDS = ("tenant", "project")


def _keyword_index(field: str) -> models.KeywordIndexParams:
    return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=field in _TENANT_FIELDS)


def _collection_args(spec: CollectionSpec, layout: ServerLayout) -> dict[str, Any]:
    """create_collection's arguments for a server or cluster (README, "Moving to a Qdrant server")."""
    quantization = None
    if layout.quantization:
        scalar = models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        quantization = models.ScalarQuantization(scalar=scalar)
    return {
        "vectors_config": models.VectorParams(size=spec.dim, distance=models.Distance.COSINE, on_disk=True),
        "sparse_vectors_config": (
            {_SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)} if spec.sparse else None
        ),
        "shard_number": layout.shard_number,
        "replication_factor": layout.replication_factor,
        "write_consistency_factor": layout.write_consistency_factor,
        "on_disk_payload": layout.on_disk_payload,
        "quantization_config": quantization,
        "hnsw_config": models.HnswConfigDiff(
            m=layout.hnsw_m, payload_m=layout.hnsw_payload_m, ef_construct=layout.hnsw_ef_construct
        ),
        "metadata": {"model": spec.model, "dim": spec.dim},
    }


def _of_sparse(vector: Any) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


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


class QdrantClientStore:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        layout: ServerLayout | None = None,
    ) -> None:
        self._layout = layout or ServerLayout()
        self._term_layouts = TermLayouts(self._terms_engine)
        rescore = models.QuantizationSearchParams(rescore=True, oversampling=self._layout.oversampling)
        # Local mode searches exactly and warns at search params.
        self._params = models.SearchParams(quantization=rescore) if self._layout.quantization and path is None else None
        if path is not None:
            self._client = QdrantClient(path=str(path))
            self._where = f"local folder {path}"
            self._indexes = False  # local mode ignores payload indexes (and warns)
        else:
            self._client = QdrantClient(url=url, api_key=api_key, timeout=10)
            self._where = str(url)
            self._indexes = True
        # Local mode is not thread-safe; a server client is, but one lock costs nothing here.
        self._lock = threading.RLock()
        self._ready: set[str] = set()
        self._dims: dict[str, int] = {}

    def ensure(self, spec: CollectionSpec) -> None:
        name = _PREFIX + spec.name
        with self._lock:
            if spec.name in self._ready:
                return
            if self._client.collection_exists(name):
                info = self._client.get_collection(name)
                meta = info.config.metadata or {}
                check_model(spec, meta.get("model"), meta.get("dim"))
                present = set(info.payload_schema or {})
            else:
                self._client.create_collection(name, **_collection_args(spec, self._layout))
                present = set()
                if self._indexes:
                    for field in spec.keyword_fields:
                        self._client.create_payload_index(name, field, _keyword_index(field))
            if self._indexes:  # and range fields a spec gained after its collection was made
                for field in (f for f in spec.float_fields if f not in present):
                    self._client.create_payload_index(name, field, models.PayloadSchemaType.FLOAT)
            self._ready.add(spec.name)
            self._dims[spec.name] = spec.dim

    def _vector(self, collection: str, record: Record) -> Any:
        dense = record.vector or placeholder_vector(self._dims[collection])
        if not record.sparse:
            return dense
        return {"": dense, _SPARSE: _sparse(record.sparse)}

    def upsert(self, collection: str, records: Sequence[Record]) -> None:
        points = [models.PointStruct(id=r.id, vector=self._vector(collection, r), payload=r.payload) for r in records]
        with self._lock:
            self._client.upsert(_PREFIX + collection, points=points, wait=True)

    def get(
        self, collection: str, ids: Sequence[str], where: Where, fields: Sequence[str] | None = None
    ) -> list[Record]:
        wanted = [i for i in ids if _valid_id(i)]
        if not wanted:
            return []
        # A filtered scroll, not retrieve(): the scope filter must apply to by-id reads too.
        flt = _by_ids(wanted, where)
        with self._lock:
            found, _ = self._client.scroll(
                _PREFIX + collection, scroll_filter=flt, limit=len(wanted),
                with_payload=_payload(fields),
            )
        return [Record(id=str(r.id), payload=dict(r.payload or {})) for r in found]

    def search(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]:
        payload = _payload(fields)
        with self._lock:
            response = self._client.query_points(
                _PREFIX + collection, query=list(vector), query_filter=_filter(where), limit=limit, with_payload=payload,
                search_params=self._params,
            )
        return _hits(response.points)

    def sparse_search(
        self, collection: str, sparse: Sparse, where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]:
        if not sparse:
            return []
        payload = _payload(fields)
        with self._lock:
            response = self._client.query_points(
                _PREFIX + collection, query=_sparse(sparse), using=_SPARSE, query_filter=_filter(where), limit=limit,
                with_payload=payload,
            )
        return _hits(response.points)

    def dense_and_sparse(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        return self.search(collection, vector, where, limit, fields), self.sparse_search(collection, sparse, where, limit, fields)

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
        dense, lexical = self.dense_and_sparse(collection, vector, sparse, where, limit, fields)
        return dense, lexical, self.search(collection, vector, {**where, **narrowed}, narrowed_limit, fields)

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
        flt = _filter(where)
        prefetch = [models.Prefetch(query=list(vector), filter=flt, limit=candidates, params=self._params)]
        if sparse:
            prefetch.append(models.Prefetch(query=_sparse(sparse), using=_SPARSE, filter=flt, limit=candidates))
        fusion = models.RrfQuery(rrf=models.Rrf(k=port.RRF_K, weights=list(weights[: len(prefetch)])))
        with self._lock:
            response = self._client.query_points(
                _PREFIX + collection, prefetch=prefetch, query=fusion, limit=limit,
                with_payload=_payload(fields),
            )
        return _hits(response.points)

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
            direction = models.Direction.DESC if descending else models.Direction.ASC
            order = models.OrderBy(key=order_by, direction=direction)
        with self._lock:
            found, _ = self._client.scroll(
                _PREFIX + collection, scroll_filter=_filter(where), limit=limit, order_by=order,
                with_payload=_payload(fields),
            )
        return [Record(id=str(r.id), payload=dict(r.payload or {})) for r in found]

    # -- term layout (adapters/sparse_rewrite.py); the state lives in the collection's metadata --

    def term_key(self, collection: str) -> bytes:
        return self._term_layouts.key(collection)

    def rewrite_sparse(self, collection: str, layout: str, remap: SparseRemap) -> int:
        return self._term_layouts.rewrite(collection, layout, remap)

    def _terms_engine(self, collection: str) -> Engine:
        name = _PREFIX + collection

        def read(offset: Any, limit: int) -> Page:
            with self._lock:
                points, following = self._client.scroll(
                    name, offset=offset, limit=limit, with_payload=list(OWNER), with_vectors=[_SPARSE]
                )
            vectors: list[Any] = [p.vector or {} for p in points]
            items = [(str(p.id), dict(p.payload or {}), _of_sparse(v[_SPARSE]))
                     for p, v in zip(points, vectors, strict=True) if _SPARSE in v]
            return items, None if following is None else str(following)

        def write(batch: list[tuple[str, Sparse]]) -> None:
            points = [models.PointVectors(id=i, vector={_SPARSE: _sparse(v)}) for i, v in batch]
            with self._lock:
                self._client.update_vectors(name, points=points, wait=True)

        def load() -> dict[str, Any]:
            with self._lock:
                return dict(self._client.get_collection(name).config.metadata or {})

        def save(state: dict[str, Any]) -> None:
            with self._lock:
                self._client.update_collection(name, metadata=state)

        return Engine(read, write, load, save)

    def move_sparse(
        self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where, remap: SparseRemap
    ) -> None:
        if not _valid_id(record_id):
            return
        name = _PREFIX + collection
        with self._lock:
            found, _ = self._client.scroll(name, scroll_filter=_by_ids([record_id], where), limit=1,
                                           with_payload=True, with_vectors=True)
            if not found:
                return
            payload = dict(found[0].payload or {})
            vector: dict[str, Any] = dict(found[0].vector or {})  # type: ignore[arg-type]  # named vectors
            if _SPARSE in vector:  # the dense vector as stored: one upsert moves owner and terms together
                vector[_SPARSE] = _sparse(remap(payload, _of_sparse(vector[_SPARSE])))
            point = models.PointStruct(id=found[0].id, vector=vector, payload={**payload, **fields})
            self._client.upsert(name, points=[point], wait=True)

    def rename(self, collection: str, moves: Mapping[str, str], where: Where) -> None:
        wanted = [i for i in moves if _valid_id(i) and _valid_id(moves[i])]
        if not wanted:
            return
        name = _PREFIX + collection
        with self._lock:
            found, _ = self._client.scroll(name, scroll_filter=_by_ids(wanted, where), limit=len(wanted),
                                           with_payload=True, with_vectors=True)
            if not found:
                return
            points = [models.PointStruct(id=moves[str(p.id)], vector=p.vector, payload=p.payload)
                      for p in found]
            self._client.upsert(name, points=points, wait=True)
            self._client.delete(name, points_selector=models.PointIdsList(points=[p.id for p in found]), wait=True)

    def set_fields(self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where) -> None:
        if not _valid_id(record_id):
            return
        with self._lock:
            self._client.set_payload(
                _PREFIX + collection, payload=dict(fields), points=_by_ids([record_id], where), wait=True
            )

    def delete(self, collection: str, ids: Sequence[str], where: Where) -> None:
        wanted = [i for i in ids if _valid_id(i)]
        if wanted:
            selector = models.FilterSelector(filter=_by_ids(wanted, where))
            with self._lock:
                self._client.delete(_PREFIX + collection, points_selector=selector, wait=True)

    def settling(self, collection: str) -> bool:
        return False  # the server indexes as it is written, at its own pace

    def count(self, collection: str, where: Where) -> int:
        with self._lock:
            return int(self._client.count(_PREFIX + collection, count_filter=_filter(where), exact=True).count)

    def flush(self) -> None:
        """Writes are acknowledged with ``wait=True``: nothing is pending here."""

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            points = {c: self.count(c, {}) for c in sorted(self._ready)}
        return {"engine": "qdrant-client", "location": self._where, "points": points}


def _hits(points: Any) -> list[Hit]:
    """The engine's scored points as the port's hits."""
    return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]
