"""Ownership by level, for kinds that are shared across a team or org (skills, agents).

A record owned by a level keeps the tenant always, and replaces the parts below its level
with ``ANY`` ("*", which no scope name can be): an org skill is ``(acme, *, *)``, a team
skill ``(acme, core, *)``, a project skill ``(acme, core, api)``. Then what applies to a
caller, and what a wider reach shows, are each one filter of equalities, and the tenant
is in every one of them.
"""

from __future__ import annotations

from typing import Any

from contextd_mcp.models.scope import ANY, Scope, ScopeLevel
from contextd_mcp.models.scope import owner_fields as owner_fields  # re-exported: services name them here
from contextd_mcp.models.scope import visible_where as visible_where

_SPECIFICITY = {ScopeLevel.project: 0, ScopeLevel.team: 1, ScopeLevel.org: 2}


def level_of(payload: dict[str, Any]) -> ScopeLevel:
    return ScopeLevel(payload["level"])


def applies_to(payload: dict[str, Any], scope: Scope) -> bool:
    return (
        payload.get("tenant") == scope.tenant
        and payload.get("team") in (scope.team, ANY)
        and payload.get("project") in (scope.project, ANY)
    )


def specificity(payload: dict[str, Any]) -> int:
    """Lower is closer to the caller: its project's record beats its team's, which beats the org's."""
    return _SPECIFICITY[level_of(payload)]


def split_ref(ref: str) -> tuple[str, ScopeLevel | None]:
    """'review@team' → ('review', team); 'review' → ('review', None). Unknown suffixes stay in the name."""
    name, sep, suffix = ref.rpartition("@")
    if sep and suffix in ScopeLevel.__members__:
        return name, ScopeLevel(suffix)
    return ref, None


def qualified_names(records: list[dict[str, Any]]) -> list[str]:
    """Unique display names: the most specific record keeps the bare name, others get '@level'."""
    best: dict[str, int] = {}
    for p in records:
        key = p["name_key"]
        best[key] = min(best.get(key, 99), specificity(p))
    names = []
    for p in records:
        bare = specificity(p) == best[p["name_key"]]
        names.append(p["name"] if bare else f"{p['name']}@{p['level']}")
    return names
