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

Ranking (``rank``): one engine call per query (a batch of three searches), the nearest key points
by cosine, the best key points by sparse (IDF-weighted) terms, and the nearest learned keys
(which the first list crowds out: a confirmed query is often far from a new phrasing of the same
need); each memory scores by its best key of each group (its doc, its other keys, its learned
keys: max-sim within a group) plus its best lexical match, and a negative key near the query
demotes it. Weights and the reasons for them are at ``rank``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from contextd_mcp import limits
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import CollectionSpec, Condition, Hit, Record
from contextd_mcp.services.error_text import FUNCTION_WORDS, normalise, sparse_vector

KEYS = "memory_keys"
_NAMESPACE = uuid.UUID("0b5f8d0e-6c2a-4f7e-8a41-3c9d2e7b1f55")

# How a memory's keys add up (see ``rank``); measured on the dev split only
# (bench/bench_memory_learning.py; the held-out split was run once, after they were fixed).
KEY_WEIGHT = 0.4
SPARSE_WEIGHT = 0.1
LEARNED_WEIGHT = 0.5
# A learned query less similar than this to the new one says nothing. Two phrasings of one need
# are far apart for MiniLM (dev: median cosine 0.29, a quarter under 0.21), so a floor of 0.3
# ignored most confirmed queries; 0.125-0.2 all did better on dev once a decoy's lookup by its own
# title stopped being learned (BENCHMARKS.md, "Session 9: memory").
LEARNED_FLOOR = 0.15
# The score of a memory that every part matches perfectly: scores are divided by it.
_TOP = 1.0 + KEY_WEIGHT + LEARNED_WEIGHT * (1 - LEARNED_FLOOR) + SPARSE_WEIGHT
# Key points read per list: enough for the memories of a page even when each has several
# keys among the nearest.
CANDIDATES = 100
# Learned keys read by a search of their own (the third of the batch). Among the first list's 100
# points, learned keys under cosine ~0.2 are crowded out by static keys of the hard negatives, and
# their memories lose the bonus they earned: on dev, 46 rated lessons had theirs out of reach.
# 5 found too few of them, 20 to 150 the same (BENCHMARKS.md, "Session 10: memory").
LEARNED_NEAREST = 20
# A query this close to a negative key is "the same need" the memory was rated useless for.
NEGATIVE_NEAR = 0.8
NEGATIVE_FACTOR = 0.3
# Two learned (or negative) keys this close are one: the newer replaces nothing, it is dropped.
SAME_KEY = 0.92
# The most keys one memory has: doc, title, task, error, its situations, learned and negative.
_KEYS_PER_MEMORY = 4 + limits.APPLIES_WHEN_MAX + limits.LEARNED_KEYS_MAX + limits.NEGATIVE_KEYS_MAX


class KeyKind(StrEnum):
    doc = "doc"
    title = "title"  # type: ignore[assignment]  # the stored value; shadows str.title, never called
    applies_when = "applies_when"
    task = "task"
    error = "error"
    learned = "learned"
    negative = "negative"


# How ``rank`` counts each kind.
_GROUP = {
    "doc": "doc", "title": "key", "applies_when": "key", "task": "key", "error": "key",
    "learned": "learned", "negative": "negative",
}


@dataclass(frozen=True)
class KeyFlags:
    """What ranking uses; each part can be switched off (settings, for the ablation)."""

    keys: bool = True  # max-sim over title / applies_when / task / error (else the doc key only)
    sparse: bool = True
    learned: bool = True
    negative: bool = True
    preferences: bool = True  # a memory rated helpful moves above those it was preferred over
    rerank: bool = True  # the top candidates scored again on the query's words (services/memory_rerank.py)

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


class Ranked(NamedTuple):
    """One memory's place in a search (a tuple: a search makes one per candidate, ~170 at 10k)."""

    memory_id: str
    relevance: float  # best cosine of a positive key, 0..1
    fused: float  # the ranking score, scaled so that a perfect match on every part is 1


def key_id(memory_id: str, kind: KeyKind, text: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{memory_id}\x1f{kind.value}\x1f{text}"))


def key_sparse(text: str) -> dict[int, float]:
    """A stored key's terms, at unit length."""
    return sparse_vector(normalise(text), unit=True)


def query_sparse(query: str) -> dict[int, float]:
    """A search's terms: not scaled (the engine ranks by dot product; a query's length changes no
    order), and without function words (``FUNCTION_WORDS``)."""
    return sparse_vector(normalise(query), drop=FUNCTION_WORDS)


def rank(dense: Sequence[Hit], lexical: Sequence[Hit], flags: KeyFlags, learned: Sequence[Hit] = ()) -> list[Ranked]:
    """Memories ranked from the key hits of one query, best first.

    ``dense`` hits carry cosine scores (every kind searched, negative keys included);
    ``lexical`` hits carry sparse scores (positive keys only); ``learned`` hits are the query's
    nearest learned keys (cosine), which may repeat some of ``dense``. A memory scores

        doc + KEY_WEIGHT * best other key + LEARNED_WEIGHT * max(0, best learned - LEARNED_FLOOR)
            + SPARSE_WEIGHT * its best sparse score / the query's best sparse score

    times ``NEGATIVE_FACTOR`` when the query is within ``NEGATIVE_NEAR`` of a negative key.
    The doc key anchors the score: measured on the dev split, ranking by the plain max over
    keys did worse than the doc key alone (short keys of hard negatives match too).
    """
    best: dict[str, dict[str, float]] = {}
    floor = min((h.score for h in dense), default=0.0)
    # Plain loops over local names: a search ranks ~200 hits into ~170 memories, and this is
    # the Python part of its time (0.6 ms at 10k before, BENCHMARKS.md "Session 8: memory").
    for hit in (*dense, *learned):
        group, memory_id, score = _GROUP[hit.payload["kind"]], hit.payload["memory_id"], hit.score
        per = best.get(memory_id)
        if per is None:
            best[memory_id] = {group: score}
        elif score > per.get(group, -1.0):
            per[group] = score
    lexical_best: dict[str, float] = {}
    if flags.sparse:
        for hit in lexical:
            if hit.payload["kind"] == KeyKind.negative:  # finds nothing; it only demotes
                continue
            memory_id = hit.payload["memory_id"]
            lexical_best[memory_id] = max(lexical_best.get(memory_id, 0.0), hit.score)
    top_lexical = max(lexical_best.values(), default=0.0) or 1.0
    ranked = [
        _ranked(memory_id, best.get(memory_id, {}), floor, lexical_best.get(memory_id, 0.0), top_lexical, flags)
        for memory_id in best.keys() | lexical_best.keys()
    ]
    ranked.sort(key=_by_fused, reverse=True)
    return ranked


def _ranked(
    memory_id: str, per: dict[str, float], floor: float, lexical: float, top_lexical: float, flags: KeyFlags
) -> Ranked:
    """One memory's score from its best key of each group (``rank``'s formula)."""
    # A memory found only by another key or by terms scores its doc as the list's last.
    doc = per.get("doc", floor)
    score = doc + KEY_WEIGHT * per.get("key", doc) if flags.keys else doc
    learned = per.get("learned", 0.0)
    if flags.learned:
        score += LEARNED_WEIGHT * max(0.0, learned - LEARNED_FLOOR)
    score += SPARSE_WEIGHT * lexical / top_lexical
    if flags.negative and per.get("negative", 0.0) >= NEGATIVE_NEAR:
        score *= NEGATIVE_FACTOR
    relevance = max(0.0, min(1.0, max(doc, per.get("key", 0.0), learned if flags.learned else 0.0)))
    return Ranked(memory_id, relevance, score / _TOP)


def _by_fused(ranked: Ranked) -> float:
    return ranked.fused


def keys_spec(dim: int, model: str) -> CollectionSpec:
    return CollectionSpec(
        name=KEYS,
        dim=dim,
        model=model,
        keyword_fields=("tenant", "team", "project", "memory_id", "kind", "outcome", "tags"),
        float_fields=("created_ts",),
        hot_fields=("tenant", "team", "project", "kind"),
        # Every key search's scope filter, checked at each point the graph search visits.
        pinned_fields=OWNER,
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
    """Memories in reach ranked by their keys for this query (one engine call: the dense, sparse
    and learned-key searches as one batch)."""
    kinds = flags.kinds()
    where = dict(match)
    # A filter that admits every kind selects nothing and tripled the dense search's time (10k
    # memories: 18 ms against 6 ms), so it is sent only when a switch leaves a kind out.
    if len(kinds) < len(KeyKind):
        where["kind"] = kinds
    sparse = query_sparse(query) if flags.sparse else {}
    if not flags.learned:
        dense, lexical = store.dense_and_sparse(KEYS, vector, sparse, CANDIDATES, reach, where, fields=_KEY_FIELDS)
        return rank(dense, lexical, flags)
    dense, lexical, learned = store.dense_sparse_narrowed(
        KEYS, vector, sparse, CANDIDATES, {"kind": KeyKind.learned.value}, LEARNED_NEAREST, reach, where, fields=_KEY_FIELDS
    )
    return rank(dense, lexical, flags, learned)


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

    A key within ``SAME_KEY`` of one the memory has of the same kind (or, for a learned key, of
    any of its own keys) is not added twice; of the opposite kind, the older one is dropped (the
    newer rating wins). At the cap the oldest key of that kind goes.
    """
    opposite = KeyKind.negative if kind is KeyKind.learned else KeyKind.learned
    cap = limits.LEARNED_KEYS_MAX if kind is KeyKind.learned else limits.NEGATIVE_KEYS_MAX
    match: dict[str, Condition] = {"memory_id": memory.id}
    near = store.search(KEYS, vector, _KEYS_PER_MEMORY, reach, match, fields=("kind", "created_ts"))
    same = [h for h in near if h.payload["kind"] == kind.value]
    # A learned key that repeats one the memory already has (its title, a situation) teaches
    # nothing new: added, it would count that text twice, e.g. a memory rated after a search
    # for its own title would then outrank its peers on every query near that title.
    own = [h for h in near if kind is KeyKind.learned and h.payload["kind"] not in (kind.value, opposite.value)]
    if any(h.score >= SAME_KEY for h in [*same, *own]):
        return "known"
    drop = [h.id for h in near if h.payload["kind"] == opposite.value and h.score >= SAME_KEY]
    if len(same) >= cap:
        drop.append(min(same, key=lambda h: float(h.payload["created_ts"])).id)
    store.upsert(KEYS, key_records(memory.payload, memory.id, [(kind, text)], [vector], now), reach)
    if drop:
        store.delete(KEYS, drop, reach)
    return "added"
