"""Who is calling: the scope every read and write of a tool call is confined to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

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
