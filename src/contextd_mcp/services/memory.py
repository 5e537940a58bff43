"""ReasoningBank memory: store, search, get, and learn from feedback and outcomes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from contextd_mcp import limits
from contextd_mcp.errors import NotFound
from contextd_mcp.models.confidence import FEEDBACK_WEIGHT, HIDE_BELOW, OUTCOME_WEIGHT, Belief, Origin, rank_score
from contextd_mcp.models.memory import Memory, MemoryHit, Outcome
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, MemoryOutcome, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.ports.vector_store import CollectionSpec, Hit, Range, Record
from contextd_mcp.services.content_ids import content_id, digest

COLLECTION = "memories"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


class StoredMemory(BaseModel):
    id: str
    confidence: float
    duplicate_of_existing: bool = False


class NewConfidence(BaseModel):
    id: str
    confidence: float
    hidden_from_search: bool


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def first_sentence(text: str, max_chars: int = 200) -> str:
    sentence = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    if len(sentence) <= max_chars:
        return sentence
    return sentence[:max_chars].rsplit(" ", 1)[0] + "…"


def relative_level(owner: dict[str, Any], caller: Scope) -> ScopeLevel:
    if owner.get("project") == caller.project and owner.get("team") == caller.team:
        return ScopeLevel.project
    if owner.get("team") == caller.team:
        return ScopeLevel.team
    return ScopeLevel.org


# What a hit shows; the content (the bulk of a memory) is read only by memory_get.
HIT_FIELDS = ("tenant", "team", "project", "title", "description", "outcome", "confidence", "tags")


class MemoryService:
    def __init__(
        self, stores: Stores, embedder: Embedder, scrubber: Scrubber, now: Callable[[], float] = time.time
    ) -> None:
        self._stores = stores
        self._embedder = embedder
        self._scrubber = scrubber
        self._now = now
        # Feedback is read-modify-write on counters; serialise it per process.
        self._lock = threading.Lock()
        stores.ensure(
            CollectionSpec(
                name=COLLECTION,
                dim=embedder.dim,
                model=embedder.model_name,
                keyword_fields=("tenant", "team", "project", "outcome", "tags"),
                float_fields=("confidence", "created_ts"),
                hot_fields=("tenant", "team", "project"),
            )
        )

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def store(self, scope: Scope, request: StoreMemory, origin: Origin = Origin.stored, session_id: str = "") -> StoredMemory:
        return self.store_many(scope, [request], origin, session_id)[0]

    def store_many(
        self, scope: Scope, requests: list[StoreMemory], origin: Origin = Origin.stored, session_id: str = ""
    ) -> list[StoredMemory]:
        """Store several memories with one batched embedding call (imports, distillation, benches)."""
        belief = Belief.prior(origin)
        now = self._now()
        prepared = []
        for request in requests:
            title = self._scrub(request.title)
            content = self._scrub(request.content)
            description = self._scrub(request.description) if request.description else first_sentence(content)
            content_digest = digest(title, content)
            prepared.append((content_id("memory", scope, content_digest), content_digest, title, description, content, request))
        # One read by id finds every memory this batch already has (services/content_ids.py).
        store = self._stores.of(scope)
        existing = {r.id: r for r in store.get(COLLECTION, [p[0] for p in prepared])}
        results: list[StoredMemory] = []
        fresh: dict[str, tuple[Record, str]] = {}
        for ident, content_digest, title, description, content, request in prepared:
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
            fresh[ident] = (Record(id=ident, payload=payload), f"{title}. {description}\n{content}")
        if fresh:
            vectors = self._embedder.embed_documents([text for _, text in fresh.values()])
            records = [Record(id=r.id, payload=r.payload, vector=v) for (r, _), v in zip(fresh.values(), vectors, strict=True)]
            store.upsert(COLLECTION, records)
        return results

    def search(self, scope: Scope, request: SearchMemories) -> list[MemoryHit]:
        where: dict[str, Any] = {"confidence": Range(gte=request.min_confidence)}
        if request.outcome is not None:
            where["outcome"] = request.outcome.value
        if request.tags:
            where["tags"] = list(request.tags)
        vector = self._embedder.embed_query(request.query)
        candidates = self._stores.of(scope).search(
            COLLECTION, vector, request.limit * limits.RERANK_FACTOR, request.scope, where, fields=HIT_FIELDS
        )
        hits = []
        for hit in candidates:
            relevance = max(0.0, min(1.0, hit.score))
            confidence = float(hit.payload["confidence"])
            p = hit.payload
            hits.append(
                MemoryHit(
                    id=hit.id,
                    title=p["title"],
                    description=p["description"],
                    outcome=Outcome(p["outcome"]),
                    confidence=round(confidence, 4),
                    relevance=round(relevance, 4),
                    score=round(rank_score(relevance, confidence), 4),
                    tags=list(p.get("tags", [])),
                    scope=relative_level(p, scope),
                )
            )
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[: request.limit]

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
            confidence=round(float(p["confidence"]), 4),
            helpful_count=int(p["helpful_count"]),
            unhelpful_count=int(p["unhelpful_count"]),
            uses_succeeded=int(p["uses_succeeded"]),
            uses_failed=int(p["uses_failed"]),
            origin=p["origin"],
            scope=relative_level(p, scope),
            created_at=_iso(p["created_ts"]),
            updated_at=_iso(p["updated_ts"]),
        )

    def _observe(
        self, scope: Scope, memory_id: str, level: ScopeLevel, positive: bool, weight: float, counter: str
    ) -> NewConfidence:
        with self._lock:
            record = self._load(scope, memory_id, level)
            p = record.payload
            belief = Belief(float(p["alpha"]), float(p["beta"])).observe(positive, weight)
            fields = {
                "alpha": belief.alpha,
                "beta": belief.beta,
                "confidence": belief.confidence,
                counter: int(p[counter]) + 1,
                "updated_ts": self._now(),
            }
            self._stores.of(scope).set_fields(COLLECTION, record.id, fields, level)
        return NewConfidence(
            id=record.id, confidence=round(belief.confidence, 4), hidden_from_search=belief.confidence < HIDE_BELOW
        )

    def feedback(self, scope: Scope, request: MemoryFeedback) -> NewConfidence:
        counter = "helpful_count" if request.helpful else "unhelpful_count"
        return self._observe(scope, request.memory_id, request.scope, request.helpful, FEEDBACK_WEIGHT, counter)

    def outcome(self, scope: Scope, request: MemoryOutcome) -> NewConfidence:
        counter = "uses_succeeded" if request.succeeded else "uses_failed"
        return self._observe(scope, request.memory_id, request.scope, request.succeeded, OUTCOME_WEIGHT, counter)

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
        with self._lock:
            record = self._load(scope, memory_id, ScopeLevel.project)
            p = record.payload
            belief = Belief(float(p["alpha"]), float(p["beta"])).observe(True, OUTCOME_WEIGHT)
            fields = {
                "alpha": belief.alpha,
                "beta": belief.beta,
                "confidence": belief.confidence,
                "reinforced_count": int(p.get("reinforced_count", 0)) + 1,
                "updated_ts": self._now(),
            }
            self._stores.of(scope).set_fields(COLLECTION, record.id, fields)
        return NewConfidence(
            id=record.id, confidence=round(belief.confidence, 4), hidden_from_search=belief.confidence < HIDE_BELOW
        )

    def counts(self, scope: Scope) -> int:
        return self._stores.of(scope).count(COLLECTION)
