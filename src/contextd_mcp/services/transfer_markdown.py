"""The export for people: one section per kind, memories grouped by project, readable.

Built from the same (re-scrubbed) records as the JSONL export; it is not read back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from contextd_mcp.services.transfer_export import Exported

_TITLES = {
    "memory": "Memories", "remediation": "Remediations", "policy": "Policies", "skill": "Skills",
    "agent": "Agents", "checkpoint": "Checkpoints", "session": "Sessions", "transcript_mark": "Transcript marks",
}


def _when(ts: object) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"


def _quote(text: str) -> str:
    # Markdown in a lesson stays text: each line is quoted, so a "# " in it is no heading.
    return "\n".join("> " + line for line in str(text).splitlines()) or ">"


def render(exported: Exported, created_ts: float) -> Iterator[str]:
    scope = "/".join(v or "*" for v in exported.scope.fields().values())
    yield f"# contextd export of {scope}\n"
    counts = ", ".join(f"{n} {_TITLES[k].lower()}" for k, n in exported.counts().items())
    yield f"Exported {_when(created_ts)}: {counts}. Secrets were scrubbed when stored and again on export.\n"
    for kind, records in groupby(exported.records, key=lambda r: r["kind"]):
        yield f"## {_TITLES[kind]}\n"
        if kind == "memory":
            yield from _memories(list(records))
        else:
            yield from (_other(r) for r in records)


def _memories(records: list[dict[str, Any]]) -> Iterator[str]:
    def owner(r: dict[str, Any]) -> str:
        return f"{r['payload']['team']}/{r['payload']['project']}"

    for project, group in groupby(records, key=owner):
        yield f"### Project {project}\n"
        for record in group:
            yield _memory(record)


def _memory(record: dict[str, Any]) -> str:
    p = record["payload"]
    lines = [
        f"#### {p['title']}",
        "",
        f"- {p['outcome']} · confidence {float(p['confidence']):.2f} · helpful {p.get('helpful_count', 0)}, "
        f"unhelpful {p.get('unhelpful_count', 0)} · used {p.get('uses_succeeded', 0)} ok, {p.get('uses_failed', 0)} failed",
        f"- id `{record['id']}` · {p.get('origin', '?')} · created {_when(p.get('created_ts'))}"
        + (f" · tags: {', '.join(p['tags'])}" if p.get("tags") else ""),
        "",
        _quote(p["content"]),
        "",
    ]
    lines += [f"- applies when: {a}" for a in p.get("applies_when", [])]
    lines += [f"- {k['kind']} query: {k['text']}" for k in record.get("keys", [])]
    for event in p.get("events", []):
        verdict = "helpful" if event.get("helpful") else "not helpful"
        query = f" after “{event['query']}”" if event.get("query") else ""
        lines.append(f"- {_when(event.get('ts'))}: {event.get('kind')} {verdict}{query}")
    return "\n".join(lines) + "\n"


def _other(record: dict[str, Any]) -> str:
    p = record["payload"]
    name = p.get("title") or p.get("name") or p.get("task") or p.get("summary") or record["id"]
    owner = f"{p.get('team')}/{p.get('project')}"
    lines = [f"### {str(name).splitlines()[0][:120]}", "", f"- id `{record['id']}` · {owner} · created {_when(p.get('created_ts'))}"]
    for key in ("description", "summary", "problem", "solution", "content", "rule", "instructions"):
        value = p.get(key) or (record.get("texts") or {}).get(key)
        if isinstance(value, str) and value and value != name:
            lines += ["", f"**{key}**", "", _quote(value)]
    return "\n".join(lines) + "\n"
