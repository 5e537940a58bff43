"""The store as a caller sees it: every call bound to one scope, by construction.

Services never hold the raw ``VectorStore``. They hold ``Stores``, which gives out only
``ScopedStore`` handles, each made for one ``Scope``; a handle adds the scope's filter to every
read, search, count, field update and delete, and stamps and checks the owner of every record
it writes. There is no argument that widens a handle past its tenant, nor one that drops the
filter: a service that forgets the scope cannot reach the store at all.

How wide a read reaches inside the tenant is a ``ScopeLevel`` (``reach``), read one of two ways,
fixed when the handle is made:
- ``owned`` kinds (memories, checkpoints, sessions, branches, remediations, policies) belong to
  one project; a team / org reach reads the team's / tenant's records (``Scope.read_filter``).
- ``levelled`` kinds (skills, agents) are owned by a level (``models.scope.owner_fields``); a
  reach reads what applies to the caller, then its team's / org's (``visible_where``).

``match`` adds conditions; it may name an owner field only to narrow the scope's own filter.
Sparse (lexical) vectors are written and queried in the tenant's own part of the term index
space (``ports.tenant_terms``): the engine's term statistics then count one tenant's records,
so another tenant's writes cannot move a caller's lexical scores.

The one way around the handle is ``AcrossScopes``, the admin path, named as such: the background
sweeps find overdue records in every scope with it and then act on each through a handle made
from that record's own scope; ``status`` counts totals with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from contextd_mcp.models.scope import Scope, ScopeLevel, visible_where
from contextd_mcp.ports import tenant_terms
from contextd_mcp.ports.vector_store import CollectionSpec, Condition, Hit, Record, Sparse, VectorStore, Where

log = logging.getLogger("contextd_mcp")

OWNER_FIELDS = ("tenant", "team", "project")


class ScopeViolation(RuntimeError):
    """A service asked a handle for something outside its scope: a bug, refused before the store."""


class Visibility(StrEnum):
    owned = "owned"
    levelled = "levelled"


def scope_of(payload: Mapping[str, Any]) -> Scope:
    """The scope a stored record belongs to (for acting on it through its own handle)."""
    return Scope(tenant=payload["tenant"], team=payload["team"], project=payload["project"])


def _values(condition: Condition) -> set[Any]:
    return set(condition) if isinstance(condition, list) else {condition}


class ScopedStore:
    def __init__(self, store: VectorStore, scope: Scope, visibility: Visibility = Visibility.owned) -> None:
        self._store = store
        self.scope = scope
        self._visibility = visibility

    def where(self, reach: ScopeLevel = ScopeLevel.project, match: Where | None = None) -> dict[str, Condition]:
        """The filter of a call at ``reach``: the scope's, narrowed by ``match``, never widened."""
        if self._visibility is Visibility.levelled:
            where: dict[str, Condition] = dict(visible_where(self.scope, reach))
        else:
            where = dict(self.scope.read_filter(reach))
        for key, condition in (match or {}).items():
            if key in OWNER_FIELDS and key in where and not _values(condition) <= _values(where[key]):
                raise ScopeViolation(f"{key}={condition!r} is outside the scope ({key}={where[key]!r})")
            where[key] = condition
        return where

    def _owned(self, payload: Mapping[str, Any], where: Mapping[str, Condition]) -> bool:
        return all(payload.get(key) in _values(where[key]) for key in OWNER_FIELDS if key in where)

    def _terms(self, collection: str, sparse: Sparse, tenant: str | None = None) -> Sparse:
        """Terms in the tenant's layout (the scope's unless named): every reach stays inside it."""
        return tenant_terms.for_tenant(sparse, tenant or self.scope.tenant, self._store.term_key(collection))

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, collection: str, records: Sequence[Record], reach: ScopeLevel = ScopeLevel.project) -> None:
        """Writes ``records`` with the scope's owner fields where they name none; a record whose
        owner lies outside what this handle sees at ``reach`` is refused, the batch with it."""
        where = self.where(reach)
        stamped = []
        for record in records:
            payload = {**self.scope.fields(), **record.payload}
            if not self._owned(payload, where):
                owner = {k: payload[k] for k in OWNER_FIELDS}
                raise ScopeViolation(f"record {record.id} is owned by {owner}, outside the scope")
            # The record's own tenant (a handle writes only inside its tenant, so it is the scope's).
            sparse = self._terms(collection, record.sparse, payload["tenant"]) if record.sparse else record.sparse
            stamped.append(Record(record.id, payload, record.vector, sparse))
        self._store.upsert(collection, stamped)

    def set_fields(
        self, collection: str, record_id: str, fields: Mapping[str, Any], reach: ScopeLevel = ScopeLevel.project
    ) -> None:
        """Updates ``fields`` of the record, if it is in the scope (else nothing); never its owner."""
        if set(fields) & set(OWNER_FIELDS):
            raise ScopeViolation(f"a field update cannot move record {record_id} to another owner")
        self._store.set_fields(collection, record_id, fields, self.where(reach))

    def delete(self, collection: str, ids: Sequence[str], reach: ScopeLevel = ScopeLevel.project) -> None:
        """Deletes those of ``ids`` that are in the scope; the others stay."""
        if ids:
            self._store.delete(collection, ids, self.where(reach))

    def rename(self, collection: str, moves: Mapping[str, str], reach: ScopeLevel = ScopeLevel.project) -> None:
        """Moves those records of ``moves`` (old id → new id) that are in the scope to their new
        ids, as stored (vectors, payload: the owner with them)."""
        if moves:
            self._store.rename(collection, moves, self.where(reach))

    # -- reads -----------------------------------------------------------------------------

    def get(
        self,
        collection: str,
        ids: Sequence[str],
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        return self._store.get(collection, ids, self.where(reach, match), fields)

    def search(
        self,
        collection: str,
        vector: Sequence[float],
        limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        return self._store.search(collection, vector, self.where(reach, match), limit, fields)

    def sparse_search(
        self,
        collection: str,
        sparse: Sparse,
        limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        where = self.where(reach, match)
        return self._store.sparse_search(collection, self._terms(collection, sparse), where, limit, fields)

    def dense_and_sparse(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        where = self.where(reach, match)
        return self._store.dense_and_sparse(collection, vector, self._terms(collection, sparse), where, limit, fields)

    def dense_sparse_narrowed(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        limit: int,
        narrowed: Where,
        narrowed_limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        fields: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit], list[Hit]]:
        where = self.where(reach, match)
        # Checked like any match: the narrowing may add conditions, never widen the scope's.
        third = self.where(reach, {**(match or {}), **narrowed})
        terms = self._terms(collection, sparse)
        return self._store.dense_sparse_narrowed(collection, vector, terms, where, limit, third, narrowed_limit, fields)

    def hybrid_search(
        self,
        collection: str,
        vector: Sequence[float],
        sparse: Sparse,
        limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        candidates: int = 50,
        weights: tuple[float, float] = (1.0, 1.0),
        fields: Sequence[str] | None = None,
    ) -> list[Hit]:
        where = self.where(reach, match)
        terms = self._terms(collection, sparse)
        return self._store.hybrid_search(collection, vector, terms, where, limit, candidates, weights, fields)

    def scan(
        self,
        collection: str,
        limit: int,
        reach: ScopeLevel = ScopeLevel.project,
        match: Where | None = None,
        order_by: str | None = None,
        descending: bool = True,
    ) -> list[Record]:
        return self._store.scan(collection, self.where(reach, match), limit, order_by, descending)

    def count(self, collection: str, reach: ScopeLevel = ScopeLevel.project, match: Where | None = None) -> int:
        return self._store.count(collection, self.where(reach, match))


class Stores:
    """What a service holds: handles bound to a scope, and collection set-up (no records)."""

    def __init__(self, store: VectorStore) -> None:
        self.__store = store  # name-mangled: reached only through the handles below

    def ensure(self, spec: CollectionSpec) -> None:
        """Opens (or creates) the collection; one that holds sparse vectors in an older term
        layout (written before terms were per tenant) is rewritten once, here, before any
        service reads or writes it."""
        self.__store.ensure(spec)
        if spec.sparse:
            started = time.monotonic()
            secret = self.__store.term_key(spec.name)
            rewritten = self.__store.rewrite_sparse(spec.name, tenant_terms.LAYOUT, tenant_terms.from_plain(secret))
            if rewritten:
                # Once per store, on the first start after the upgrade; a long pause needs a reason.
                log.info("%s: %d sparse vectors moved to per-tenant term indexes in %.1f s (once)",
                         spec.name, rewritten, time.monotonic() - started)

    def of(self, scope: Scope) -> ScopedStore:
        """A handle for a kind owned by one project (``owned``)."""
        return ScopedStore(self.__store, scope, Visibility.owned)

    def levelled(self, scope: Scope) -> ScopedStore:
        """A handle for a kind owned by a level (skills, agents)."""
        return ScopedStore(self.__store, scope, Visibility.levelled)


class AcrossScopes:
    """The admin path: reads across every scope, for background sweeps and ``status`` totals.

    It reads only; a sweep acts on what it finds through ``Stores.of(scope_of(record.payload))``.
    Which services may hold one is pinned by tests/test_layers.py.
    """

    def __init__(self, store: VectorStore) -> None:
        self.__store = store

    def scan(
        self,
        collection: str,
        where: Where,
        limit: int,
        order_by: str | None = None,
        descending: bool = True,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        return self.__store.scan(collection, where, limit, order_by, descending, fields)

    def count(self, collection: str, where: Where | None = None) -> int:
        return self.__store.count(collection, where or {})

    def settling(self, collection: str) -> bool:
        return self.__store.settling(collection)
