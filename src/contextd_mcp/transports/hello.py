"""The first line on the daemon's socket: who connects and what for. Standard library only."""

from __future__ import annotations

import json
import os

PROTOCOL = 1
MAX_HELLO_BYTES = 64 * 1024
# The parts of a bridge's environment that decide its scope (the daemon's own env never does),
# and the toolsets its connection starts with (mcp/toolsets.py).
SCOPE_ENV = ("CONTEXTD_TENANT", "CONTEXTD_TEAM", "CONTEXTD_PROJECT", "CONTEXTD_AGENT", "CONTEXTD_TOOLSETS")


def hello(op: str, **fields: object) -> bytes:
    """``fields`` add to or override the defaults (the hook sends the tool, its arguments and
    the Claude Code session's cwd)."""
    message: dict[str, object] = {
        "contextd": PROTOCOL,
        "op": op,
        # The agent's project: CONTEXTD_PROJECT_DIR when the agent runs outside it (e.g. in $HOME).
        "cwd": os.environ.get("CONTEXTD_PROJECT_DIR") or os.getcwd(),
        "env": {k: os.environ[k] for k in SCOPE_ENV if os.environ.get(k)},
        "pid": os.getpid(),
        **fields,
    }
    return (json.dumps(message) + "\n").encode()
