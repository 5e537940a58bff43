"""Port: a store of records with an optional dense vector and a JSON payload.

Filters are plain data (``Where``), so services never see an engine's types:
``{"field": value}`` is equality, ``{"field": [a, b]}`` matches any of the values
(for a list field: any element), ``{"field": Range(gte=0.3)}`` is a numeric range.
All conditions are ANDed.

A collection may also hold a sparse vector per record (``CollectionSpec.sparse``): a map of
term index to weight, whose query-side weights the engine scales by the terms' inverse
document frequency over the collection. ``hybrid_search`` ranks by dense and by sparse
similarity and fuses the two rankings in the engine by weighted reciprocal rank (Qdrant's
definition): ``score = sum over lists of 1 / ((rank + 1) / weight + RRF_K - 1)``, rank counted
from 0; with ``RRF_K = 1`` that is ``sum of weight / (rank + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias


@dataclass(frozen=True)
class Range:
    gte: float | None = None
    lte: float | None = None


# Term index (any 32-bit unsigned int, e.g. a hashed token) → weight.
Sparse: TypeAlias = Mapping[int, float]
RRF_K = 1

# A stored record's sparse vector rewritten from its payload and its present value.
SparseRemap: TypeAlias = Callable[[Mapping[str, Any], Sparse], Sparse]

Condition: TypeAlias = str | int | bool | list[str] | Range
Where: TypeAlias = Mapping[str, Condition]


@dataclass(frozen=True)
class Record:
    """A record; ``vector=None`` stores a fixed placeholder vector (for kinds never searched by meaning)."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None
    sparse: Sparse | None = None  # only in collections created with ``sparse=True``


def placeholder_vector(dim: int) -> list[float]:
    return [1.0] + [0.0] * (dim - 1)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    model: str  # which embedding model made the vectors; a mismatch is refused
    keyword_fields: tuple[str, ...] = ("tenant", "team", "project")
    float_fields: tuple[str, ...] = ()
    sparse: bool = False  # records may carry a sparse vector; enables hybrid_search
    # Of keyword_fields, those every hot-path search filters on: an adapter that defers
    # indexes to save memory (the embedded one) indexes these early (at a few hundred points).
    hot_fields: tuple[str, ...] = ()
    # Of keyword_fields, those a large collection's graph search checks at every point it visits
    # (the scope's owner fields): an adapter that can keep their indexes in memory does (the
    # embedded one, BENCHMARKS.md "Session 11: scale"); the others are placed to save memory.
    pinned_fields: tuple[str, ...] = ()


class VectorStore(Protocol):
    def ensure(self, spec: CollectionSpec) -> None: ...

    def upsert(self, collection: str, records: Sequence[Record]) -> None: ...

    def get(
        self, collection: str, ids: Sequence[str], where: Where, fields: Sequence[str] | None = None
    ) -> list[Record]:
        """The records of ``ids`` that match ``where``; ``fields`` limits the payload returned."""
        ...

    def search(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]: ...

    def sparse_search(
        self, collection: str, sparse: Sparse, where: Where, limit: int, fields: Sequence[str] | None = None
    ) -> list[Hit]:
        """By sparse similarity alone (IDF-weighted dot product); an empty ``sparse`` finds nothing."""
        ...

    def dense_and_sparse(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """``search`` and ``sparse_search`` with one filter, as one engine call where the engine
        can batch them (both lists, unfused: the caller weighs each score itself)."""
        ...

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
        """``dense_and_sparse`` and a third, dense search whose filter is ``where`` and ``narrowed``
        (e.g. one kind of point, which the first list may crowd out), in the same engine call."""
        ...

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
        """Top ``candidates`` by dense and by sparse similarity, fused by reciprocal rank
        (``weights`` = dense, sparse); ``Hit.score`` is the fused score. ``fields`` limits the
        payload returned (large payloads cost ~0.4 µs a byte to hand over)."""
        ...

    def scan(
        self,
        collection: str,
        where: Where,
        limit: int,
        order_by: str | None = None,
        descending: bool = True,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        """Up to ``limit`` records matching ``where``, in ``order_by`` order; ``fields``: only
        these payload fields (None: all)."""
        ...

    def set_fields(self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where) -> None:
        """Sets ``fields`` on the record if it matches ``where``, in one engine call (no
        read-then-write): a record outside the filter is left as it is."""
        ...

    def delete(self, collection: str, ids: Sequence[str], where: Where) -> None:
        """Deletes those of ``ids`` that match ``where`` (in the engine, like ``set_fields``)."""
        ...

    def count(self, collection: str, where: Where) -> int: ...

    def term_key(self, collection: str) -> bytes:
        """The collection's secret for per-tenant term indexes (``ports.tenant_terms``): random,
        made and stored durably with the collection on first use, the same ever after."""
        ...

    def rewrite_sparse(self, collection: str, layout: str, remap: SparseRemap) -> int:
        """Once per ``layout``: every stored sparse vector becomes ``remap(owner, sparse)`` (``owner``:
        the record's tenant, team and project), dense vectors untouched, and the collection is
        marked as holding ``layout`` (called again: nothing). An interrupted run, called again, finishes it with no vector remapped twice.
        Returns how many vectors were written."""
        ...

    def move_sparse(
        self, collection: str, record_id: str, fields: Mapping[str, Any], where: Where, remap: SparseRemap
    ) -> None:
        """``set_fields``, and the record's sparse vector becomes ``remap(payload, sparse)`` (the
        payload before the update), in one engine write: either both happen or neither."""
        ...

    def rename(self, collection: str, moves: Mapping[str, str], where: Where) -> None:
        """Each record of ``moves`` (old id → new id) that matches ``where`` is stored again under
        its new id, vectors and payload as stored, then the old id is deleted. Interrupted, a
        record may be under both ids; renaming again ends that."""
        ...

    def settling(self, collection: str) -> bool:
        """Whether a bulk rewrite of the collection should wait: the engine is indexing it, or
        holds as many points written since its last index as it indexes at once. Each point
        waiting for an index costs the embedded engine heap (~4 KiB a key point), and a build
        gives up when more arrive while it runs than it can replay."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...
