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
from collections.abc import Iterable, Mapping, Sequence
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
# One memory's key points read at once: above its most, and a move's older copies (``slot_moves``).
KEYS_READ_MAX = 64


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


# A key's point id is its memory's id with the six bits a UUIDv5 fixes (its version nibble and
# variant) holding the key's slot: a search reads which memory a key hit is of, and its kind, from
# the id alone, so it reads no payload. Reading two payload fields of each of ~240 hits cost a key
# search ~1 ms at 100k memories and kept the keys' payload file resident (122 MiB; BENCHMARKS.md
# "Session 16"). Slots by kind, each kind's run as long as its cap:
_RUNS = (
    (KeyKind.doc, 1), (KeyKind.title, 1), (KeyKind.task, 1), (KeyKind.error, 1),
    (KeyKind.applies_when, limits.APPLIES_WHEN_MAX),
    (KeyKind.learned, limits.LEARNED_KEYS_MAX), (KeyKind.negative, limits.NEGATIVE_KEYS_MAX),
)
_KIND_OF_SLOT: tuple[KeyKind, ...] = tuple(kind for kind, run in _RUNS for _ in range(run))
_FIRST_SLOT = {kind: _KIND_OF_SLOT.index(kind) for kind, _ in _RUNS}
# The six bits: version (bits 76-79) and variant (62-63). A slot s is stored as version s & 15,
# variant s >> 4. The value a UUIDv5 has there (version 5, variant 0b10: slot 37) is never a slot,
# so an id made the older way (``legacy_key_id``) never reads as a slot id.
_SLOT_BITS = (0xF << 76) | (0x3 << 62)
_V5_BITS = (5 << 76) | (0x2 << 62)
assert len(_KIND_OF_SLOT) <= 37, "a slot would collide with a UUIDv5's fixed bits"


def _slot_bits(slot: int) -> int:
    return ((slot & 0xF) << 76) | ((slot >> 4) << 62)


def _slotted(memory_id: str) -> int | None:
    """The memory id as an integer, if key ids can carry it: a UUIDv5 in canonical form (every
    memory id is one: ``content_ids``), so that decoding gives back the same string."""
    try:
        parsed = uuid.UUID(memory_id)
    except ValueError:
        return None
    if parsed.int & _SLOT_BITS != _V5_BITS or str(parsed) != memory_id:
        return None
    return parsed.int


def key_id(memory_id: str, kind: KeyKind, text: str, slot: int) -> str:
    """The point id of a memory's key in ``slot`` (``slot_of`` gives a free one); the older,
    text-derived id for a memory id that cannot carry a slot."""
    base = _slotted(memory_id)
    if base is None:
        return legacy_key_id(memory_id, kind, text)
    if _KIND_OF_SLOT[slot] is not kind:
        raise ValueError(f"slot {slot} holds {_KIND_OF_SLOT[slot]} keys, not {kind}")
    return str(uuid.UUID(int=(base & ~_SLOT_BITS) | _slot_bits(slot)))


def legacy_key_id(memory_id: str, kind: KeyKind, text: str) -> str:
    """A key's id before slots (keys_version 1): a hash, which says nothing of its memory."""
    return str(uuid.uuid5(_NAMESPACE, f"{memory_id}\x1f{kind.value}\x1f{text}"))


def key_of(point_id: str) -> tuple[str, KeyKind] | None:
    """(memory id, kind) of a key point from its id alone; None for an id made the older way."""
    # String slicing, not uuid.UUID: a search decodes ~240 ids (0.56 against 2.52 µs each).
    if len(point_id) != 36:
        return None
    variant = int(point_id[19], 16)
    slot = int(point_id[14], 16) | (variant >> 2) << 4
    if slot >= len(_KIND_OF_SLOT):
        return None
    return f"{point_id[:14]}5{point_id[15:19]}{'89ab'[variant & 3]}{point_id[20:]}", _KIND_OF_SLOT[slot]


def slot_of(point_id: str) -> int | None:
    """The slot a key's id holds; None for an id made the older way."""
    if key_of(point_id) is None:
        return None
    return int(point_id[14], 16) | (int(point_id[19], 16) >> 2) << 4


def free_slots(kind: KeyKind, taken: Iterable[int]) -> list[int]:
    """The slots of ``kind`` not in ``taken``, in order."""
    first = _FIRST_SLOT[kind]
    busy = set(taken)
    return [s for s in range(first, first + _KIND_OF_SLOT.count(kind)) if s not in busy]


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
        memory_id, kind = _key(hit)
        group, score = _GROUP[kind], hit.score
        per = best.get(memory_id)
        if per is None:
            best[memory_id] = {group: score}
        elif score > per.get(group, -1.0):
            per[group] = score
    lexical_best: dict[str, float] = {}
    if flags.sparse:
        for hit in lexical:
            memory_id, kind = _key(hit)
            if kind == KeyKind.negative:  # finds nothing; it only demotes
                continue
            lexical_best[memory_id] = max(lexical_best.get(memory_id, 0.0), hit.score)
    top_lexical = max(lexical_best.values(), default=0.0) or 1.0
    ranked = [
        _ranked(memory_id, best.get(memory_id, {}), floor, lexical_best.get(memory_id, 0.0), top_lexical, flags)
        for memory_id in best.keys() | lexical_best.keys()
    ]
    ranked.sort(key=_by_fused, reverse=True)
    return ranked


def _key(hit: Hit) -> tuple[str, str]:
    """(memory id, kind) of a key hit: from its payload where ``find`` read it (a store that holds
    keys from before slots: ``LegacyKeys``; the id is then never made a string, as before slots),
    else from its id."""
    if hit.payload:
        return hit.payload["memory_id"], hit.payload["kind"]
    found = key_of(hit.id)
    if found is None:
        raise _Unslotted(f"key {hit.id} names no memory and was read without its payload")
    return found[0], found[1].value


class _Unslotted(ValueError):
    """A key hit to rank whose id does not name its memory, read without its payload."""


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


# What is read of a key stored before slots, whose id does not name its memory (``key_of``).
_KEY_FIELDS = ("memory_id", "kind")
OWNER = ("tenant", "team", "project")


def key_records(
    memory: Mapping[str, Any],
    memory_id: str,
    keys: Sequence[tuple[KeyKind, str]],
    vectors: Sequence[list[float]],
    now: float,
    taken: Iterable[int] = (),
) -> list[Record]:
    """Key points of one memory; each carries the memory's owner, outcome and tags (filters).

    A key of a text kind takes its kind's slot (the n-th ``applies_when`` of ``keys`` the n-th
    slot of that run, so ``keys`` holds all of them, as ``key_texts`` gives); a learned or negative
    key the first slot of its kind that is neither in ``taken`` (the memory's keys kept) nor
    given to an earlier one of ``keys``."""
    busy = set(taken)
    records = []
    for (kind, text), vector, fixed in zip(keys, vectors, _text_slots(keys), strict=True):
        slot = fixed
        if slot is None:
            free = free_slots(kind, busy)
            if not free:
                raise ValueError(f"memory {memory_id} has no free {kind} slot (its cap is enforced first)")
            slot = free[0]
        busy.add(slot)
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
        records.append(Record(key_id(memory_id, kind, text, slot), payload, vector, key_sparse(text)))
    return records


def _text_slots(keys: Sequence[tuple[KeyKind, str]]) -> list[int | None]:
    """The slot of each key of a text kind (the n-th ``applies_when`` in the n-th of its run);
    None for a learned or negative key, whose slot is whichever is free."""
    slots: list[int | None] = []
    nth = 0
    for kind, _ in keys:
        if kind is KeyKind.applies_when:
            slots.append(_FIRST_SLOT[kind] + nth)
            nth += 1
        else:
            slots.append(None if kind in (KeyKind.learned, KeyKind.negative) else _FIRST_SLOT[kind])
    return slots


class SlotMoves(NamedTuple):
    """What brings one memory's keys to slot ids (``slot_moves``)."""

    moves: dict[str, str]  # old id → slot id
    gone: list[str]  # keys of a text the memory no longer has, or whose slot a key holds
    missing: bool  # some text of the memory has no key: its keys must be written again


def slot_moves(memory_id: str, texts: Sequence[tuple[KeyKind, str]], points: Sequence[Record]) -> SlotMoves:
    """For a memory's key ``points`` (``texts``: its text keys now), the keys stored before slots.
    A text key moves to its text's slot (it goes if the memory has that text no more, or a key
    holds the slot already); a learned or negative key to a free slot of its kind, oldest first."""
    if _slotted(memory_id) is None:
        return SlotMoves({}, [], False)
    wanted = {legacy_key_id(memory_id, kind, text): slot for (kind, text), slot in zip(texts, _text_slots(texts), strict=True)}
    taken = {held for p in points if (held := slot_of(p.id)) is not None}
    moves: dict[str, str] = {}
    gone: list[str] = []
    for point in sorted(points, key=lambda p: float(p.payload.get("created_ts", 0))):
        if key_of(point.id) is not None:
            continue
        kind = KeyKind(point.payload["kind"])
        if kind in (KeyKind.learned, KeyKind.negative):
            slot: int | None = next(iter(free_slots(kind, taken)), None)
        else:
            slot = wanted.get(point.id)
        if slot is None or slot in taken:
            gone.append(point.id)
            continue
        taken.add(slot)
        moves[point.id] = key_id(memory_id, kind, "", slot)
    return SlotMoves(moves, gone, not set(wanted.values()) <= taken)


class LegacyKeys:
    """Whether a store's key hits include keys stored before slots (whose ids do not name their
    memory), as its last searches found. Then a search reads every hit's two fields with it, as
    before slots: read by id after the search, the 100k store's hits cost 2.6-4.7 ms more a search
    (BENCHMARKS.md "Session 16"). A store's keys move only with the daemon stopped (``contextd-mcp
    compact``), so a daemon's answer never goes back to False."""

    def __init__(self) -> None:
        self.seen = False


def find(
    store: ScopedStore,
    vector: list[float],
    query: str,
    reach: ScopeLevel,
    match: dict[str, Condition],
    flags: KeyFlags,
    legacy: LegacyKeys | None = None,
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
    legacy = legacy or LegacyKeys()
    fields = _KEY_FIELDS if legacy.seen else ()
    if not flags.learned:
        dense, lexical = store.dense_and_sparse(KEYS, vector, sparse, CANDIDATES, reach, where, fields=fields)
        return _rank_or_read_fields(store, reach, legacy, flags, dense, lexical, [])
    dense, lexical, learned = store.dense_sparse_narrowed(
        KEYS, vector, sparse, CANDIDATES, {"kind": KeyKind.learned.value}, LEARNED_NEAREST, reach, where, fields=fields
    )
    return _rank_or_read_fields(store, reach, legacy, flags, dense, lexical, learned)


def _rank_or_read_fields(
    store: ScopedStore,
    reach: ScopeLevel,
    legacy: LegacyKeys,
    flags: KeyFlags,
    dense: list[Hit],
    lexical: list[Hit],
    learned: list[Hit],
) -> list[Ranked]:
    """``rank``, and if a hit's id does not name its memory (a key stored before slots) the hits'
    fields read by id and ranked again. Ranking decodes every id anyway: checking them in a pass
    of their own first cost 0.6-0.9 ms a search (BENCHMARKS.md "Session 19")."""
    if not legacy.seen:
        try:
            return rank(dense, lexical, flags, learned)
        except _Unslotted:
            dense, lexical, learned = _with_legacy_fields(store, reach, legacy, dense, lexical, learned)
    return rank(dense, lexical, flags, learned)


def _with_legacy_fields(store: ScopedStore, reach: ScopeLevel, legacy: LegacyKeys, *lists: list[Hit]) -> list[list[Hit]]:
    """The hit lists, with the payload read by id for keys whose id does not name their memory
    (stored before slots, until ``contextd-mcp compact``), once ``rank`` met one; from then on
    the store's searches read every hit's fields with them (``LegacyKeys``)."""
    stale = {h.id for hits in lists for h in hits if key_of(h.id) is None}
    legacy.seen = True
    fields = {r.id: r.payload for r in store.get(KEYS, sorted(stale), reach, fields=_KEY_FIELDS)}
    return [[Hit(h.id, h.score, fields[h.id]) if h.id in stale else h for h in hits
             if h.id in fields or h.id not in stale] for hits in lists]


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
    # The new key's slot: one no kept key holds (a dropped key's, at the cap: written over).
    taken = [slot for h in near if h.id not in drop and (slot := slot_of(h.id)) is not None]
    added = key_records(memory.payload, memory.id, [(kind, text)], [vector], now, taken)
    store.upsert(KEYS, added, reach)
    drop = [i for i in drop if i != added[0].id]
    if drop:
        store.delete(KEYS, drop, reach)
    return "added"
