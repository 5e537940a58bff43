"""The data directory owner's commands (export, import, memories): run by whoever holds the store.

The running daemon runs them for the CLI over its owner-only socket (op ``admin``); with no
daemon, the CLI takes the data directory's lock itself and runs them in-process. Either way the
same functions, the same services and the same audit log; the lock is never broken.

A request is ``{"command": ..., ...arguments}``; the answer is lines of text: the export's
lines, or one JSON object. An error is raised as ``AdminError`` (its message names the flag).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextd_mcp import __version__
from contextd_mcp.errors import AdminError

if TYPE_CHECKING:
    from contextd_mcp.container import Container


class Admin:
    def __init__(self, container: Container) -> None:
        from contextd_mcp.ports.scoped_store import Stores
        from contextd_mcp.services.curation import Curation
        from contextd_mcp.services.transfer_export import Exporter
        from contextd_mcp.services.transfer_import import Importer

        raw = container.store
        stores = Stores(raw)
        self._container = container
        self._exporter = Exporter(stores, container.scrubber, __version__)
        # The importer's one cross-scope read: whether an id is taken anywhere (never the record).
        self._importer = Importer(
            stores, container.embedder, container.scrubber, container.memory,
            lambda collection, ids: {r.id for r in raw.get(collection, ids, {})},
        )
        self._curation = Curation(stores, container.memory)
        # Skills and agents create their collection with their first record; an import may bring one.
        self._lazy = [s._records for s in (container.skills, container.agents) if s is not None]

    def run(self, request: dict[str, Any]) -> list[str]:
        command = str(request.get("command"))
        started = time.monotonic()
        outcome, detail = "ok", {}
        try:
            lines = self._dispatch(command, request)
            if command == "import":
                detail = {"report": lines[-1][:500]}
            return lines
        except Exception as exc:
            outcome, detail = "error", {"error": type(exc).__name__}
            raise
        finally:
            self._container.audit.record({
                "event": "admin", "command": command, "outcome": outcome, "transport": "cli",
                "ms": round((time.monotonic() - started) * 1000, 1), **detail,
            })

    def _dispatch(self, command: str, request: dict[str, Any]) -> list[str]:
        handlers = {
            "export": self._export,
            "import": self._import,
            "memories.list": self._list,
            "memories.search": self._search,
            "memories.show": self._show,
            "memories.rm": self._rm,
        }
        if command not in handlers:
            raise AdminError(f"unknown command {command!r}")
        return list(handlers[command](request))

    def _export(self, request: dict[str, Any]) -> Iterator[str]:
        from contextd_mcp.services.transfer_export import ExportScope
        from contextd_mcp.services.transfer_format import KINDS
        from contextd_mcp.services.transfer_markdown import render

        scope = ExportScope(request["tenant"], request.get("team"), request.get("project"))
        try:
            exported = self._exporter.collect(scope, request.get("kinds") or list(KINDS))
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        if request.get("format") == "markdown":
            return render(exported, time.time())
        return self._exporter.jsonl(exported)

    def _import(self, request: dict[str, Any]) -> Iterator[str]:
        import json

        from contextd_mcp.services.transfer_format import BadLine
        from contextd_mcp.services.transfer_import import ImportOptions, read_lines

        options = ImportOptions(
            tenant=request.get("tenant"), into_project=request.get("into_project"),
            dry_run=bool(request.get("dry_run")), on_error=str(request.get("on_error") or "skip"),
        )
        for records in self._lazy:
            records.collection()
        try:
            with Path(request["path"]).open("rb") as stream:
                report = self._importer.run(read_lines(stream), options)
        except OSError as exc:
            raise AdminError(f"{request['path']}: {exc.strerror}") from None
        except BadLine as exc:
            raise AdminError(str(exc)) from None
        self._container.store.flush()
        body = {"summary": report.summary(), "added": report.added, "changed": report.changed,
                "unchanged": report.unchanged, "near_duplicates": report.near_duplicates,
                "redactions": report.redactions, "errors": report.errors[:100], "error_count": len(report.errors),
                "aborted": report.aborted, "dry_run": report.dry_run, "by_kind": report.by_kind}
        yield json.dumps(body)

    def _scope(self, request: dict[str, Any]) -> Any:
        from pydantic import ValidationError

        from contextd_mcp.models.scope import Scope

        try:
            return Scope(tenant=request["tenant"], team=request.get("team") or "default", project=request["project"])
        except ValidationError as exc:
            raise AdminError(f"--tenant/--team/--project: {exc.errors()[0]['msg']}") from None

    def _list(self, request: dict[str, Any]) -> Iterator[str]:
        import json

        yield json.dumps(self._curation.newest(self._scope(request), int(request.get("limit") or 50)))

    def _search(self, request: dict[str, Any]) -> Iterator[str]:
        import json

        from pydantic import ValidationError

        from contextd_mcp.models.requests import SearchMemories

        try:
            query = SearchMemories(query=request.get("query") or "", limit=int(request.get("limit") or 5))
        except ValidationError as exc:
            raise AdminError(f"query: {exc.errors()[0]['msg']}") from None
        hits = self._container.memory.search(self._scope(request), query)
        yield json.dumps([h.model_dump(mode="json") for h in hits])

    def _show(self, request: dict[str, Any]) -> Iterator[str]:
        import json

        from contextd_mcp.errors import NotFound

        try:
            yield json.dumps(self._curation.show(self._scope(request), str(request.get("id"))))
        except NotFound as exc:
            raise AdminError(str(exc)) from None

    def _rm(self, request: dict[str, Any]) -> Iterator[str]:
        import json

        from contextd_mcp.errors import NotFound

        try:
            yield json.dumps({"deleted": self._curation.remove(self._scope(request), list(request.get("ids") or []))})
        except NotFound as exc:
            raise AdminError(str(exc)) from None
