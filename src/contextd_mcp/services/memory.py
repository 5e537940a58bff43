"""ReasoningBank memory: store, search, get, and learn from feedback and outcomes.

A memory is found by its keys (services/memory_keys.py): its texts, the situations it applies
to, and the queries it was rated for. A rating or an outcome moves the memory's global
confidence (popularity) and teaches it the query of the search that surfaced it
(services/search_log.py): helpful adds the query as a learned key, unhelpful as a negative one.
Each rating is also kept in the memory's event history (capped), for curation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from contextd_mcp import limits
from contextd_mcp.errors import NotFound
from contextd_mcp.models.confidence import FEEDBACK_WEIGHT, HIDE_BELOW, OUTCOME_WEIGHT, Belief, Origin, rank_score
from contextd_mcp.models.memory import Memory, MemoryHit, Outcome
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, MemoryOutcome, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import Hit, Range, Record
from contextd_mcp.services import memory_keys as keys
from contextd_mcp.services import memory_preferences as prefer
from contextd_mcp.services import memory_rerank as rerank
from contextd_mcp.services.content_ids import content_id, digest
from contextd_mcp.services.memory_keys import KeyFlags, KeyKind
from contextd_mcp.services.search_log import LoggedSearch, SearchLog
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.record_fields import iso, preview, relative_level

COLLECTION = "memories"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


# Bumped when the keys a memory gets change; the re-keying sweep (services/memory_rekey.py)
# brings older memories up to it.
# 2: a key's point id names its memory and kind (``memory_keys.key_id``).
KEYS_VERSION = 2
# The first version with keys: below it a memory is found by nothing, and the daemon's sweep keys
# it; one of 1 is found through its keys' payload until ``contextd-mcp compact`` moves them.
KEYED = 1


class StoredMemory(BaseModel):
    id: str
    confidence: float
    duplicate_of_existing: bool = False


class NewConfidence(BaseModel):
    id: str
    confidence: float
    hidden_from_search: bool


def first_sentence(text: str, max_chars: int = 200) -> str:
    return preview(_SENTENCE_END.split(text.strip(), maxsplit=1)[0], max_chars)


# What a hit shows; the content (the bulk of a memory) is read only by memory_get.
HIT_FIELDS = ("tenant", "team", "project", "title", "description", "outcome", "confidence", "tags", prefer.FIELD)
# What the second stage of a search reads besides (services/memory_rerank.py).
RERANK_FIELDS = ("content", "applies_when", "task", "error")


class MemoryService:
    def __init__(
        self,
        backing: Backing,
        embedder: Embedder,
        flags: KeyFlags | None = None,
    ) -> None:
        self._stores = backing.stores
        self._embedder = embedder
        self._scrubber = backing.scrubber
        self._now = backing.now
        self.flags = flags or KeyFlags()
        self.searches = SearchLog(now=backing.now)
        self._legacy_keys = keys.LegacyKeys()
        # Feedback is read-modify-write on counters; serialise it per process.
        self._lock = threading.Lock()
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=("tenant", "team", "project", "outcome", "tags"),
                # keys_version: the re-keying sweep asks the index which memories are behind,
                # instead of reading every memory at every start (services/memory_rekey.py).
                float_fields=("confidence", "created_ts", "keys_version"),
                hot_fields=("tenant", "team", "project"),
            )
        )
        backing.stores.ensure(keys.keys_spec(backing.dim, backing.model))

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def store(self, scope: Scope, request: StoreMemory, origin: Origin = Origin.stored, session_id: str = "") -> StoredMemory:
        return self.store_many(scope, [request], origin, session_id)[0]

    def store_many(
        self,
        scope: Scope,
        requests: list[StoreMemory],
        origin: Origin = Origin.stored,
        session_id: str = "",
        situations: Sequence[tuple[str, str]] | None = None,
    ) -> list[StoredMemory]:
        """Store several memories with one batched embedding call (imports, distillation, benches).

        ``situations`` gives, per request, the (task, error text) a distilled memory answers:
        both become keys of it (either may be empty)."""
        belief = Belief.prior(origin)
        now = self._now()
        prepared = []
        situations = situations or [("", "")] * len(requests)
        for request, (task, error) in zip(requests, situations, strict=True):
            title = self._scrub(request.title)
            content = self._scrub(request.content)
            description = self._scrub(request.description) if request.description else first_sentence(content)
            content_digest = digest(title, content)
            applies = [self._scrub(a) for a in request.applies_when]
            context = [self._scrub(t[: limits.KEY_TEXT_CHARS]) if t else "" for t in (task, error)]
            extra = (applies, context[0], context[1])
            prepared.append((content_id("memory", scope, content_digest), content_digest, title, description, content, request, extra))
        # One read by id finds every memory this batch already has (services/content_ids.py).
        store = self._stores.of(scope)
        existing = {r.id: r for r in store.get(COLLECTION, [p[0] for p in prepared])}
        results: list[StoredMemory] = []
        fresh: dict[str, tuple[Record, list[tuple[KeyKind, str]]]] = {}
        for ident, content_digest, title, description, content, request, (applies, task, error) in prepared:
            if ident in existing:
                confidence = round(float(existing[ident].payload["confidence"]), 4)
                results.append(StoredMemory(id=ident, confidence=confidence, duplicate_of_existing=True))
                continue
            duplicate_in_batch = ident in fresh
            results.append(
                StoredMemory(id=ident, confidence=round(belief.confidence, 4), duplicate_of_existing=duplicate_in_batch)
            )
            if duplicate_in_batch:
                continue
            payload: dict[str, Any] = {
                **scope.fields(),
                "title": title,
                "description": description,
                "content": content,
                "outcome": request.outcome.value,
                "tags": list(request.tags),
                "applies_when": applies,
                "keys_version": KEYS_VERSION,
                "alpha": belief.alpha,
                "beta": belief.beta,
                "confidence": belief.confidence,
                "helpful_count": 0,
                "unhelpful_count": 0,
                "uses_succeeded": 0,
                "uses_failed": 0,
                "origin": origin.value,
                "session_id": session_id,
                "content_hash": content_digest,
                "created_ts": now,
                "updated_ts": now,
            }
            if task:
                payload["task"] = task
            if error:
                payload["error"] = error
            fresh[ident] = (Record(id=ident, payload=payload), key_texts(payload))
        if fresh:
            self._write(store, [r for r, _ in fresh.values()], [k for _, k in fresh.values()], now)
        return results

    def _write(
        self, store: ScopedStore, records: list[Record], texts: list[list[tuple[KeyKind, str]]], now: float
    ) -> None:
        """The memories (with their doc vector), then their keys: a key found has its memory."""
        flat = [text for k in texts for _, text in k]
        vectors = iter(self._embedder.embed_documents(flat))
        memories, points = [], []
        for record, key_list in zip(records, texts, strict=True):
            own = [next(vectors) for _ in key_list]
            memories.append(Record(id=record.id, payload=record.payload, vector=own[0]))
            points += keys.key_records(record.payload, record.id, key_list, own, now)
        store.upsert(COLLECTION, memories)
        store.upsert(keys.KEYS, points)

    def rekey(self, store: ScopedStore, records: list[Record]) -> None:
        """Brings memories written by an older key set to ``KEYS_VERSION``. Keys stored before
        slots (version 1) move to their slot ids as stored, with no embedding
        (``memory_keys.slot_moves``); a memory without keys, or missing one of its texts', has
        them written (embedded)."""
        if not records:
            return
        plans = self._slot_plans(store, records)
        bare = [Record(r.id, {**r.payload, "keys_version": KEYS_VERSION}) for r in records
                if int(r.payload.get("keys_version", 0)) < KEYED or plans[r.id].missing]
        if bare:
            self._write(store, bare, [key_texts(r.payload) for r in bare], self._now())
            plans.update(self._slot_plans(store, bare))  # their new keys now hold their slots
        moves: dict[str, str] = {}
        gone: list[str] = []
        for plan in plans.values():
            moves.update(plan.moves)
            gone += plan.gone
        store.rename(keys.KEYS, moves)
        store.delete(keys.KEYS, gone)
        fresh = {r.id for r in bare}
        for record in records:  # last: a memory whose keys did not all move is rekeyed again
            if record.id not in fresh:
                store.set_fields(COLLECTION, record.id, {"keys_version": KEYS_VERSION})

    @staticmethod
    def _slot_plans(store: ScopedStore, records: list[Record]) -> dict[str, keys.SlotMoves]:
        """What each memory's stored keys need to reach their slots, from one read of them all."""
        found: dict[str, list[Record]] = {}
        wanted = [r.id for r in records]
        for point in store.scan(keys.KEYS, len(wanted) * keys.KEYS_READ_MAX, match={"memory_id": wanted}):
            found.setdefault(str(point.payload["memory_id"]), []).append(point)
        return {r.id: keys.slot_moves(r.id, key_texts(r.payload), found.get(r.id, [])) for r in records}

    def search(self, scope: Scope, request: SearchMemories) -> list[MemoryHit]:
        return self.search_logged(scope, request)[1]

    def search_logged(self, scope: Scope, request: SearchMemories, origin: str = "") -> tuple[str, list[MemoryHit]]:
        """Search, and remember the search (for feedback from ``origin``): (search_id, hits)."""
        match: dict[str, Any] = {}
        if request.outcome is not None:
            match["outcome"] = request.outcome.value
        if request.tags:
            match["tags"] = list(request.tags)
        vector = self._embedder.embed_query(request.query)
        store = self._stores.of(scope)
        ranked = keys.find(store, vector, request.query, request.scope, match, self.flags, self._legacy_keys)
        ranked = ranked[: request.limit * limits.RERANK_FACTOR]
        # Confidence changes with every rating, so it is read from the memories, not the keys.
        where = {"confidence": Range(gte=request.min_confidence)}
        ids = [r.memory_id for r in ranked]
        fields = (*HIT_FIELDS, *RERANK_FIELDS) if self.flags.rerank else HIT_FIELDS
        found = {r.id: r.payload for r in store.get(COLLECTION, ids, request.scope, where, fields=fields)}
        # below min_confidence, or its keys outlived it
        ranked = [r for r in ranked if r.memory_id in found]
        fused = [r.fused for r in ranked]
        if self.flags.rerank:
            texts = (rerank.memory_text(found[r.memory_id]) for r in ranked)
            fused = rerank.rescored(request.query, fused, texts)
        hits = []
        for candidate, score in zip(ranked, fused, strict=True):
            p = found[candidate.memory_id]
            relevance = candidate.relevance
            confidence = float(p["confidence"])
            hits.append(
                MemoryHit(
                    id=candidate.memory_id,
                    title=p["title"],
                    description=p["description"],
                    outcome=Outcome(p["outcome"]),
                    confidence=round(confidence, 4),
                    relevance=round(relevance, 4),
                    score=round(rank_score(score, confidence), 4),
                    tags=list(p.get("tags", [])),
                    scope=relative_level(p, scope),
                )
            )
        if self.flags.preferences:
            hits = _with_preferences(hits, found)
        hits.sort(key=lambda h: h.score, reverse=True)
        hits = hits[: request.limit]
        search_id = self.searches.add(scope, origin, request.query, vector, [h.id for h in hits])
        return search_id, hits

    def _load(self, scope: Scope, memory_id: str, level: ScopeLevel) -> Record:
        # By-id reads obey the same scope filter as searches: another project's id is
        # "not found" unless the caller widens on purpose, another tenant's always is.
        found = self._stores.of(scope).get(COLLECTION, [memory_id], level)
        if not found:
            raise NotFound("memory", memory_id)
        return found[0]

    def get(self, scope: Scope, request: GetMemory) -> Memory:
        record = self._load(scope, request.memory_id, request.scope)
        p = record.payload
        return Memory(
            id=record.id,
            title=p["title"],
            description=p["description"],
            content=p["content"],
            outcome=Outcome(p["outcome"]),
            tags=list(p.get("tags", [])),
            applies_when=list(p.get("applies_when", [])),
            confidence=round(float(p["confidence"]), 4),
            helpful_count=int(p["helpful_count"]),
            unhelpful_count=int(p["unhelpful_count"]),
            uses_succeeded=int(p["uses_succeeded"]),
            uses_failed=int(p["uses_failed"]),
            origin=p["origin"],
            scope=relative_level(p, scope),
            created_at=iso(p["created_ts"]),
            updated_at=iso(p["updated_ts"]),
        )

    def _observe(
        self,
        scope: Scope,
        memory_id: str,
        level: ScopeLevel,
        positive: bool,
        weight: float,
        counter: str,
        search: LoggedSearch | None,
        origin: str,
        comment: str | None = None,
        passed_over: Sequence[str] = (),
    ) -> NewConfidence:
        """One piece of evidence about a memory (a rating, a use, a lesson learned again): its
        belief updated, ``counter`` counted, the event kept in its capped history, and the
        memories ``passed_over`` for it recorded as its preferences."""
        with self._lock:
            record = self._load(scope, memory_id, level)
            p = record.payload
            belief = Belief(float(p["alpha"]), float(p["beta"])).observe(positive, weight)
            now = self._now()
            event: dict[str, Any] = {"ts": now, "kind": counter, "helpful": positive, "origin": origin[:64]}
            if comment:  # the agent's words on a rating, for curation: scrubbed, capped by the schema
                event["comment"] = self._scrub(comment[: limits.COMMENT_MAX])
            store = self._stores.of(scope)
            if search is not None:
                # The query is user input: scrubbed before it is kept as a key or in the history.
                query = self._scrub(search.query[: limits.KEY_TEXT_CHARS])
                kind = KeyKind.learned if positive else KeyKind.negative
                event.update(query=query, query_hash=digest(search.query), search_id=search.search_id)
                event["key"] = keys.learn(store, record, kind, query, search.vector, level, now)
            fields = {
                "alpha": belief.alpha,
                "beta": belief.beta,
                "confidence": belief.confidence,
                counter: int(p.get(counter, 0)) + 1,
                "updated_ts": now,
                "events": [*p.get("events", []), event][-limits.MEMORY_EVENTS_MAX :],
            }
            # A search that repeats the memory's own key (a lookup by its title) says nothing of
            # a need: it teaches neither a key ("known") nor what the memory beats.
            if passed_over and event.get("key") != "known":
                fields[prefer.FIELD] = prefer.recorded(p.get(prefer.FIELD), passed_over, now)
            store.set_fields(COLLECTION, record.id, fields, level)
        return NewConfidence(
            id=record.id, confidence=round(belief.confidence, 4), hidden_from_search=belief.confidence < HIDE_BELOW
        )

    def feedback(self, scope: Scope, request: MemoryFeedback, origin: str = "") -> NewConfidence:
        counter = "helpful_count" if request.helpful else "unhelpful_count"
        return self._rated(
            scope, request.memory_id, request.scope, request.helpful, FEEDBACK_WEIGHT, counter, request.search_id,
            origin, request.comment,
        )

    def outcome(self, scope: Scope, request: MemoryOutcome, origin: str = "") -> NewConfidence:
        counter = "uses_succeeded" if request.succeeded else "uses_failed"
        return self._rated(
            scope, request.memory_id, request.scope, request.succeeded, OUTCOME_WEIGHT, counter, request.search_id,
            origin,
        )

    def _rated(
        self,
        scope: Scope,
        memory_id: str,
        level: ScopeLevel,
        positive: bool,
        weight: float,
        counter: str,
        search_id: str | None,
        origin: str,
        comment: str | None = None,
    ) -> NewConfidence:
        """A rating by the agent (feedback or an outcome), read beside the search it answers."""
        search = self.searches.find(scope, origin, memory_id, search_id)
        passed, winners = self._in_context(search, memory_id, positive)
        result = self._observe(scope, memory_id, level, positive, weight, counter, search, origin, comment, passed)
        for winner in winners:
            self._prefer(scope, winner, memory_id, level)
        return result

    def _in_context(self, search: LoggedSearch | None, memory_id: str, helpful: bool) -> tuple[list[str], list[str]]:
        """A rating read beside the search it answers: (the memories this one, found helpful,
        was preferred over; the memories rated helpful after that search, which this one, found
        unhelpful, was passed over for)."""
        if search is None or not self.flags.preferences:
            return [], []
        earlier = self.searches.rate(search.search_id, memory_id, helpful)
        if helpful:
            return prefer.passed_over(search.memory_ids, memory_id, [m for m, h in earlier.items() if not h]), []
        return [], [m for m, h in earlier.items() if h]

    def _prefer(self, scope: Scope, winner: str, loser: str, level: ScopeLevel) -> None:
        """Records that ``winner`` was preferred over ``loser`` (a later rating of the same search)."""
        with self._lock:
            try:
                record = self._load(scope, winner, level)
            except NotFound:  # deleted since it was rated
                return
            fields = {prefer.FIELD: prefer.recorded(record.payload.get(prefer.FIELD), [loser], self._now())}
            self._stores.of(scope).set_fields(COLLECTION, record.id, fields, level)

    def session_outcome(self, scope: Scope, session_id: str, succeeded: bool | None) -> list[NewConfidence]:
        """A session ended: what was injected for its task counts as used, with its outcome
        (None, a partial outcome, teaches nothing). Each injected memory is reinforced like a
        memory_outcome attributed to the injection's search (the task becomes a key)."""
        if succeeded is None:
            return []
        origin = session_origin(session_id)
        search = self.searches.latest(scope, origin)
        if search is None:
            return []
        counter = "uses_succeeded" if succeeded else "uses_failed"
        results = []
        for memory_id in search.memory_ids:
            try:
                results.append(
                    self._observe(scope, memory_id, ScopeLevel.project, succeeded, OUTCOME_WEIGHT, counter, search, origin)
                )
            except NotFound:  # deleted since the session started
                continue
        return results

    def nearest(self, scope: Scope, items: list[tuple[str, str, str, Outcome]]) -> list[Hit | None]:
        """For each (title, description, content, outcome): the project's most similar memory
        of the same outcome (cosine score), if any. One batched embedding call.

        Embedded exactly as ``store`` embeds, so a re-learned lesson scores near 1. The
        outcome must match: "run X before Y" and "avoid running X inside Y" embed close
        together (0.94 measured) yet are opposite lessons.
        """
        if not items:
            return []
        vectors = self._embedder.embed_documents([f"{t}. {d}\n{c}" for t, d, c, _ in items])
        found: list[Hit | None] = []
        store = self._stores.of(scope)
        for (_, _, _, outcome), vector in zip(items, vectors, strict=True):
            hits = store.search(COLLECTION, vector, 1, match={"outcome": outcome.value})
            found.append(hits[0] if hits else None)
        return found

    def reinforce(self, scope: Scope, memory_id: str) -> NewConfidence:
        """A session learned this lesson again: count it as evidence, like a successful use."""
        return self._observe(scope, memory_id, ScopeLevel.project, True, OUTCOME_WEIGHT, "reinforced_count", None, "distilled")

    def counts(self, scope: Scope) -> int:
        return self._stores.of(scope).count(COLLECTION)


def _with_preferences(hits: list[MemoryHit], found: dict[str, dict[str, Any]]) -> list[MemoryHit]:
    """Hits rescored by the preferences recorded on them (services/memory_preferences.py)."""
    recorded = {h.id: found[h.id][prefer.FIELD] for h in hits if found[h.id].get(prefer.FIELD)}
    if not recorded:
        return hits
    scores = prefer.adjusted({h.id: h.score for h in hits}, recorded)
    return [h.model_copy(update={"score": round(scores[h.id], 4)}) for h in hits]


def key_texts(memory: dict[str, Any]) -> list[tuple[KeyKind, str]]:
    """The stored keys of a memory, ``doc`` first (its vector is also the memory's own)."""
    texts = [(KeyKind.doc, f"{memory['title']}. {memory['description']}\n{memory['content']}"), (KeyKind.title, memory["title"])]
    texts += [(KeyKind.applies_when, a) for a in memory.get("applies_when", [])]
    for kind in (KeyKind.task, KeyKind.error):
        if memory.get(kind.value):
            texts.append((kind, memory[kind.value]))
    return list(dict.fromkeys(texts))


def session_origin(session_id: str) -> str:
    """The search-log origin of what session_start injected for a session."""
    return f"session:{session_id}" if session_id else ""
