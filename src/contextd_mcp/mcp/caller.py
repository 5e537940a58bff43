"""Who is calling: the scope every read and write of a tool call is confined to."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from contextd_mcp.models.scope import Scope


@dataclass(frozen=True)
class Caller:
    scope: Scope
    transport: str  # "socket", "stdio", "http", "sse", "memory"
    connection_id: str = ""
    read_only: bool = False
    agent: str | None = None  # by name: a local identity's CONTEXTD_AGENT, in its own scope
    # By identity: a bearer token's agent, fixed when the token was made; loaded by this id
    # within the caller's tenant, whatever team / project the request names.
    agent_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # The local project directory (repository root) the caller works in; only local
    # transports know one, and only they may run bash there.
    project_dir: str | None = None
    # The toolsets this connection asked for ("memory,policy", "all"; mcp/toolsets.py);
    # None: the daemon's default.
    toolsets: str | None = None


def local_caller(
    transport: str,
    cwd: Path,
    env: Mapping[str, str],
    connection_id: str,
    toolsets: str | None = None,
    extra: dict[str, str] | None = None,
) -> Caller:
    """The one way a local caller (socket, hook, in-process stdio) is made: its scope from the
    directory it works in and its ``CONTEXTD_*`` scope variables (a hello's ``env``, never the
    daemon's own), its agent by name, its project directory (bash runs there). Raises ValueError
    (or OSError) when no scope can be resolved."""
    from contextd_mcp.scope_resolver import project_root, resolve_scope

    return Caller(
        scope=resolve_scope(cwd, env),
        transport=transport,
        connection_id=connection_id,
        agent=env.get("CONTEXTD_AGENT") or None,
        extra=dict(extra or {}),
        project_dir=str(project_root(cwd)),
        toolsets=toolsets,
    )


# Set by a transport for the lifetime of one connection (unix socket, in-process
# stdio); HTTP requests carry their caller on the request instead.
CURRENT_CALLER: ContextVar[Caller | None] = ContextVar("contextd_caller", default=None)


@contextmanager
def acting_as(caller: Caller) -> Iterator[Caller]:
    """``caller`` is the current caller inside the block, and no longer after it."""
    token = CURRENT_CALLER.set(caller)
    try:
        yield caller
    finally:
        CURRENT_CALLER.reset(token)
