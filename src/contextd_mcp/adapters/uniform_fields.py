"""Fields on which every point of a collection has one and the same value.

A store that holds one project of one tenant (a developer's own daemon; the 100k-memory goal of
issue 19) is searched with that owner's filter at every call, and the engine checks it at every
point a graph walk visits: at 100k memories (500k keys) it doubled a dense key search (1.9 ms
against 1.0) and admitted every point (BENCHMARKS.md "Session 14"). A condition every point
meets is left out of the engine's filter; the matches are the same set. Such a field's index is
then not pinned on the heap either (``EdgeStore._pinned``): ~70 MiB of heap at 100k memories.
A second owner's writes put the condition back at once; the index is pinned at the next open.

What is known is kept conservative: a field's value is learned at open by asking the engine
(the one value its index lists, then an exact count of the points without it: none), followed
through every write under the store's lock, and given up for good (until the next open) at the
first write of another value. Deletes never widen it. Callers hold the store's lock both when
they report writes and when they ask, so no write falls between the question and the search.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import qdrant_edge as qe

from contextd_mcp.ports.vector_store import Range, Where

_MIXED = object()  # several values, a point without the field, or not known: the filter stays
_EMPTY = object()  # no point yet: the first write's value is the one


class UniformFields:
    def __init__(self) -> None:
        self._values: dict[str, dict[str, object]] = {}

    def learn(self, collection: str, shard: qe.EdgeShard, fields: Iterable[str]) -> None:
        """What ``shard`` holds now, for ``fields`` (keyword-indexed ones only: the question is
        asked of the index; an unindexed field stays unknown)."""
        info = shard.info()
        indexed, points = set(info.payload_schema), int(info.points_count)
        values: dict[str, object] = {}
        for name in fields:
            values[name] = _EMPTY if points == 0 else _only_value(shard, name) if name in indexed else _MIXED
        self._values[collection] = values

    def wrote(self, collection: str, payloads: Iterable[Mapping[str, Any]]) -> None:
        """Points written whole (upserts): a value other than the known one ends what is known."""
        values = self._values.get(collection)
        if not values:
            return
        for payload in payloads:
            self._saw(values, payload, whole=True)

    def set(self, collection: str, fields: Mapping[str, Any]) -> None:
        """Fields set on some points (the rest of their payload unchanged)."""
        values = self._values.get(collection)
        if values:
            self._saw(values, fields, whole=False)

    @staticmethod
    def _saw(values: dict[str, object], payload: Mapping[str, Any], whole: bool) -> None:
        for name, known in values.items():
            if name not in payload:
                if whole:  # a point without the field: a condition on it no longer holds for all
                    values[name] = _MIXED
                continue
            value = payload[name]
            if known is _EMPTY and isinstance(value, str):
                values[name] = value
            elif known != value:
                values[name] = _MIXED

    def holds(self, collection: str, name: str) -> bool:
        """Whether every point of the collection is known to have one value for ``name`` (an
        empty collection: not yet)."""
        return _one(self._values.get(collection, {}).get(name, _MIXED))

    def shared(self) -> dict[str, list[str]]:
        """Per collection, the fields every point is known to share (names only: for status)."""
        return {
            collection: names
            for collection, values in self._values.items()
            if (names := [name for name, known in values.items() if _one(known)])
        }

    def needed(self, collection: str, where: Where) -> Where:
        """``where`` without the conditions every point of the collection meets."""
        values = self._values.get(collection)
        if not values or not where:
            return where
        return {key: cond for key, cond in where.items() if not _met(values.get(key, _MIXED), cond)}


def _one(known: object) -> bool:
    """Whether ``known`` is a value every point has (not _MIXED, not _EMPTY)."""
    return known is not _MIXED and known is not _EMPTY


def _met(known: object, cond: object) -> bool:
    if not _one(known) or isinstance(cond, Range):
        return False
    if isinstance(cond, list):
        return known in cond
    return known == cond


def _only_value(shard: qe.EdgeShard, name: str) -> object:
    """The value every point has for ``name``, or _MIXED. The index lists the values (two
    suffice to tell); the exact count of points without the one value decides."""
    hits = shard.facet(qe.FacetRequest(key=name, limit=2, exact=False)).hits
    if len(hits) != 1 or not isinstance(hits[0].value, str):
        return _MIXED
    value = hits[0].value
    others = qe.Filter(must_not=[qe.FieldCondition(key=name, match=qe.MatchValue(value))])
    return value if int(shard.count(qe.CountRequest(exact=True, filter=others))) == 0 else _MIXED
