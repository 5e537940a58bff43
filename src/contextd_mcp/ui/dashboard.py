"""The dashboard's figures that are no service's: the audit log's counts, the store's size."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections import deque
from pathlib import Path

AUDIT_LINES_MAX = 50_000  # the newest audit lines the dashboard counts (the current file and the last rotated one)


def audit_counts(path: Path, tenant: str) -> Counter[tuple[str, str]]:
    """(tool, outcome) → calls, of ``tenant`` only, over the newest ``AUDIT_LINES_MAX`` lines."""
    lines: deque[str] = deque(maxlen=AUDIT_LINES_MAX)
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                lines.extend(handle)
        except OSError:
            continue
    counts: Counter[tuple[str, str]] = Counter()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("tenant") == tenant:
            counts[(str(event.get("tool", "?")), str(event.get("outcome", "?")))] += 1
    return counts


def disk_bytes(root: Path) -> int:
    """Bytes on disk of the files under ``root`` (the whole data directory: store, queue, audit);
    allocated blocks, not sizes: the store's files are sparse (their size overstates it ~100x)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                stat = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(folder, name)):
                total += stat.st_blocks * 512
    return total
