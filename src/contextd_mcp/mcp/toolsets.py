"""Toolsets: which tools a connection sees and may call.

Every connected agent pays for ``tools/list`` before it does anything, so a connection starts
with a small default set; the rest are enabled by ``--toolsets a,b`` (serve / stdio),
``CONTEXTD_TOOLSETS``, the ``X-Contextd-Toolsets`` HTTP header, or at run time with
the ``toolsets`` tool (``enable``). ``all`` enables everything.

The default set, by measurement (BENCHMARKS.md, "Session 4: token economy"): the Claude Code
hooks call ``session_start``, ``session_end`` and ``checkpoint_save``; the server's
instructions and the scripted agent sessions call ``memory_search`` / ``memory_store`` /
``memory_feedback``; ``bash`` is the sandbox an agent reaches for on every task. Everything
else (skills, agents, remediation, policy, folding) is configuration or an occasional workflow,
one ``toolsets`` call away.

A tool outside a connection's toolsets is not listed *and* not callable: a call by name gets an
error naming the toolset to enable. Toolsets are no security boundary (any connection may
enable any toolset); what an identity may do is decided by its scope, read-only flag and agent
access list, exactly as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from threading import Lock

from contextd_mcp import limits
from contextd_mcp.mcp.caller import Caller

# name → the one line the toolsets tool shows (it is what an agent reads to choose).
TOOLSETS: dict[str, str] = {
    "memory": "store, search, get and rate lessons that carry across sessions",
    "sessions": "start and end a working session (injects relevant memories; distils the transcript)",
    "checkpoints": "save where the work stands and resume it later",
    "bash": "run a shell command in the project, sandboxed",
    "skills": "reusable prompt templates: create, list, update (also served as MCP prompts)",
    "agents": "agent configurations: which tools, memories and skills an agent may use",
    "remediation": "error → fix pairs: record a fix, search fixes for an error",
    "policy": "rules that allow, deny or ask before a command or tool runs",
    "folding": "branch off a sub-task with its own token budget and return a summary",
    "diagnostics": "benchmark-only tools (CONTEXTD_BENCH_TOOLS=1)",
}
# The discovery tools: listed on every connection, whatever its toolsets.
DISCOVERY = "toolsets"
DEFAULT: frozenset[str] = frozenset({"memory", "sessions", "checkpoints", "bash"})
ALL = "all"
DEFAULT_NAME = "default"


def parse(text: str | None) -> frozenset[str]:
    """``"memory,policy"`` → the set; ``all`` and ``default`` expand. ValueError names the
    unknown toolset and the valid ones (the caller prefixes the setting it came from)."""
    return _parse(text.strip() if text else DEFAULT_NAME)


@lru_cache(maxsize=64)
def _parse(text: str) -> frozenset[str]:
    if len(text) > limits.TOOLSETS_SPEC_MAX:
        raise ValueError(f"at most {limits.TOOLSETS_SPEC_MAX} characters")
    chosen: set[str] = set()
    for raw in text.split(","):
        name = raw.strip().lower()
        if name == ALL:
            chosen |= set(TOOLSETS)
        elif name == DEFAULT_NAME:
            chosen |= DEFAULT
        elif name in TOOLSETS:
            chosen.add(name)
        elif name:
            raise ValueError(f"unknown toolset {name[:32]!r} (toolsets: {', '.join(TOOLSETS)}, or all)")
    return frozenset(chosen)


class Enabled:
    """The toolsets of each connection: its starting choice plus what it enabled at run time.

    Run-time additions are per connection (a socket / stdio connection, an HTTP session id),
    never global; the table keeps the most recent connections only, so it cannot grow without
    bound (a forgotten connection falls back to its starting choice).
    """

    def __init__(self, default: frozenset[str]) -> None:
        self.default = default
        self._added: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = Lock()

    def of(self, caller: Caller) -> frozenset[str]:
        """Raises ValueError when the caller's own choice names an unknown toolset."""
        base = self.default if caller.toolsets is None else parse(caller.toolsets)
        with self._lock:
            added = self._added.get(caller.connection_id, frozenset()) if caller.connection_id else frozenset()
        # "": a tool registered outside any toolset (a runner built by hand) is never hidden.
        return base | added | {DISCOVERY, ""}

    def add(self, caller: Caller, names: Iterable[str]) -> frozenset[str]:
        """Enables ``names`` for the caller's connection; the toolsets newly enabled."""
        if not caller.connection_id:
            raise LookupError("no session")
        new = frozenset(names) - self.of(caller)
        with self._lock:
            key = caller.connection_id
            self._added[key] = self._added.get(key, frozenset()) | new
            self._added.move_to_end(key)
            while len(self._added) > limits.TOOLSET_CONNECTIONS_MAX:
                self._added.popitem(last=False)
        return new

    def forget(self, connection_id: str) -> None:
        with self._lock:
            self._added.pop(connection_id, None)
