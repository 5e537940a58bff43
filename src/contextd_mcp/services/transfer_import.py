"""Import: restore an export into an empty store (exactly), or merge it into one in use.

Every line is validated first (services/transfer_format.py); a bad one is reported by its line
number and skipped, or ends the import (``on_error="abort"``; what came before stays, each
record being written whole). Writes go through store handles bound to the target tenant (the
file's, or the one asked for): no line can write into another tenant, whatever its fields say.
Texts are scrubbed again on the way in.

Memories: the id is the memory service's content id in the target scope (the exported id
whenever the scope and texts are unchanged), so a memory the store already has is merged, not
doubled; so is a near duplicate by the distiller's rule (same outcome, cosine >= 0.88), looked
for only when the project already holds memories. How they merge: services/transfer_merge.py.
Vectors are recomputed from the texts with this daemon's model.

Other kinds keep their id when no record anywhere has it; an id taken in another scope gets a
new one derived from it (so that a second import finds it again). A record the store already
has is replaced only by a newer one (``updated_ts``, else ``created_ts``).

A second import of the same file finds everything in place: "0 added, 0 changed". An import
that stops half-way is resumed by running it again (each memory with its keys is one step).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from contextd_mcp import limits
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.scope import ANY, Scope, ScopeLevel
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import ScopedStore, Stores
from contextd_mcp.ports.scrubber import Scrubber, scrub_all
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services import transfer_format as fmt
from contextd_mcp.services import transfer_vectors as vectors
from contextd_mcp.services.content_ids import content_id, digest
from contextd_mcp.services.distill import NEAR_DUPLICATE
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import MemoryService
from contextd_mcp.services.transfer_memories import MemoryWriter

# Which ids a collection holds in any scope: the composition root's one cross-scope read, so
# that a kept id never replaces another tenant's record.
TakenIds = Callable[[str, list[str]], set[str]]
_DERIVED = uuid.UUID("5d0a7c52-1f4e-4a8b-9c3d-2e6f8b1a4c07")


@dataclass(frozen=True)
class ImportOptions:
    tenant: str | None = None  # into this tenant (default: the file's)
    into_project: str | None = None  # every project-owned record goes to this project
    dry_run: bool = False
    on_error: str = "skip"  # or "abort"


@dataclass
class ImportReport:
    dry_run: bool = False
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    near_duplicates: int = 0
    redactions: int = 0
    errors: list[str] = field(default_factory=list)
    aborted: bool = False
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    # Memories this import added, per scope. Near duplicates are looked for among what the
    # store held before it only: two memories of one file were distinct where they came from.
    added_ids: dict[Scope, set[str]] = field(default_factory=dict, repr=False)

    def count(self, kind: str, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        per = self.by_kind.setdefault(kind, {"added": 0, "changed": 0, "unchanged": 0})
        per[what] += 1

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        text = f"{self.added} {verb}added, {self.changed} {verb}changed, {self.unchanged} unchanged"
        text += f", {len(self.errors)} bad line{'s' if len(self.errors) != 1 else ''}"
        if self.near_duplicates:
            text += f" ({self.near_duplicates} merged into near duplicates)"
        if self.redactions:
            text += f"; {self.redactions} secret(s) scrubbed on the way in"
        return text + ("; aborted at the first bad line" if self.aborted else "")


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, none read whole past the line limit (the rest of such a line is skipped)."""
    number = 0
    while True:
        line = stream.readline(limits.TRANSFER_LINE_MAX_BYTES + 1)
        if not line:
            return
        number += 1
        if number > limits.TRANSFER_RECORDS_MAX:
            raise fmt.BadLine(f"line {number}: over the {limits.TRANSFER_RECORDS_MAX}-line limit of a file")
        if len(line) > limits.TRANSFER_LINE_MAX_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
        yield number, line.rstrip(b"\n")


class Importer:
    def __init__(
        self, stores: Stores, embedder: Embedder, scrubber: Scrubber, memory: MemoryService, taken: TakenIds
    ) -> None:
        self._stores = stores
        self._embedder = embedder
        self._scrubber = scrubber
        self._memory = memory
        self._taken = taken
        self._writer = MemoryWriter(embedder)

    def run(self, lines: Iterable[tuple[int, bytes]], options: ImportOptions) -> ImportReport:
        report = ImportReport(dry_run=options.dry_run)
        numbered = iter(lines)
        first = next(numbered, None)
        if first is None:
            raise fmt.BadLine("line 1: the file is empty (no header)")
        head = fmt.parse_header(first[1])
        tenant = str(head.scope["tenant"])
        batch: list[fmt.Line] = []
        for number, raw in numbered:
            if not raw.strip():
                continue
            try:
                line = fmt.parse_line(number, raw, tenant)
            except fmt.BadLine as exc:
                report.errors.append(str(exc))
                if options.on_error == "abort":
                    report.aborted = True
                    break
                continue
            if line.kind == "memory":
                batch.append(line)
                if len(batch) >= limits.TRANSFER_BATCH:
                    self._memories(batch, options, report)
                    batch = []
            else:
                self._other(line, options, report)
        self._memories(batch, options, report)
        return report

    # -- the shared steps ----------------------------------------------------------------------

    def _scrubbed(self, value: Any, report: ImportReport) -> Any:
        scrubbed, redactions = scrub_all(value, self._scrubber)
        report.redactions += redactions
        return scrubbed

    @staticmethod
    def _owner(payload: dict[str, Any], options: ImportOptions, tenant: str) -> dict[str, str]:
        project = payload["project"]
        if options.into_project and project != ANY:
            project = options.into_project
        return {"tenant": tenant, "team": payload["team"], "project": project}

    @staticmethod
    def _handle_scope(owner: dict[str, str]) -> Scope:
        # A level-owned record (team or project ANY) is written through a handle of its tenant.
        return Scope(
            tenant=owner["tenant"],
            team=owner["team"] if owner["team"] != ANY else "default",
            project=owner["project"] if owner["project"] != ANY else "default",
        )

    # -- memories --------------------------------------------------------------------------------

    def _memories(self, batch: list[fmt.Line], options: ImportOptions, report: ImportReport) -> None:
        by_scope: dict[Scope, list[tuple[fmt.Line, dict[str, Any], list[dict[str, Any]]]]] = {}
        for line in batch:
            payload = self._scrubbed(line.payload, report)
            owner = self._owner(payload, options, options.tenant or payload["tenant"])
            payload.update(owner)
            payload["content_hash"] = digest(payload["title"], payload["content"])
            keys = self._scrubbed(line.keys, report)
            by_scope.setdefault(Scope(**owner), []).append((line, payload, keys))
        for scope, items in by_scope.items():
            self._memories_of(scope, items, options, report)

    def _memories_of(
        self, scope: Scope, items: list[tuple[fmt.Line, dict[str, Any], list[dict[str, Any]]]],
        options: ImportOptions, report: ImportReport,
    ) -> None:
        store = self._stores.of(scope)
        ids = [content_id("memory", scope, p["content_hash"]) for _, p, _ in items]
        existing = {r.id: r for r in store.get(MEMORIES, ids)}
        lacking = [(i, p) for i, (_, p, _) in zip(ids, items, strict=True) if i not in existing]
        near = self._near_duplicates(scope, store, lacking, report.added_ids.get(scope, set()))
        fresh: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        have = self._writer.learned_of(store, sorted({r.id for r in [*existing.values(), *near.values()]}))
        current: dict[str, Record] = {}  # targets as this batch's merges left them
        for ident, (_, payload, keys) in zip(ids, items, strict=True):
            target = existing.get(ident) or near.get(ident)
            if target is None:
                if ident not in {f[0] for f in fresh}:
                    fresh.append((ident, payload, keys))
                    report.count("memory", "added")
                else:
                    report.count("memory", "unchanged")
                continue
            report.near_duplicates += ident in near
            target = current.get(target.id, target)
            what = self._writer.merge(store, target, payload, keys, have.get(target.id, []), options.dry_run)
            report.count("memory", what)
            if what == "changed" and not options.dry_run:  # another line of this batch may merge into it too
                current[target.id] = store.get(MEMORIES, [target.id])[0]
                have[target.id] = self._writer.learned_of(store, [target.id]).get(target.id, [])
        if fresh and not options.dry_run:
            self._writer.add(store, fresh)
        report.added_ids.setdefault(scope, set()).update(ident for ident, _, _ in fresh)

    def _near_duplicates(
        self, scope: Scope, store: ScopedStore, items: list[tuple[str, dict[str, Any]]], added: set[str]
    ) -> dict[str, Record]:
        """For memories the store lacks by id: a near duplicate it held before (distiller's rule)."""
        if not items or store.count(MEMORIES) <= len(added):  # nothing but this import's own
            return {}
        wanted = [(p["title"], p["description"], p["content"], Outcome(p["outcome"])) for _, p in items]
        hits = self._memory.nearest(scope, wanted)
        close = {
            ident: hit.id for (ident, _), hit in zip(items, hits, strict=True)
            if hit and hit.score >= NEAR_DUPLICATE and hit.id not in added
        }
        found = {r.id: r for r in store.get(MEMORIES, list(set(close.values())))}
        return {ident: found[target] for ident, target in close.items() if target in found}

    # -- the other kinds -------------------------------------------------------------------------

    def _other(self, line: fmt.Line, options: ImportOptions, report: ImportReport) -> None:
        collection = fmt.KINDS[line.kind]
        payload = self._scrubbed(line.payload, report)
        owner = self._owner(payload, options, options.tenant or payload["tenant"])
        payload.update(owner)
        texts = self._scrubbed(line.texts, report) if line.texts is not None else None
        store = self._stores.of(self._handle_scope(owner))
        ident = self._id_for(store, collection, line.id, owner)
        found = store.get(collection, [ident], ScopeLevel.org)
        if found and (found[0].payload == payload or _newest(found[0].payload) >= _newest(payload)):
            report.count(line.kind, "unchanged")
            return
        report.count(line.kind, "changed" if found else "added")
        if options.dry_run:
            return
        if texts is not None:
            store.upsert(vectors.REMEDIATION_TEXTS, [Record(ident, {**texts, **owner})], ScopeLevel.org)
        text = vectors.embedded_text(line.kind, payload, texts)
        vector = self._embedder.embed_documents([text])[0] if text is not None else None
        sparse = vectors.sparse_of(line.kind, payload, texts)
        store.upsert(collection, [Record(ident, payload, vector, sparse)], ScopeLevel.org)

    def _id_for(self, store: ScopedStore, collection: str, ident: str, owner: dict[str, str]) -> str:
        """The exported id when free or already this scope's; else one derived from it."""
        if not self._taken(collection, [ident]) or store.get(collection, [ident], ScopeLevel.org):
            return ident
        return str(uuid.uuid5(_DERIVED, "\x1f".join((collection, *owner.values(), ident))))


def _newest(payload: dict[str, Any]) -> float:
    return float(payload.get("updated_ts") or payload.get("created_ts") or 0)
