"""Where a data directory's files live. Standard library only: the stdio bridge imports it."""

from __future__ import annotations

import os
from pathlib import Path

from contextd_mcp import env

APP_NAME = "contextd-mcp"


def default_data_dir() -> Path:
    configured = env.data_dir()
    if configured:
        return Path(configured).expanduser().resolve()
    # platformdirs is tiny, but the bridge only needs the XDG rule, so keep it inline.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(base) / APP_NAME).resolve()


def default_cache_dir() -> Path:
    """Per-user cache for derived files (the int8-kernel model): shared by every data directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base) / APP_NAME).resolve()


class DataPaths:
    """The files of one data directory; the daemon owns them all."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def socket(self) -> Path:
        return self.root / "contextd.sock"

    @property
    def daemon_lock(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def start_lock(self) -> Path:
        return self.root / "start.lock"

    @property
    def daemon_info(self) -> Path:
        return self.root / "daemon.json"

    @property
    def log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def audit(self) -> Path:
        return self.root / "audit.log"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The socket and the store are the user's memories: owner only.
        os.chmod(self.root, 0o700)
