"""Writing imported memories: a new one with all its keys, or a merge into the store's copy.

A memory is written as ``MemoryService`` writes it (services/memory.py ``_write``): its record
with the doc key's vector, then one point per key (``key_texts`` of its texts, plus its learned
and negative keys, each with its own time so the caps evict the oldest as they would have).
"""

from __future__ import annotations

from typing import Any

from contextd_mcp import limits
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services import memory_keys as keys
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import key_texts
from contextd_mcp.services.memory_keys import KeyKind
from contextd_mcp.services.transfer_merge import merge_keys, merge_memory, needs_rekey

_LEARNED = [KeyKind.learned.value, KeyKind.negative.value]


class MemoryWriter:
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def add(self, store: ScopedStore, fresh: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> list[Record]:
        """New memories, one batched embedding call; each record before its keys (returned)."""
        derived = [key_texts(payload) for _, payload, _ in fresh]
        vectors = iter(self._embedder.embed_documents([t for d in derived for _, t in d]))
        own = [[next(vectors) for _ in d] for d in derived]
        records, points = [], []
        for (ident, payload, _), key_list, vecs in zip(fresh, derived, own, strict=True):
            records.append(Record(ident, payload, vecs[0]))
            points += keys.key_records(payload, ident, key_list, vecs, float(payload["created_ts"]))
        for ident, payload, learned in fresh:
            points += self._learned_points(payload, ident, learned, self._queries(learned))
        store.upsert(MEMORIES, records)
        store.upsert(keys.KEYS, points)
        return points

    def merge(
        self, store: ScopedStore, target: Record, payload: dict[str, Any], learned: list[dict[str, Any]],
        have: list[dict[str, Any]], dry_run: bool,
    ) -> str:
        """Folds an imported memory into ``target`` (whose learned keys are ``have``); "changed" or "unchanged"."""
        ours = target.payload
        merged = merge_memory(ours, payload)
        keep = merge_keys(have, learned)
        if merged == ours and _texts(keep) == _texts(have):
            return "unchanged"
        if dry_run:
            return "changed"
        rekey = needs_rekey(ours, merged)
        before = {k["id"] for k in have}
        if rekey:  # the derived keys carry tags and one key per situation: written again
            before = {r.id for r in store.scan(keys.KEYS, keys.KEYS_READ_MAX, match={"memory_id": target.id})}
            before -= {r.id for r in self.add(store, [(target.id, merged, [])])}
        elif merged != ours:
            changes = {k: v for k, v in merged.items() if ours.get(k) != v and k not in keys.OWNER}
            store.set_fields(MEMORIES, target.id, changes)
        # A kept key stays in its slot (unless rekeyed: its tags are rewritten too); an added one
        # takes a free slot of its kind; a key merged out goes.
        stays = [] if rekey else [k for k in keep if "id" in k]
        added = [k for k in keep if rekey or "id" not in k]
        taken = [slot for k in stays if (slot := keys.slot_of(k["id"])) is not None]
        written = self._learned_points(merged, target.id, added, self._queries(added), taken) if added else []
        if written:
            store.upsert(keys.KEYS, written)
        gone = before - {k["id"] for k in stays} - {r.id for r in written}
        store.delete(keys.KEYS, sorted(gone))
        return "changed"

    def _queries(self, learned: list[dict[str, Any]]) -> list[list[float]]:
        # A learned or negative key is a search's query, embedded as one (memory_keys.learn).
        return [self._embedder.embed_query(k["text"]) for k in learned]

    @staticmethod
    def learned_of(store: ScopedStore, memory_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The learned and negative keys of these memories, in one read."""
        if not memory_ids:
            return {}
        cap = len(memory_ids) * (limits.LEARNED_KEYS_MAX + limits.NEGATIVE_KEYS_MAX)
        found: dict[str, list[dict[str, Any]]] = {}
        for r in store.scan(keys.KEYS, cap, match={"memory_id": memory_ids, "kind": _LEARNED}):
            p = r.payload
            found.setdefault(p["memory_id"], []).append(
                {"kind": p["kind"], "text": p["text"], "created_ts": p["created_ts"], "id": r.id}
            )
        return found

    @staticmethod
    def _learned_points(
        payload: dict[str, Any], ident: str, learned: list[dict[str, Any]], vectors: list[list[float]],
        taken: list[int] | None = None,
    ) -> list[Record]:
        """The keys' points, each in a slot no other of them (nor ``taken``) holds."""
        busy = list(taken or [])
        points: list[Record] = []
        for key, vector in zip(learned, vectors, strict=True):
            made = keys.key_records(payload, ident, [(KeyKind(key["kind"]), key["text"])], [vector], float(key["created_ts"]), busy)
            busy += [slot for r in made if (slot := keys.slot_of(r.id)) is not None]
            points += made
        return points


def _texts(learned: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(k["kind"], k["text"]) for k in learned}
