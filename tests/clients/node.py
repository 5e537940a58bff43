"""Where the real Node clients live (tests/clients/node_modules, installed by scripts/setup-clients.sh).

A machine without node skips these tests, loudly; CI (``CI=true``) must not skip them, so there a
missing client is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CLIENTS = Path(__file__).parent
NODE_MODULES = CLIENTS / "node_modules"
CLAUDE = NODE_MODULES / ".bin" / "claude"


def require(path: Path) -> Path:
    """``path`` (an installed client), or skip — or, in CI, fail — saying how to install it."""
    node = shutil.which("node")
    if node and path.exists():
        return path
    reason = (
        f"real-client test needs {'node (not on PATH)' if not node else path.relative_to(CLIENTS.parents[1])}: "
        "run `bash scripts/setup-clients.sh` (scripts/test.sh does)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI must run the real-client tests: " + reason)
    pytest.skip(reason)
