"""The ``CONTEXTD_*`` variables read outside ``settings.py``. Standard library only.

The stdio bridge, its reconnecting relay, the Claude Code hooks and the data directory's paths
start in every agent's process and must stay light: they cannot import pydantic, so their few
variables are read here, in one place, instead. Everything else is in ``settings.py``
(tests/test_settings_only.py holds both to it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The parts of a local caller's environment that decide its scope and identity (the daemon's
# own env never does; transports/hello.py sends them), and the toolsets its connection starts with.
SCOPE_ENV = ("CONTEXTD_TENANT", "CONTEXTD_TEAM", "CONTEXTD_PROJECT", "CONTEXTD_AGENT", "CONTEXTD_TOOLSETS")
DATA_DIR = "CONTEXTD_DATA_DIR"
TOOLSETS = "CONTEXTD_TOOLSETS"


def _float(name: str, default: float, floor: float = 0.0) -> float:
    try:
        return max(floor, float(os.environ.get(name, default)))
    except ValueError:
        return default


def data_dir() -> str | None:
    """``CONTEXTD_DATA_DIR``: where the daemon keeps its store (paths.py has the default)."""
    return os.environ.get(DATA_DIR) or None


def scope_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's scope variables that are set (a bridge's hello, an in-process server)."""
    source = os.environ if environ is None else environ
    return {k: source[k] for k in SCOPE_ENV if source.get(k)}


def agent() -> str | None:
    """``CONTEXTD_AGENT``: the agent a local caller acts as, by name, in its own scope."""
    return os.environ.get("CONTEXTD_AGENT") or None


def project_dir() -> Path:
    """The agent's project: ``CONTEXTD_PROJECT_DIR`` when the agent runs outside it (e.g. in $HOME)."""
    return Path(os.environ.get("CONTEXTD_PROJECT_DIR") or os.getcwd())


def start_timeout_s() -> float:
    """How long a bridge waits for the daemon it started (the model load): ``CONTEXTD_START_TIMEOUT``."""
    return _float("CONTEXTD_START_TIMEOUT", 60.0)


def idle_exit_s() -> str:
    """A daemon a bridge started stops after this long with no agent connected."""
    return os.environ.get("CONTEXTD_IDLE_EXIT_SECONDS", "1800")


def reconnect_window_s() -> float:
    """How long a bridge keeps trying to reach a daemon that went away: ``CONTEXTD_RECONNECT_SECONDS``."""
    return _float("CONTEXTD_RECONNECT_SECONDS", 120.0)


def hook_timeout_s() -> float:
    """A hook gives up after this long (``CONTEXTD_HOOK_TIMEOUT``), at least a second."""
    return _float("CONTEXTD_HOOK_TIMEOUT", 30.0, floor=1.0)


def tokens_file() -> str | None:
    """``CONTEXTD_TOKENS_FILE``, for the token commands that run without the daemon's settings."""
    return os.environ.get("CONTEXTD_TOKENS_FILE") or None


def stdio_handoff() -> bool:
    """``CONTEXTD_STDIO_HANDOFF=0``: the bridge relays lines instead of handing its stdio to the daemon."""
    return os.environ.get("CONTEXTD_STDIO_HANDOFF", "1").strip().lower() not in ("0", "false", "no", "off")
