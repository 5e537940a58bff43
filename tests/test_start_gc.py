"""The collector held off during a daemon's start (contextd_mcp/start_gc.py), in a fresh
interpreter each: what it freezes and turns back on is the whole process's."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from contextd_mcp import start_gc
{before}
start_gc.pause()
paused = gc.isenabled()
junk = [[] for _ in range(5000)]
for item in junk:
    item.append(item)  # cycles: garbage only the collector can free
del junk
start_gc.settle()
print(json.dumps({{"paused_enabled": paused, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "found": gc.collect()}}))
"""


def _probe(before: str = "") -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)], capture_output=True, text=True,
                         timeout=60, check=True)
    return dict(json.loads(out.stdout))


def test_pause_holds_the_collector_off_and_settle_freezes_the_start_then_turns_it_on() -> None:
    seen = _probe()
    assert seen["paused_enabled"] is False and seen["enabled"] is True
    # The start's objects, its uncollected cycles among them, are frozen: later collections skip them.
    assert isinstance(seen["frozen"], int) and seen["frozen"] >= 5000
    assert seen["found"] == 0


def test_settle_leaves_a_collector_it_did_not_pause_alone() -> None:
    seen = _probe("gc.disable()")  # off by the process's own choice: stays off, nothing frozen
    assert seen["paused_enabled"] is False and seen["enabled"] is False and seen["frozen"] == 0
    assert isinstance(seen["found"], int) and seen["found"] >= 5000  # the cycles were left to collect
