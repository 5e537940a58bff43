"""The keys a memory is found by, and ranking memories by the best of their keys.

A memory is one record in ``memories`` (its texts, counters, confidence); it is found through
its keys, one point each in ``memory_keys`` (grouped points, chosen over one multivector point
per memory: see BENCHMARKS.md, "Session 4"). A key is a short text with a dense vector and a
sparse vector of its terms:

- ``doc``: title, description and content together (what a memory was found by before keys);
- ``title``; each ``applies_when`` phrase the storing agent gave; for a distilled memory the
  session's ``task`` and the ``error`` it answers;
- ``learned``: a query after which the memory was rated helpful (or used with success);
- ``negative``: a query after which it was rated unhelpful. A negative key never finds its
  memory; a query near it (cosine >= ``NEGATIVE_NEAR``) demotes the memory, other queries do not.

Ranking (``rank``): each memory's dense relevance is the best cosine of its positive keys
(max-sim), its lexical match the best sparse rank of its keys; the two rankings are fused by
weighted reciprocal rank, as remediations fuse theirs (ports/vector_store.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contextd_mcp import limits
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.ports import vector_store as port
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import CollectionSpec, Condition, Hit, Record
from contextd_mcp.services.error_text import normalise, sparse_vector

KEYS = "memory_keys"
_NAMESPACE = uuid.UUID("0b5f8d0e-6c2a-4f7e-8a41-3c9d2e7b1f55")

# Weights of the dense and the sparse ranking (RRF, k=1); measured on the dev split
# (bench/bench_memory_learning.py).
DENSE_WEIGHT = 1.0
SPARSE_WEIGHT = 0.5
# Key points read per list: enough for the memories of a page even when each has several
# keys among the nearest.
CANDIDATES = 100
# A query this close to a negative key is "the same need" the memory was rated useless for.
NEGATIVE_NEAR = 0.8
NEGATIVE_FACTOR = 0.3
# Two learned (or negative) keys this close are one: the newer replaces nothing, it is dropped.
SAME_KEY = 0.92


class KeyKind(StrEnum):
    doc = "doc"
    title = "title"
    applies_when = "applies_when"
    task = "task"
    error = "error"
    learned = "learned"
    negative = "negative"


@dataclass(frozen=True)
class KeyFlags:
    """What ranking uses; each part can be switched off (settings, for the ablation)."""

    keys: bool = True  # max-sim over title / applies_when / task / error (else the doc key only)
    sparse: bool = True
    learned: bool = True
    negative: bool = True

    def kinds(self) -> list[str]:
        """The key kinds a search reads."""
        kinds = [KeyKind.doc.value]
        if self.keys:
            kinds += [KeyKind.title.value, KeyKind.applies_when.value, KeyKind.task.value, KeyKind.error.value]
        if self.learned:
            kinds.append(KeyKind.learned.value)
        if self.negative:
            kinds.append(KeyKind.negative.value)
        return kinds


@dataclass(frozen=True)
class Ranked:
    memory_id: str
    relevance: float  # best cosine of a positive key, 0..1
    fused: float  # fused score, scaled so that first in both lists is 1


def key_id(memory_id: str, kind: KeyKind, text: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{memory_id}\x1f{kind.value}\x1f{text}"))


def key_sparse(text: str, unit: bool = True) -> dict[int, float]:
    return sparse_vector(normalise(text), unit=unit)


def rank(dense: Sequence[Hit], lexical: Sequence[Hit], flags: KeyFlags) -> list[Ranked]:
    """Memories ranked from the key hits of one query, best first.

    ``dense`` hits carry cosine scores (negative keys included); ``lexical`` hits are in sparse
    order (negative keys excluded by the search's filter).
    """
    best: dict[str, float] = {}
    near_negative: dict[str, float] = {}
    for hit in dense:
        memory_id, kind = hit.payload["memory_id"], hit.payload["kind"]
        if kind == KeyKind.negative:
            near_negative[memory_id] = max(near_negative.get(memory_id, 0.0), hit.score)
        elif hit.score > best.get(memory_id, -1.0):
            best[memory_id] = hit.score
    dense_order = sorted(best, key=lambda m: best[m], reverse=True)
    fused: dict[str, float] = {}
    for position, memory_id in enumerate(dense_order):
        fused[memory_id] = _rrf(position, DENSE_WEIGHT)
    if flags.sparse:
        seen: set[str] = set()
        for hit in lexical:
            memory_id = hit.payload["memory_id"]
            if memory_id in seen:
                continue
            fused[memory_id] = fused.get(memory_id, 0.0) + _rrf(len(seen), SPARSE_WEIGHT)
            seen.add(memory_id)
    top = _rrf(0, DENSE_WEIGHT) + (_rrf(0, SPARSE_WEIGHT) if flags.sparse else 0.0)
    ranked = []
    for memory_id, score in fused.items():
        if flags.negative and near_negative.get(memory_id, 0.0) >= NEGATIVE_NEAR:
            score *= NEGATIVE_FACTOR
        relevance = max(0.0, min(1.0, best.get(memory_id, 0.0)))
        ranked.append(Ranked(memory_id, relevance, score / top))
    ranked.sort(key=lambda r: r.fused, reverse=True)
    return ranked


def _rrf(position: int, weight: float) -> float:
    return 1.0 / ((position + 1) / weight + port.RRF_K - 1)


def keys_spec(dim: int, model: str) -> CollectionSpec:
    return CollectionSpec(
        name=KEYS,
        dim=dim,
        model=model,
        keyword_fields=("tenant", "team", "project", "memory_id", "kind", "outcome", "tags"),
        float_fields=("created_ts",),
        hot_fields=("tenant", "team", "project", "kind"),
        sparse=True,
    )


# What a key search reads back (the key's own text stays in the store, for curation).
_KEY_FIELDS = ("memory_id", "kind")
OWNER = ("tenant", "team", "project")


def key_records(
    memory: Mapping[str, Any], memory_id: str, keys: Sequence[tuple[KeyKind, str]], vectors: Sequence[list[float]], now: float
) -> list[Record]:
    """Key points of one memory; each carries the memory's owner, outcome and tags (filters)."""
    records = []
    for (kind, text), vector in zip(keys, vectors, strict=True):
        payload = {
            **{k: memory[k] for k in OWNER},
            "memory_id": memory_id,
            "kind": kind.value,
            "outcome": memory["outcome"],
            "tags": list(memory.get("tags", [])),
            "created_ts": now,
        }
        if kind in (KeyKind.learned, KeyKind.negative):
            payload["text"] = text
        records.append(Record(key_id(memory_id, kind, text), payload, vector, key_sparse(text)))
    return records


def find(
    store: ScopedStore,
    vector: list[float],
    query: str,
    reach: ScopeLevel,
    match: dict[str, Condition],
    flags: KeyFlags,
) -> list[Ranked]:
    """Memories in reach ranked by their keys for this query (two engine reads)."""
    kinds = flags.kinds()
    dense = store.search(KEYS, vector, CANDIDATES, reach, {**match, "kind": kinds}, fields=_KEY_FIELDS)
    lexical: list[Hit] = []
    if flags.sparse:
        positive = [k for k in kinds if k != KeyKind.negative]
        lexical = store.sparse_search(
            KEYS, key_sparse(query, unit=False), CANDIDATES, reach, {**match, "kind": positive}, fields=_KEY_FIELDS
        )
    return rank(dense, lexical, flags)


def learn(
    store: ScopedStore,
    memory: Record,
    kind: KeyKind,
    text: str,
    vector: list[float],
    reach: ScopeLevel,
    now: float,
) -> str:
    """Adds ``text`` as a learned or negative key of ``memory``; returns what it did.

    A key within ``SAME_KEY`` of one the memory has of the same kind is not added twice; of the
    opposite kind, the older one is dropped (the newer rating wins). At the cap the oldest key of
    that kind goes.
    """
    opposite = KeyKind.negative if kind is KeyKind.learned else KeyKind.learned
    cap = limits.LEARNED_KEYS_MAX if kind is KeyKind.learned else limits.NEGATIVE_KEYS_MAX
    match: dict[str, Condition] = {"memory_id": memory.id, "kind": [kind.value, opposite.value]}
    near = store.search(KEYS, vector, cap + limits.NEGATIVE_KEYS_MAX, reach, match, fields=("kind", "created_ts"))
    same = [h for h in near if h.payload["kind"] == kind.value]
    if any(h.score >= SAME_KEY for h in same):
        return "known"
    drop = [h.id for h in near if h.payload["kind"] == opposite.value and h.score >= SAME_KEY]
    if len(same) >= cap:
        drop.append(min(same, key=lambda h: float(h.payload["created_ts"])).id)
    store.upsert(KEYS, key_records(memory.payload, memory.id, [(kind, text)], [vector], now), reach)
    if drop:
        store.delete(KEYS, drop, reach)
    return "added"
