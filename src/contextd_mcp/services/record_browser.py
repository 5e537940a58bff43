"""Read (and, for kinds no tool deletes, delete) a tenant's stored records for the web page.

Everything is read through the caller's scope-bound handle at ``org`` reach: the caller's whole
tenant, never another's. Listings are capped (``BROWSE_MAX``); the dashboard's project counts
read at most ``DASHBOARD_SCAN_MAX`` memories (the newest), and say when they stopped there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from contextd_mcp.errors import InvalidInput, NotFound
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.scoped_store import ScopedStore, Stores
from contextd_mcp.ports.vector_store import Record

BROWSE_MAX = 200  # records one listing shows
DASHBOARD_SCAN_MAX = 20_000  # memories the dashboard reads to count by project and chart ratings
# The kinds the page lists from the store itself; skills, agents and policies go through their tools.
BROWSABLE = {"memories": "created_ts", "remediations": "created_ts", "checkpoints": "created_ts",
             "sessions": "created_ts"}
# No tool deletes these; a person may (a wrong fix, a stale checkpoint).
DELETABLE = ("remediations", "checkpoints")
COUNTED = ("memories", "remediations", "checkpoints", "sessions", "skills", "agents", "policies")


@dataclass
class Overview:
    by_kind: dict[str, int]
    by_project: dict[str, int]
    # day (YYYY-MM-DD) → [rated helpful, rated unhelpful]; feedback and outcomes of memories.
    ratings: dict[str, list[int]] = field(default_factory=dict)
    scanned: int = 0
    truncated: bool = False


class RecordBrowser:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def list(self, scope: Scope, kind: str, match: dict[str, Any] | None = None, limit: int = BROWSE_MAX) -> list[Record]:
        if kind not in BROWSABLE:
            raise InvalidInput("kind", f"one of {', '.join(BROWSABLE)}")
        store = self._stores.of(scope)
        try:
            return store.scan(kind, min(limit, BROWSE_MAX), ScopeLevel.org, match or None, order_by=BROWSABLE[kind])
        except NotFound:  # nothing of this kind stored yet
            return []

    def get(self, scope: Scope, kind: str, record_id: str) -> Record:
        if kind not in BROWSABLE:
            raise InvalidInput("kind", f"one of {', '.join(BROWSABLE)}")
        found = self._stores.of(scope).get(kind, [record_id], ScopeLevel.org)
        if not found:
            raise NotFound(kind.rstrip("s"), record_id)
        return found[0]

    def delete(self, scope: Scope, kind: str, record_id: str) -> None:
        if kind not in DELETABLE:
            raise InvalidInput("kind", f"the page deletes only {', '.join(DELETABLE)} itself")
        self.get(scope, kind, record_id)
        self._stores.of(scope).delete(kind, [record_id], ScopeLevel.org)

    def overview(self, scope: Scope) -> Overview:
        store = self._stores.levelled(scope)
        by_kind = {kind: _count(store, kind) for kind in COUNTED}
        rows = self._stores.of(scope).scan("memories", DASHBOARD_SCAN_MAX, ScopeLevel.org, order_by="created_ts")
        overview = Overview(by_kind, dict(Counter(str(r.payload.get("project")) for r in rows)))
        overview.scanned, overview.truncated = len(rows), len(rows) >= DASHBOARD_SCAN_MAX
        overview.ratings = ratings_by_day(rows)
        return overview


def _count(store: ScopedStore, kind: str) -> int:
    try:
        return store.count(kind, ScopeLevel.org)
    except NotFound:  # a kind nobody has stored yet has no collection in some stores
        return 0


def ratings_by_day(rows: list[Record]) -> dict[str, list[int]]:
    """Each memory's rating events (feedback and outcomes) by UTC day: [helpful, unhelpful]."""
    from datetime import UTC, datetime

    days: dict[str, list[int]] = {}
    for row in rows:
        for event in row.payload.get("events", []):
            day = datetime.fromtimestamp(float(event.get("ts", 0)), UTC).strftime("%Y-%m-%d")
            counts = days.setdefault(day, [0, 0])
            counts[0 if event.get("helpful") else 1] += 1
    return dict(sorted(days.items()))
