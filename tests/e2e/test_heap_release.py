"""A daemon gives back the heap its stores leave once they stop (issue 19).

Each memory_store embeds five texts; glibc keeps what their runs free, so a daemon left idle
after a burst of stores held ~+25 MiB of heap for good (100k memories: 147 MiB 35 s after 200
stores, against 123 before them; with the container's periodic release, 127). Trimming after every
store instead cost latency (BENCHMARKS.md, "Session 18"). Real container and model, in a process
of its own (the test process's heap holds everything else the suite did), capped at the daemon's
malloc arenas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from pathlib import Path
import anyio
from contextd_mcp import limits
from contextd_mcp.adapters.malloc_arenas import limit_arenas
limit_arenas(limits.MALLOC_ARENAS)  # as the daemon does, before any thread
limits.HEAP_RELEASE_S = 0.3
from contextd_mcp.container import build
from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths

def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))

words = "retry the upload with backoff when the proxy drops idle connections after ninety seconds".split()
container = build(DataPaths(Path(sys.argv[1])))
scope = Scope(tenant="acme", team="core", project="api")
for i in range(12):
    text = " ".join(words[(i + j) % len(words)] for j in range(120 + 25 * i))
    container.memory.store(scope, StoreMemory(
        title=f"upload {i} fails behind the proxy", description="idle connections are dropped",
        content=text, outcome="success", applies_when=[f"uploading file {i} through the corporate proxy"],
    ))
stored = anon()

async def workers():
    with anyio.move_on_after(1.5):
        async with anyio.create_task_group() as tg:
            for worker in container.workers:
                tg.start_soon(worker)

anyio.run(workers)
print(json.dumps({"stored_kib": stored, "idle_kib": anon()}))
container.close()
"""


def test_the_heap_a_burst_of_stores_leaves_is_given_back_when_they_stop(tmp_path: Path, embedder: FastEmbedEmbedder) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    figures = json.loads(probe.stdout.strip().splitlines()[-1])
    given_back_mib = (figures["stored_kib"] - figures["idle_kib"]) / 1024
    # Measured: 21-150 MiB came back (the runs of long texts free large buffers); without the
    # release, -0.5 MiB.
    assert given_back_mib > 4, f"only {given_back_mib:.1f} MiB given back after the stores stopped"
