"""Export: every record of a tenant (or of one of its teams or projects), as JSONL or Markdown.

What is read goes through a store handle bound to the tenant (``Stores.of``, at org reach,
narrowed to the team / project asked for), so an export cannot reach another tenant. Texts were
scrubbed when stored; each is scrubbed again on the way out (a rule added since catches what an
older one missed), and the header says so. Records come in a stable order (kind, then owner,
then creation time, then id), so two exports of the same store are the same bytes but for the
header's time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contextd_mcp import limits
from contextd_mcp.errors import NotFound
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.scoped_store import ScopedStore, Stores
from contextd_mcp.ports.scrubber import Scrubber, scrub_all
from contextd_mcp.ports.vector_store import Condition
from contextd_mcp.services import transfer_format as fmt
from contextd_mcp.services.memory_keys import KEYS
from contextd_mcp.services.remediation import TEXTS as REMEDIATION_TEXTS


@dataclass(frozen=True)
class ExportScope:
    """A tenant, optionally narrowed to a team and / or a project."""

    tenant: str
    team: str | None = None
    project: str | None = None

    def fields(self) -> dict[str, str | None]:
        return {"tenant": self.tenant, "team": self.team, "project": self.project}

    def match(self) -> dict[str, str]:
        return {k: v for k, v in (("team", self.team), ("project", self.project)) if v}

    def handle(self, stores: Stores) -> ScopedStore:
        # Any team / project of the tenant: the reach is org, narrowed by ``match``.
        return stores.of(Scope(tenant=self.tenant, team=self.team or "default", project=self.project or "default"))


@dataclass
class Exported:
    """The records of one export, in file order, and how many secrets the re-scrub removed."""

    scope: ExportScope
    kinds: list[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    redactions: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.kinds, 0)
        for record in self.records:
            counts[record["kind"]] += 1
        return counts


class Exporter:
    def __init__(self, stores: Stores, scrubber: Scrubber, version: str, now: Any = time.time) -> None:
        self._stores = stores
        self._scrubber = scrubber
        self._version = version
        self._now = now

    def collect(self, scope: ExportScope, kinds: Sequence[str] = tuple(fmt.KINDS)) -> Exported:
        unknown = [k for k in kinds if k not in fmt.KINDS]
        if unknown:
            raise ValueError(f"--kinds: unknown kind {unknown[0]!r} (one of {', '.join(fmt.KINDS)})")
        handle, match = scope.handle(self._stores), scope.match()
        out = Exported(scope, [k for k in fmt.KINDS if k in kinds])
        for kind in out.kinds:
            try:
                rows = handle.scan(fmt.KINDS[kind], limits.TRANSFER_RECORDS_MAX, ScopeLevel.org, match)
            except NotFound:  # skills and agents are created with their first record
                continue
            extra = self._extras(handle, kind, match)
            for row in sorted(rows, key=_order):
                record: dict[str, Any] = {"kind": kind, "id": row.id, "payload": row.payload}
                if kind == "memory":
                    record["keys"] = extra.get(row.id, [])
                elif kind == "remediation" and row.id in extra:
                    record["texts"] = extra[row.id]
                scrubbed, redactions = scrub_all(record, self._scrubber)
                out.records.append(scrubbed)
                out.redactions += redactions
        return out

    def _extras(self, handle: ScopedStore, kind: str, match: dict[str, str]) -> dict[str, Any]:
        """A memory's learned / negative keys; a remediation's texts (kept in their own collections)."""
        if kind == "memory":
            where: dict[str, Condition] = {**match, "kind": ["learned", "negative"]}
            keys: dict[str, list[dict[str, Any]]] = {}
            for row in handle.scan(KEYS, limits.TRANSFER_RECORDS_MAX, ScopeLevel.org, where):
                p = row.payload
                keys.setdefault(p["memory_id"], []).append({"kind": p["kind"], "text": p["text"], "created_ts": p["created_ts"]})
            return {m: sorted(k, key=lambda x: (x["created_ts"], x["kind"], x["text"])) for m, k in keys.items()}
        if kind == "remediation":
            rows = handle.scan(REMEDIATION_TEXTS, limits.TRANSFER_RECORDS_MAX, ScopeLevel.org, match)
            return {row.id: row.payload for row in rows}
        return {}

    def jsonl(self, exported: Exported) -> Iterator[str]:
        created = datetime.fromtimestamp(self._now(), UTC).isoformat(timespec="seconds")
        yield fmt.header(exported.scope.fields(), exported.kinds, exported.counts(), created, self._version,
                         exported.redactions)
        for record in exported.records:
            yield fmt.dumps(record)


def _order(row: Any) -> tuple[str, str, float, str]:
    p = row.payload
    return (str(p.get("team")), str(p.get("project")), float(p.get("created_ts") or p.get("started_ts") or 0), row.id)
