"""Curation of memories by a person (the web page): list, edit, delete, merge two near-duplicates.

Agents have no tools for these: an agent rates a lesson, a person corrects or removes it. Every
read and write goes through the caller's scope-bound store handle at ``reach`` (``org`` is the
caller's whole tenant, never another's). An edit keeps the memory's id (ratings, history and the
sessions that cite it stay attached) and rewrites the keys derived from its text; the keys it
learned from rated queries stay, with the new tags.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from contextd_mcp import limits
from contextd_mcp.errors import InvalidInput, NotFound
from contextd_mcp.models.confidence import Belief, Origin
from contextd_mcp.models.requests import _clean_tags as clean_tags
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services import memory_keys as keys
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.memory import COLLECTION, first_sentence, key_texts
from contextd_mcp.services.memory_keys import KeyKind

# Keys a memory's own text produces (rewritten by an edit); learned / negative keys come from ratings.
_TEXT_KINDS = [k.value for k in KeyKind if k not in (KeyKind.learned, KeyKind.negative)]
LIST_MAX = 500  # memories one listing returns (the page pages through search instead)
_COUNTERS = ("helpful_count", "unhelpful_count", "uses_succeeded", "uses_failed", "reinforced_count")


@dataclass(frozen=True)
class MemoryEdit:
    """The fields a person may change; None leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    content: str | None = None
    tags: list[str] | None = None

    def check(self) -> None:
        """InvalidInput naming the field and the rule, as the tools' validation does."""
        bounds = {"title": limits.TITLE_MAX, "description": limits.DESCRIPTION_MAX, "content": limits.CONTENT_MAX}
        for field, cap in bounds.items():
            value = getattr(self, field)
            if value is not None and len(value) > cap:
                raise InvalidInput(field, f"at most {cap} characters")
            if field in ("title", "content") and value is not None and not value.strip():
                raise InvalidInput(field, "must not be empty")
        if self.tags is not None:
            if len(self.tags) > limits.TAGS_MAX:
                raise InvalidInput("tags", f"at most {limits.TAGS_MAX}")
            if any(not t or len(t) > limits.TAG_MAX for t in self.tags):
                raise InvalidInput("tags", f"each 1-{limits.TAG_MAX} characters")
            try:
                clean_tags(self.tags)  # the tools' rule, so an edited memory stays findable by tag
            except ValueError as exc:
                raise InvalidInput("tags", str(exc)) from None


class MemoryCuration:
    def __init__(self, backing: Backing, embedder: Embedder) -> None:
        self._stores = backing.stores
        self._embedder = embedder
        self._scrubber = backing.scrubber
        self._now = backing.now
        self._lock = threading.Lock()

    def _load(self, store: ScopedStore, memory_id: str, reach: ScopeLevel) -> Record:
        found = store.get(COLLECTION, [memory_id], reach)
        if not found:
            raise NotFound("memory", memory_id)
        return found[0]

    def record(self, scope: Scope, memory_id: str, reach: ScopeLevel = ScopeLevel.org) -> dict[str, Any]:
        """A memory's whole payload (history, keys' texts, counters) for the detail view."""
        store = self._stores.of(scope)
        payload = dict(self._load(store, memory_id, reach).payload)
        found = store.scan(keys.KEYS, keys.KEYS_READ_MAX, reach, {"memory_id": memory_id})
        payload["keys"] = sorted(
            (str(r.payload.get("kind")), str(r.payload.get("text", ""))) for r in found
        )
        return payload

    def list(
        self, scope: Scope, reach: ScopeLevel, match: dict[str, Any], min_confidence: float = 0.0, limit: int = 100
    ) -> list[Record]:
        """The newest memories matching ``match`` (project / outcome / tags), then by confidence."""
        rows = self._stores.of(scope).scan(COLLECTION, min(limit, LIST_MAX), reach, match, order_by="created_ts")
        return [r for r in rows if float(r.payload.get("confidence", 0)) >= min_confidence]

    def update(self, scope: Scope, memory_id: str, edit: MemoryEdit, reach: ScopeLevel = ScopeLevel.org) -> dict[str, Any]:
        edit.check()
        store = self._stores.of(scope)
        with self._lock:
            record = self._load(store, memory_id, reach)
            p = dict(record.payload)
            for field in ("title", "description", "content"):
                value = getattr(edit, field)
                if value is not None:
                    p[field] = self._scrubber.scrub(value).text
            if edit.description is not None and not edit.description.strip():
                p["description"] = first_sentence(p["content"])
            if edit.tags is not None:
                p["tags"] = list(dict.fromkeys(self._scrubber.scrub(t).text for t in edit.tags))
            p["updated_ts"] = self._now()
            self._rewrite_keys(store, Record(record.id, p), reach)
        return p

    def _rewrite_keys(self, store: ScopedStore, record: Record, reach: ScopeLevel) -> None:
        """The memory with its new doc vector, its text keys re-embedded, its learned keys re-tagged."""
        texts = key_texts(record.payload)
        vectors = self._embedder.embed_documents([t for _, t in texts])
        old = store.scan(keys.KEYS, keys.KEYS_READ_MAX, reach, {"memory_id": record.id})
        stale = [r.id for r in old if r.payload.get("kind") in _TEXT_KINDS]
        store.upsert(COLLECTION, [Record(record.id, record.payload, vectors[0])], reach)
        fresh = keys.key_records(record.payload, record.id, texts, vectors, self._now())
        keep = {r.id for r in fresh}
        store.delete(keys.KEYS, [i for i in stale if i not in keep], reach)
        store.upsert(keys.KEYS, fresh, reach)
        for learned in (r for r in old if r.payload.get("kind") not in _TEXT_KINDS):
            store.set_fields(keys.KEYS, learned.id, {"tags": record.payload["tags"], "outcome": record.payload["outcome"]}, reach)

    def delete(self, scope: Scope, memory_id: str, reach: ScopeLevel = ScopeLevel.org) -> None:
        """The memory and every key of it (a key left behind would find nothing, but cost a slot)."""
        store = self._stores.of(scope)
        with self._lock:
            self._load(store, memory_id, reach)
            found = store.scan(keys.KEYS, keys.KEYS_READ_MAX, reach, {"memory_id": memory_id})
            store.delete(COLLECTION, [memory_id], reach)
            store.delete(keys.KEYS, [r.id for r in found], reach)

    def merge(self, scope: Scope, keep_id: str, drop_id: str, reach: ScopeLevel = ScopeLevel.org) -> dict[str, Any]:
        """``drop`` folds into ``keep``: its evidence (ratings, uses, history) and tags move over,
        then it is deleted. The kept text is ``keep``'s; edit it first to combine the two."""
        if keep_id == drop_id:
            raise InvalidInput("merge", "the two memories must differ")
        store = self._stores.of(scope)
        with self._lock:
            keep = self._load(store, keep_id, reach).payload
            drop = self._load(store, drop_id, reach).payload
            if (keep["tenant"], keep["team"], keep["project"]) != (drop["tenant"], drop["team"], drop["project"]):
                raise InvalidInput("merge", "both memories must belong to the same project")
            prior = Belief.prior(Origin(drop.get("origin", Origin.stored.value)))
            # The dropped memory's evidence beyond its prior, added to the kept one's belief.
            alpha = float(keep["alpha"]) + max(0.0, float(drop["alpha"]) - prior.alpha)
            beta = float(keep["beta"]) + max(0.0, float(drop["beta"]) - prior.beta)
            events = sorted([*keep.get("events", []), *drop.get("events", [])], key=lambda e: float(e.get("ts", 0)))
            fields: dict[str, Any] = {
                "alpha": alpha,
                "beta": beta,
                "confidence": alpha / (alpha + beta),
                "events": events[-limits.MEMORY_EVENTS_MAX :],
                "merged_from": [*keep.get("merged_from", []), drop_id][-limits.MEMORY_EVENTS_MAX :],
                "updated_ts": self._now(),
            }
            for counter in _COUNTERS:
                fields[counter] = int(keep.get(counter, 0)) + int(drop.get(counter, 0))
            tags = list(dict.fromkeys([*keep.get("tags", []), *drop.get("tags", [])]))[: limits.TAGS_MAX]
            store.set_fields(COLLECTION, keep_id, fields, reach)
        if tags != list(keep.get("tags", [])):
            self.update(scope, keep_id, MemoryEdit(tags=tags), reach)
        self.delete(scope, drop_id, reach)
        return {**keep, **fields, "tags": tags}
