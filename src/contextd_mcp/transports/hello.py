"""The first line on the daemon's socket: who connects and what for. Standard library only."""

from __future__ import annotations

import json
import os

from contextd_mcp import env

PROTOCOL = 1
MAX_HELLO_BYTES = 64 * 1024
# The parts of a bridge's environment that decide its scope (the daemon's own env never does),
# and the toolsets its connection starts with (mcp/toolsets.py).
SCOPE_ENV = env.SCOPE_ENV


def hello(op: str, **fields: object) -> bytes:
    """``fields`` add to or override the defaults (the hook sends the tool, its arguments and
    the Claude Code session's cwd)."""
    message: dict[str, object] = {
        "contextd": PROTOCOL,
        "op": op,
        # The agent's project: CONTEXTD_PROJECT_DIR when the agent runs outside it (e.g. in $HOME).
        "cwd": str(env.project_dir()),
        "env": env.scope_env(),
        "pid": os.getpid(),
        **fields,
    }
    return (json.dumps(message) + "\n").encode()
