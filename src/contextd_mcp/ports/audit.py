"""Port: one record per tool call; what happened, never what was said."""

from __future__ import annotations

from typing import Any, Protocol


class AuditLog(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...
