"""Rewriting every stored sparse vector of a collection once, resumably (either engine).

Used when the term layout changes (``ports.tenant_terms``): each sparse vector becomes
``remap(payload, sparse)``, the dense vector stays as stored (no re-embedding). The state lives
with the collection (a JSON object the adapter stores durably) and is read before anything:

- ``terms``: the layout the collection holds; equal to the one asked → nothing to do;
- ``rewrite``: progress of a run: ``offset`` (the scroll position of the next batch) and
  ``journal`` (the new vectors of the batch being written, by id).

A remap is not idempotent (an XOR applied twice undoes itself), so no vector is ever
remapped from what the collection holds now unless the state says it is unwritten: each
batch's *results* are journalled (durably, with the offset after it) before they are written,
and the next batch's journal replaces it only once they are durable; an interrupted run first
writes the journal again (writing a result twice is harmless), then goes on from the saved
offset. A journal is ≈ 1 MiB at most (``limits.SPARSE_REWRITE_BATCH``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from contextd_mcp.limits import SPARSE_REWRITE_BATCH
from contextd_mcp.ports.vector_store import Sparse, SparseRemap

# What of a record's payload a remap is given (its owner: the rest would only cost reading).
OWNER = ("tenant", "team", "project")
# A scroll page: (id, owner fields, sparse) of each point that has a sparse vector, and where the
# next page starts (None: the last page). Offsets must be JSON values (ids as strings).
Page: TypeAlias = tuple[list[tuple[str, dict[str, Any], dict[int, float]]], Any]


@dataclass(frozen=True)
class Engine:
    """What a rewrite needs of an adapter, for one collection."""

    read: Callable[[Any, int], Page]  # (offset, limit) → page
    write: Callable[[list[tuple[str, Sparse]]], None]  # sets only these sparse vectors, durably
    load: Callable[[], dict[str, Any]]  # the collection's term state
    save: Callable[[dict[str, Any]], None]  # durably replaces it


def _journal(batch: list[tuple[str, Sparse]]) -> list[list[Any]]:
    return [[ident, [int(i) for i in sparse], [float(w) for w in sparse.values()]] for ident, sparse in batch]


def _unjournal(journal: list[list[Any]]) -> list[tuple[str, Sparse]]:
    return [(str(ident), dict(zip(map(int, indices), map(float, weights), strict=True)))
            for ident, indices, weights in journal]


def term_key(engine: Engine) -> bytes:
    """The collection's term secret (``ports.tenant_terms``), made on first use. Read back after
    saving: with a server, another daemon may have made one first, and the stored one wins."""
    state = engine.load()
    if not state.get("term_key"):
        engine.save({**state, "term_key": secrets.token_hex(16)})
        state = engine.load()
    return bytes.fromhex(str(state["term_key"]))


def rewrite(engine: Engine, layout: str, remap: SparseRemap) -> int:
    """Brings the collection to ``layout``; returns how many vectors were (re)written."""
    state = engine.load()
    if state.get("terms") == layout:
        return 0
    progress = dict(state.get("rewrite") or {"offset": None, "journal": None})
    written = 0
    while True:
        if progress.get("journal"):  # the batch journalled last (again, after a crash: harmless)
            batch = _unjournal(progress["journal"])
            engine.write(batch)  # durable on return: the next save may drop its journal
            written += len(batch)
        if progress.get("done"):
            break
        items, following = engine.read(progress["offset"], SPARSE_REWRITE_BATCH)
        journal = _journal([(i, remap(p, s)) for i, p, s in items])
        progress = {"offset": following, "journal": journal, "done": following is None}
        engine.save({**state, "rewrite": progress})  # one durable write a batch
    engine.save({**state, "rewrite": None, "terms": layout})  # None, not absent: a server merges metadata
    return written


class TermLayouts:
    """An adapter's side of the port's ``term_key`` and ``rewrite_sparse``, given how to reach a
    collection's term state (``engine_of``). Keys are read once: ScopedStore asks on every
    sparse write and query, and a key never changes once made."""

    def __init__(self, engine_of: Callable[[str], Engine]) -> None:
        self._engine_of = engine_of
        self._keys: dict[str, bytes] = {}

    def key(self, collection: str) -> bytes:
        secret = self._keys.get(collection)
        if secret is None:
            secret = self._keys[collection] = term_key(self._engine_of(collection))
        return secret

    def rewrite(self, collection: str, layout: str, remap: SparseRemap) -> int:
        return rewrite(self._engine_of(collection), layout, remap)
