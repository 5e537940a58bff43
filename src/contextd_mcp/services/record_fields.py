"""How stored records read back, the same in every service: times as ISO-8601 strings, text
previews cut at a word, and the level a record sits at as seen from the caller's scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contextd_mcp.models.scope import Scope, ScopeLevel


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def preview(text: str, max_chars: int) -> str:
    """``text`` up to ``max_chars``, cut at a word with an ellipsis when longer."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + "…"


def relative_level(owner: dict[str, Any], caller: Scope) -> ScopeLevel:
    """Where a record owned by ``owner`` (its tenant/team/project fields) sits for ``caller``."""
    if owner.get("project") == caller.project and owner.get("team") == caller.team:
        return ScopeLevel.project
    if owner.get("team") == caller.team:
        return ScopeLevel.team
    return ScopeLevel.org
