"""Gives memories stored before keys existed (or under an older key set) their keys.

A store written by an earlier version holds memories with one vector and no key points; search
finds memories only through keys, so the daemon's background worker runs ``step`` until every
memory is keyed, writing the keys of those below ``KEYS_VERSION`` through each memory's own scope
handle. Measured cost: the embedding of two or more texts per memory (about 340 texts/s on 2 cores).

Which memories are behind, the store's range index on ``keys_version`` answers: a keyed store
costs two counts at start and reads no memory. Only a store with memories that have no
``keys_version`` at all (written before it existed) is read whole, once, in creation order: each
memory it keys gets the field, so the next start takes the index's way. Reading every memory at
every start, as before, made every memory's payload pages resident for the daemon's life
(100k memories: 75 MiB; 1M: ~750) and cost a core ~2 s at 100k (BENCHMARKS.md "Session 13").
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from contextd_mcp.ports.scoped_store import AcrossScopes, Stores, scope_of
from contextd_mcp.ports.vector_store import Range, Record
from contextd_mcp.services.memory import COLLECTION, KEYS_VERSION, MemoryService
from contextd_mcp.services.memory_keys import KEYS

log = logging.getLogger(__name__)
PAGE = 256
# What a sweep reads of each memory: whole payloads (the content above all) cost a step at 100k
# memories 41 ms, every second for minutes after each start (BENCHMARKS.md, "Session 12").
_SWEPT = ("created_ts", "keys_version", "tenant", "team", "project")


class MemoryRekey:
    def __init__(
        self, memory: MemoryService, stores: Stores, sweeps: AcrossScopes, page: int = PAGE, below: int = KEYS_VERSION
    ) -> None:
        """``below``: memories whose ``keys_version`` is lower are rekeyed. The daemon's sweep asks
        for ``KEYED`` (memories without keys); ``contextd-mcp compact`` for all (moving keys to
        slot ids, which in a daemon cost as many index builds as 20k keys moved: see ``step``)."""
        self._below = below
        self._memory = memory
        self._stores = stores
        self._sweeps = sweeps
        self._page = page
        self._cursor = float("-inf")
        self._indexed: bool | None = None  # may the index tell which memories are behind? (first step)
        self.done = False
        self.waiting = False

    def step(self) -> int:
        """Keys one page of memories; returns how many it keyed (0 once all are, or while the
        store is settling: ``waiting``)."""
        if self.done:
            return 0
        # Each page writes ~1,300 key points. Written faster than the store indexes them (100k
        # memories: 1,300 a second against an index build's minutes), they piled up unindexed on
        # the daemon's heap: 2.7 GiB after 85k memories (BENCHMARKS.md "Session 16").
        self.waiting = self._sweeps.settling(KEYS)
        if self.waiting:
            return 0
        if self._indexed is None:
            self._indexed = self._all_versioned()
        if self._indexed:
            return self._step_behind()
        return self._step_in_order()

    def _all_versioned(self) -> bool:
        """Does every memory carry ``keys_version``? A memory stored between the two counts makes
        them differ, which only sends this start the slow, still correct way."""
        versioned = self._sweeps.count(COLLECTION, {"keys_version": Range(gte=0)})
        return versioned == self._sweeps.count(COLLECTION)

    def _step_behind(self) -> int:
        """One page of the memories the index finds below ``KEYS_VERSION``: keying them lifts them
        out of the next page's filter."""
        behind = {"keys_version": Range(lte=self._below - 1)}
        page = self._sweeps.scan(COLLECTION, behind, self._page, fields=_SWEPT)
        if len(page) < self._page:
            self.done = True
        return self._key(page)

    def _step_in_order(self) -> int:
        limit = self._page
        while True:
            page = self._sweeps.scan(
                COLLECTION, {"created_ts": Range(gte=self._cursor)}, limit, "created_ts", False, fields=_SWEPT
            )
            last = float(page[-1].payload["created_ts"]) if page else self._cursor
            # A full page of one timestamp (a batch store) would never move the cursor: widen it.
            if len(page) == limit and last == self._cursor:
                limit *= 2
                continue
            break
        # Kept wider: the next batch is likely as big, and each narrower try re-reads it all.
        self._page = limit
        if len(page) < limit:
            self.done = True
        self._cursor = last
        return self._key([r for r in page if int(r.payload.get("keys_version", 0)) < self._below])

    def _key(self, stale: list[Record]) -> int:
        by_scope: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
        for record in stale:
            scope = scope_of(record.payload)
            by_scope[(scope.tenant, scope.team, scope.project)].append(record)
        for records in by_scope.values():
            store = self._stores.of(scope_of(records[0].payload))
            # The whole memory, read again through its own scope: its texts make its keys.
            self._memory.rekey(store, store.get(COLLECTION, [r.id for r in records]))
        if stale:
            log.info("gave %d older memories their keys", len(stale))
        return len(stale)

    def run(self) -> int:
        """Every page now (tests, the CLI); returns how many memories it keyed."""
        total = 0
        while not self.done:
            total += self.step()
            if self.waiting:
                time.sleep(0.5)
        return total
