"""AuditLog as JSON lines in a file, appended, flushed per record, rotated by size."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class JsonlAuditLog:
    def __init__(self, path: Path, max_bytes: int = 10 << 20, keep: int = 3) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._lock = threading.Lock()
        self._file = self._open()

    def _open(self) -> Any:
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def record(self, event: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **event}, separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._file.tell() >= self._max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self._keep - 1, 0, -1):
            older = self._path.with_name(f"{self._path.name}.{index}")
            if older.exists():
                older.replace(self._path.with_name(f"{self._path.name}.{index + 1}"))
        self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        self._file = self._open()

    def close(self) -> None:
        with self._lock:
            self._file.close()
