"""How an imported memory merges into one the store already has (same content id, or a near
duplicate by the distiller's rule). Pure functions: the importer reads, these decide.

The rule, chosen so that importing the same file twice changes nothing:
- the texts (title, description, content, outcome, origin, ...) of the store's copy stay;
  its tags and ``applies_when`` become the union (the store's first, capped as the tool caps them);
- the confidence: the element-wise maximum of the two Beta counts (alpha, beta) and of each
  counter. Both copies usually share their history up to the moment of the export, so adding
  them would count it twice; the maximum keeps the better-evidenced side of each and is a
  no-op on a re-import. Confidence is then alpha / (alpha + beta), as everywhere;
- the event history: the union of both (an event is the same when all its fields are), by
  time, the newest ``MEMORY_EVENTS_MAX`` kept;
- learned and negative keys: the union by text, the newest of each kind kept up to its cap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from contextd_mcp import limits

_COUNTS = ("alpha", "beta", "helpful_count", "unhelpful_count", "uses_succeeded", "uses_failed", "reinforced_count")
_UNIONS = {"tags": limits.TAGS_MAX, "applies_when": limits.APPLIES_WHEN_MAX}


def merge_memory(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """The store's payload ``ours`` with an imported ``theirs`` folded in (owner: ours)."""
    merged = {**{k: v for k, v in theirs.items() if k not in ("tenant", "team", "project")}, **ours}
    for name, cap in _UNIONS.items():
        merged[name] = list(dict.fromkeys([*ours.get(name, []), *theirs.get(name, [])]))[:cap]
    for name in _COUNTS:
        if name in ours or name in theirs:
            merged[name] = max(ours.get(name, 0), theirs.get(name, 0))
    merged["confidence"] = merged["alpha"] / (merged["alpha"] + merged["beta"])
    merged["created_ts"] = min(float(ours["created_ts"]), float(theirs["created_ts"]))
    merged["updated_ts"] = max(float(ours["updated_ts"]), float(theirs["updated_ts"]))
    merged["events"] = merge_events(ours.get("events", []), theirs.get("events", []))
    if not merged["events"] and "events" not in ours:
        del merged["events"]
    return merged


def merge_events(ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for event in [*ours, *theirs]:
        seen.setdefault(json.dumps(event, sort_keys=True), dict(event))
    events = sorted(seen.values(), key=lambda e: float(e.get("ts", 0)))
    return events[-limits.MEMORY_EVENTS_MAX :]


def merge_keys(ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Learned / negative keys ({kind, text, created_ts}) of both, newest of each kind up to its cap."""
    by_text: dict[tuple[str, str], dict[str, Any]] = {}
    for key in [*ours, *theirs]:
        by_text.setdefault((key["kind"], key["text"]), dict(key))
    kept: list[dict[str, Any]] = []
    for kind, cap in (("learned", limits.LEARNED_KEYS_MAX), ("negative", limits.NEGATIVE_KEYS_MAX)):
        same = sorted((k for k in by_text.values() if k["kind"] == kind), key=lambda k: float(k["created_ts"]))
        kept += same[-cap:]
    return kept


def needs_rekey(ours: Mapping[str, Any], merged: Mapping[str, Any]) -> bool:
    """Whether the derived keys change (they carry the tags, and one key per situation)."""
    return any(list(ours.get(name, [])) != list(merged.get(name, [])) for name in _UNIONS)
