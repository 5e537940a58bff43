"""``contextd-mcp audit tail``: the audit log (JSON lines) as readable lines.

Standard library only. Follows the log across size rotation (the file is replaced by a
new one with a new inode, see adapters/audit_file.py).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

# Shown in this order; anything else a newer daemon writes is appended as key=value.
_KNOWN = ("ts", "outcome", "tool", "tenant", "team", "project", "transport", "duration_ms", "input_bytes",
          "output_bytes", "redactions", "redactions_in", "redactions_out", "session", "connection", "agent", "token")


def format_event(event: dict[str, Any]) -> str:
    ts = event.get("ts")
    when = "?"
    if isinstance(ts, int | float):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
    scope = "/".join(str(event.get(k, "-")) for k in ("tenant", "team", "project"))
    parts = [
        when,
        f"{event.get('outcome', '?'):<22}",
        f"{event.get('tool', '?'):<20}",
        f"{event.get('transport', '-'):<6}",
        scope,
        f"{event.get('duration_ms', 0):.1f}ms",
        f"in={event.get('input_bytes', 0)}B",
        f"out={event.get('output_bytes', 0)}B",
    ]
    redactions = event.get("redactions", 0)
    if redactions:
        parts.append(f"redacted={redactions}")
    for key in ("session", "connection", "agent", "token"):
        if event.get(key):
            parts.append(f"{key}={event[key]}")
    parts += [f"{k}={v}" for k, v in event.items() if k not in _KNOWN]
    return "  ".join(parts)


def format_line(line: str) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return f"(unreadable audit line: {len(line)} bytes)"
    return format_event(event) if isinstance(event, dict) else "(unreadable audit line)"


def tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines, reaching into the newest rotated file when the current one is short."""
    lines: deque[str] = deque(maxlen=count)
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                lines.extend(line.rstrip("\n") for line in handle if line.strip())
        except FileNotFoundError:
            continue
    return list(lines)


def follow(path: Path, poll: float = 0.25) -> Iterator[str]:
    """New lines as they are appended, forever; reopens the file after a rotation."""
    handle: TextIO | None = None
    partial = ""
    while True:
        if handle is None:
            handle = _open_at(path, os.SEEK_END)
            if handle is None:
                time.sleep(poll)
                continue
        chunk = handle.readline()
        if chunk:
            partial += chunk
            if partial.endswith("\n"):
                yield partial.rstrip("\n")
                partial = ""
            continue
        if _rotated(path, handle):
            # Drain what the old file still holds, then start at the top of the new one.
            yield from (line for line in (partial + handle.read()).splitlines() if line.strip())
            partial = ""
            handle.close()
            handle = _open_at(path, os.SEEK_SET)
            continue
        time.sleep(poll)


def _open_at(path: Path, whence: int) -> TextIO | None:
    """``path`` opened at its start or end; None while it does not exist."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        return None
    handle.seek(0, whence)
    return handle


def _rotated(path: Path, handle: TextIO) -> bool:
    """Whether ``path`` is no longer the file ``handle`` reads (rotated away, or gone)."""
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return True
