"""What the page does, as the caller: MCP tools through the ToolRunner (validation, scrubbing,
guards, audit, as for an agent), and the curation a person alone does through its services,
audited the same way. Audit lines name the page: ``ui.memory_search``, ``ui.memory_update``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from contextd_mcp.errors import ContextdError, Denied, InvalidInput
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.server import ToolRunner
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.audit import AuditLog
from contextd_mcp.transports.auth import HttpAccess

T = TypeVar("T")
AUDIT_PREFIX = "ui."


class ActionError(Exception):
    """A refused or failed action: ``kind: message``, shown on the page as the tool's error is."""


def ui_caller(access: HttpAccess, request: Request, project: str | None) -> Caller:
    """The request's caller (its token's, or the loopback operator), acting on ``project`` when
    the token leaves the project open; Denied without an identity."""
    base = access.caller(request)
    if base is None:
        raise Denied("this request carries no identity")
    scope = base.scope
    pinned = bool(getattr(request.scope.get("user"), "access_token", None)
                  and request.scope["user"].access_token.claims.get("project"))
    if project and not pinned and project != scope.project:
        try:
            scope = Scope(tenant=scope.tenant, team=scope.team, project=project)
        except ValueError:
            raise InvalidInput("project", "1-64 characters of letters, digits, '.', '_' or '-'") from None
    # No connection: the page starts no session and keeps none alive. Every toolset is callable.
    return replace(base, scope=scope, transport="ui", connection_id="", toolsets="all")


class Actions:
    def __init__(self, runner: ToolRunner, audit: AuditLog) -> None:
        self._runner = runner
        self._audit = audit

    async def tool(self, caller: Caller, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self._runner.call(name, arguments, caller, audit_prefix=AUDIT_PREFIX)
        if result.is_error:
            raise ActionError(result.content[0].text)  # type: ignore[union-attr]
        return dict(result.structured_content or {})

    async def curate(
        self, caller: Caller, action: str, work: Callable[[], T], arguments: dict[str, Any], writes: bool = True
    ) -> T:
        """A service call no tool makes (list, view, edit, delete, merge), audited like a tool call;
        one that ``writes`` is refused to a read-only identity, as a writing tool is."""
        started = time.perf_counter()
        event: dict[str, Any] = {
            "tool": AUDIT_PREFIX + action,
            "input_bytes": len(json.dumps(arguments, default=str)),
            **caller.scope.fields(),
            "transport": caller.transport,
        }
        if caller.extra.get("token"):
            event["token"] = caller.extra["token"][:32]
        try:
            if writes and caller.read_only:
                raise Denied(f"{action} writes, and this identity is read-only")
            result = await anyio.to_thread.run_sync(work)
            event["outcome"] = "ok"
            return result
        except ContextdError as exc:
            event["outcome"] = f"error:{exc.kind}"
            raise ActionError(f"{exc.kind}: {exc.message}") from None
        finally:
            event.setdefault("outcome", "error:internal")
            event["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self._audit.record(event)
