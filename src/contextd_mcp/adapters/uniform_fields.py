"""Fields on which every point of a collection has one and the same value.

A store that holds one project of one tenant (a developer's own daemon; the 100k-memory goal of
issue 19) is searched with that owner's filter at every call, and the engine checks it at every
point a graph walk visits: at 100k memories (500k keys) it doubled a dense key search (1.9 ms
against 1.0) and admitted every point (BENCHMARKS.md "Session 14"). A condition every point
meets is left out of the engine's filter; the matches are the same set. Such a field's index is
then not pinned on the heap either (``EdgeStore._pinned``): ~70 MiB of heap at 100k memories.
A second owner's writes put the condition back at once; the index is pinned at the next open.

What is known is kept conservative: a field's value is learned at open by asking the engine
(one point's value, then an exact count of the points that have it: all of them), followed
through every write under the store's lock, and given up for good (until the next open) at the
first write of another value. Deletes never widen it. Callers hold the store's lock both when
they report writes and when they ask, so no write falls between the question and the search.

Asking costs: at 1M memories of one tenant (5M keys), the counts and facets took 3.8 s of every
start (BENCHMARKS.md, "Session 17"). So a clean close writes what it knows beside the collection
(``RECORD``, with the point count), and the next open takes it instead of asking, if the count is
the same. The open deletes the record before anything can write, so only a store closed cleanly
since its last write has one: after a crash the next open asks again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from contextd_mcp.adapters.malloc_arenas import release_freed
from contextd_mcp.ports.vector_store import Range, Where

RECORD = "contextd-uniform.json"
_MIXED = object()  # several values, a point without the field, or not known: the filter stays
_EMPTY = object()  # no point yet: the first write's value is the one


class UniformFields:
    def __init__(self) -> None:
        self._values: dict[str, dict[str, object]] = {}

    def learn(self, collection: str, shard: qe.EdgeShard, fields: Iterable[str], record: Path | None = None) -> None:
        """What ``shard`` holds now, for ``fields`` (keyword-indexed ones only: the question is
        asked of the index; an unindexed field stays unknown). ``record``: where the last clean
        close left what it knew (``remember``); taken, and deleted, whatever it says."""
        info = shard.info()
        indexed, points = set(info.payload_schema), int(info.points_count)
        recalled = _recalled(record, points) if record is not None else {}
        values: dict[str, object] = {}
        asked = False
        for name in fields:
            if points == 0:
                values[name] = _EMPTY
            elif name in recalled:
                values[name] = recalled[name]
            elif name in indexed:
                values[name], asked = _only_value(shard, name, points), True
            else:
                values[name] = _MIXED
        self._values[collection] = values
        if asked:
            # An exact count gathers the matching points' ids on the heap and frees them, but
            # glibc keeps what is freed: after an open without a record the daemon held +22-29 MiB
            # more for its life at 100k memories, up to +100 at 1M (BENCHMARKS.md, "Session 18").
            release_freed()

    def remember(self, collection: str, record: Path, points: int) -> None:
        """At a clean close of the collection's ``points``: the values every point shares, for
        the next open (``learn``)."""
        values = self._values.get(collection, {})
        shared = {name: known for name, known in values.items() if _one(known)}
        if shared:
            record.write_text(json.dumps({"points": points, "values": shared}))

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


def _recalled(record: Path, points: int) -> dict[str, str]:
    """The values ``record`` says every point shared, if it was written at ``points`` points."""
    try:
        said = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    finally:
        record.unlink(missing_ok=True)
    if not isinstance(said, dict) or said.get("points") != points or not isinstance(said.get("values"), dict):
        return {}
    return {str(k): v for k, v in said["values"].items() if isinstance(v, str)}


def _only_value(shard: qe.EdgeShard, name: str, every: int) -> object:
    """The value all ``every`` points have for ``name``, or _MIXED: one point's value, then the
    exact count of the points that have it. A field of many values answers from a short
    posting list (1M memories over 1,000 projects: 1 ms, where the index's facet took 170 ms)."""
    points, _ = shard.scroll(qe.ScrollRequest(limit=1, with_payload=[name], with_vector=False))
    value = (points[0].payload or {}).get(name) if points else None
    if not isinstance(value, str):
        return _MIXED
    having = qe.Filter(must=[qe.FieldCondition(key=name, match=qe.MatchValue(value))])
    return value if int(shard.count(qe.CountRequest(exact=True, filter=having))) == every else _MIXED
