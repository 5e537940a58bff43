"""Curating memories by hand (the ``memories`` command): list, show with keys and history, delete.

Reads and deletes go through the caller's scope handle like the tools; a delete removes the
memory's key points too, so no key outlives its memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contextd_mcp import limits
from contextd_mcp.errors import NotFound
from contextd_mcp.models.requests import GetMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.services import memory_keys as keys
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import MemoryService

LIST_MAX = 10_000  # memories one `memories list` shows at most
REMOVE_MAX = 1000  # ids one `memories rm` deletes at most
_LIST_FIELDS = ("title", "outcome", "confidence", "tags", "created_ts")


class Curation:
    def __init__(self, stores: Stores, memory: MemoryService) -> None:
        self._stores = stores
        self._memory = memory

    def newest(self, scope: Scope, limit: int) -> list[dict[str, Any]]:
        """The project's memories, newest first."""
        rows = self._stores.of(scope).scan(MEMORIES, max(1, min(limit, LIST_MAX)), order_by="created_ts")
        return [{"id": r.id, **{k: r.payload.get(k) for k in _LIST_FIELDS}} for r in rows]

    def show(self, scope: Scope, memory_id: str) -> dict[str, Any]:
        memory = self._memory.get(scope, GetMemory(memory_id=memory_id))
        store = self._stores.of(scope)
        payload = store.get(MEMORIES, [memory_id])[0].payload
        learned = store.scan(keys.KEYS, 64, match={"memory_id": memory_id, "kind": ["learned", "negative"]})
        return {
            **memory.model_dump(mode="json"),
            "keys": sorted(({"kind": r.payload["kind"], "text": r.payload["text"]} for r in learned),
                           key=lambda k: (k["kind"], k["text"])),
            "events": payload.get("events", []),
        }

    def remove(self, scope: Scope, memory_ids: Sequence[str]) -> list[str]:
        """Deletes those of ``memory_ids`` in the scope; returns the ones it deleted."""
        store = self._stores.of(scope)
        found = [r.id for r in store.get(MEMORIES, list(memory_ids)[:REMOVE_MAX])]
        if not found:
            raise NotFound("memory", ", ".join(memory_ids)[:200])
        for memory_id in found:
            points = store.scan(keys.KEYS, limits.TRANSFER_RECORDS_MAX, match={"memory_id": memory_id})
            store.delete(MEMORIES, [memory_id])  # the memory first: a key left over finds nothing
            store.delete(keys.KEYS, [p.id for p in points])
        return found
