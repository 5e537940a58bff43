"""Recent memory searches, so that feedback can be attributed to the search that surfaced a memory.

Feedback teaches a memory the query it was (or was not) useful for; the rating call names only
the memory, so the query comes from here: the search ``search_id`` names, else the latest search
by the same origin (connection or session) and scope that returned that memory. Kept in the
daemon's memory only, newest ``SEARCHES_REMEMBERED``, each for ``SEARCH_MEMORY_S``: a rating
after a restart still moves confidence, it just teaches no key.
"""

from __future__ import annotations

import threading
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from contextd_mcp import limits
from contextd_mcp.errors import InvalidInput
from contextd_mcp.models.scope import Scope


@dataclass(frozen=True)
class LoggedSearch:
    search_id: str
    scope: Scope
    origin: str
    query: str
    # The query's vector as float32, what the model gives: an entry is 2.2 KiB, where a list of
    # Python floats made it 12.9 (2,000 searches remembered: 4 MiB of the daemon's heap, not 25).
    packed: array[float]
    memory_ids: tuple[str, ...]
    ts: float

    @property
    def vector(self) -> list[float]:
        return self.packed.tolist()


class SearchLog:
    def __init__(
        self,
        size: int = limits.SEARCHES_REMEMBERED,
        ttl_s: float = limits.SEARCH_MEMORY_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._now = now
        self._searches: OrderedDict[str, LoggedSearch] = OrderedDict()
        # The ratings given after each remembered search (memory id -> helpful), so that a
        # rating can be read beside the others of the same search (services/memory_preferences.py).
        self._ratings: dict[str, dict[str, bool]] = {}
        self._lock = threading.Lock()

    def add(self, scope: Scope, origin: str, query: str, vector: list[float], memory_ids: list[str]) -> str:
        search_id = uuid.uuid4().hex
        entry = LoggedSearch(search_id, scope, origin, query, array("f", vector), tuple(memory_ids), self._now())
        with self._lock:
            self._searches[search_id] = entry
            while len(self._searches) > self._size:
                gone, _ = self._searches.popitem(last=False)
                self._ratings.pop(gone, None)
        return search_id

    def rate(self, search_id: str, memory_id: str, helpful: bool) -> dict[str, bool]:
        """Records a rating given after ``search_id``; returns the earlier ratings of that search
        (the newest rating of a memory counts, at most one per memory the search returned)."""
        with self._lock:
            if search_id not in self._searches:
                return {}
            ratings = self._ratings.setdefault(search_id, {})
            earlier = {m: h for m, h in ratings.items() if m != memory_id}
            ratings[memory_id] = helpful
            return earlier

    def latest(self, scope: Scope, origin: str) -> LoggedSearch | None:
        """The newest live search by ``origin`` in ``scope``."""
        oldest = self._now() - self._ttl_s
        with self._lock:
            for entry in reversed(self._searches.values()):
                if entry.ts < oldest:
                    return None
                if entry.origin == origin and entry.scope == scope:
                    return entry
        return None

    def find(self, scope: Scope, origin: str, memory_id: str, search_id: str | None) -> LoggedSearch | None:
        """The search a rating of ``memory_id`` answers; None when no remembered search fits.

        An explicit ``search_id`` must name a live search of this scope that returned the memory
        (another tenant's search id is as unknown as a made-up one).
        """
        oldest = self._now() - self._ttl_s
        with self._lock:
            if search_id is not None:
                found = self._searches.get(search_id)
                if found is None or found.scope != scope or found.ts < oldest:
                    raise InvalidInput("search_id", "must name a memory_search of this project from the last 6 hours")
                if memory_id not in found.memory_ids:
                    raise InvalidInput("search_id", "that search did not return this memory")
                return found
            if not origin:
                return None
            for entry in reversed(self._searches.values()):
                if entry.ts < oldest:
                    return None
                if entry.origin == origin and entry.scope == scope and memory_id in entry.memory_ids:
                    return entry
        return None
