"""Named records owned by a level (skills, agents): what the two kinds do alike.

One collection per kind, created on first use. A record is owned by a level (``levels``)
and its name is unique among the records of its owner; it is found by id or by name among
what the caller sees, the one closest to the caller first. Texts are scrubbed before they
are stored. What a kind stores besides, how it validates and shows it, stays in its service.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from contextd_mcp.errors import Conflict, InvalidInput, NotFound
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.skill import Deleted
from contextd_mcp.ports.scoped_store import ScopedStore
from contextd_mcp.ports.vector_store import CollectionSpec, Record
from contextd_mcp.services import levels
from contextd_mcp.services.backing import Backing

# A tenant's records of one kind are few (tens to hundreds); listing scans up to this many.
SCAN_MAX = 2000


def _owner(payload: Mapping[str, Any]) -> dict[str, str]:
    return {k: payload[k] for k in ("tenant", "team", "project")}


def by_level_then_name(record: Record) -> tuple[int, str]:
    """Listing order: the caller's project first, then its team, then the org; by name within."""
    return levels.specificity(record.payload), record.payload["name_key"]


class NamedRecords:
    def __init__(self, backing: Backing, spec: CollectionSpec, kind: str, a_kind: str) -> None:
        self._stores = backing.stores
        self._spec = spec
        self._scrubber = backing.scrubber
        self._now = backing.now
        self._kind = kind  # "agent": NotFound's kind, and the "agent_id" an ambiguous name asks for
        self._a_kind = a_kind  # "an agent": how a name clash speaks of it
        # Name uniqueness (and a skill's use count) is read-modify-write; this process owns the store.
        self.lock = threading.Lock()
        # Created on first use: most connections never touch this kind, and each
        # collection costs its own files and about half a second to create.
        self._ensured = False

    def collection(self) -> str:
        if not self._ensured:
            self._stores.ensure(self._spec)  # idempotent, and locked inside the store
            self._ensured = True
        return self._spec.name

    def store(self, scope: Scope) -> ScopedStore:
        """The caller's handle on this kind (levelled: what applies to it, then wider)."""
        return self._stores.levelled(scope)

    # -- reads ---------------------------------------------------------------------------

    def load(self, scope: Scope, record_id: str, reach: ScopeLevel) -> Record:
        found = self.store(scope).get(self.collection(), [record_id], reach)
        if not found:
            raise NotFound(self._kind, record_id)
        return found[0]

    def visible(self, scope: Scope, reach: ScopeLevel, match: Mapping[str, Any] | None = None) -> list[Record]:
        return self.store(scope).scan(self.collection(), SCAN_MAX, reach, match)

    def resolve(self, scope: Scope, ref: str, reach: ScopeLevel) -> Record:
        """A record by name ('review', or 'review@team'): the one closest to the caller wins."""
        name, level = levels.split_ref(ref.strip())
        where: dict[str, Any] = {"name_key": name.lower()}
        if level is not None:
            where["level"] = level.value
        candidates = self.store(scope).scan(self.collection(), 50, reach, where)
        if not candidates:
            raise NotFound(self._kind, ref)
        candidates.sort(key=lambda r: (not levels.applies_to(r.payload, scope), levels.specificity(r.payload)))
        first = candidates[0]
        if len(candidates) > 1 and not levels.applies_to(first.payload, scope):
            same = [c for c in candidates if levels.specificity(c.payload) == levels.specificity(first.payload)]
            if len(same) > 1:
                many = f"{len(same)} {self._kind}s of your {reach.value} are named {name!r}"
                raise InvalidInput("name", f"{many}; use {self._kind}_id")
        return first

    def resolve_id_or_name(self, scope: Scope, ref: str, reach: ScopeLevel) -> Record:
        try:
            uuid.UUID(ref)
        except ValueError:
            return self.resolve(scope, ref, reach)
        return self.load(scope, ref, reach)

    def count(self, scope: Scope) -> int:
        """Records of the caller's tenant (every level)."""
        return self.store(scope).count(self.collection(), ScopeLevel.org)

    # -- writes --------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def new_payload(self, scope: Scope, level: ScopeLevel, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A new record's payload: its owner at ``level``, where it was made, its name, ``fields``."""
        now = self._now()
        return {
            **levels.owner_fields(scope, level),
            "level": level.value,
            "origin_team": scope.team,
            "origin_project": scope.project,
            "name": name,
            "name_key": name.lower(),
            **fields,
            "created_ts": now,
            "updated_ts": now,
        }

    def insert(self, scope: Scope, record: Record) -> None:
        """Stores a new record, unless its owner already has one of that name."""
        with self.lock:
            self._check_unique(scope, _owner(record.payload), record.payload["name"])
            self.store(scope).upsert(self.collection(), [record])

    def changes(self, scope: Scope, record: Record, request: Any, *texts: str) -> dict[str, Any]:
        """What an update ``request`` changes alike in every kind: the name (still unique among its
        owner's records) and the ``texts`` it sets, scrubbed (a list item by item). Hold ``lock``."""
        changes: dict[str, Any] = {}
        name = request.name
        if name is not None and name != record.payload["name"]:
            self._check_unique(scope, _owner(record.payload), name, except_id=record.id)
            changes.update(name=name, name_key=name.lower())
        for field in texts:
            value = getattr(request, field)
            if isinstance(value, list):
                changes[field] = [self.scrub(item) for item in value]
            elif value is not None:
                changes[field] = self.scrub(value)
        return changes

    def delete(self, scope: Scope, record_id: str, reach: ScopeLevel) -> Deleted:
        with self.lock:
            record = self.load(scope, record_id, reach)
            self.store(scope).delete(self.collection(), [record.id], reach)
        return Deleted(id=record.id)

    def _check_unique(self, scope: Scope, owner: dict[str, str], name: str, except_id: str | None = None) -> None:
        # Among the owner's records: the owner is the caller's or one it sees (org reach covers both).
        clash = self.store(scope).scan(self.collection(), 2, ScopeLevel.org, {**owner, "name_key": name.lower()})
        if any(r.id != except_id for r in clash):
            raise Conflict(f"{self._a_kind} named {name!r} already exists at this level; choose another name or update it")
