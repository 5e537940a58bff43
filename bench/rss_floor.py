"""The RSS floor of a daemon (issue 19): what an idle daemon holds on an empty store and on a
filled one, and how the store's mapped pages grow with the searches' working set.

    .venv/bin/python -m bench.rss_floor [--data DIR] [--searches 20,200,1000] [--stores N] [--idle 300] [--cold]

Without ``--data`` the daemon runs on a new, empty data directory. A real daemon
(`contextd-mcp serve`, forked as the other benches do) answers ``memory_search`` through MCP;
after its first answer and after each number of distinct searches, its RSS is split from
``/proc/PID/smaps``: anonymous (heap, arenas, the model's buffers), libraries, and each kind of
store file (segment files with their ids folded, so "vector_storage/..." sums every segment's).
``--stores N``: after the first answer, N new lessons are stored through MCP, 50 ms apart (what a
burst of writes leaves on the heap). ``--idle S``: then the daemon is left alone for S seconds and
sampled every 30 s (what its own background work makes resident, and what it gives back).
``--cold``: the store's files are dropped from the page cache first (as after a reboot). The kernel
maps pages around a fault that are already cached, so a store just written or copied shows
resident far more than its searches read; from a cold cache, what is resident is what was read
(``bench/search_pages.py`` adds ``MADV_RANDOM``, in-process).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import scale_records
from bench.bench_scale import project_name, scope_env, store_lesson
from tests.e2e.daemons import socket_client, start_daemon


def smaps_mib(pid: int, store: Path) -> dict[str, float]:
    """Resident MiB by mapping kind: anon, lib (shared objects), store:<file kind>, other."""
    prefix = str(store.resolve()) + "/"
    by: collections.Counter[str] = collections.Counter()
    path = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:":
            by[_kind(path, prefix)] += int(fields[1])
    return _folded(by)


def _kind(path: str, prefix: str) -> str:
    if not path or path.startswith("["):
        return "anon" if path in ("", "[heap]") else path
    if not path.startswith(prefix):
        return "lib:" + Path(path).name.split(".so")[0] if ".so" in path else "file:" + Path(path).name
    rest = re.sub(r"^\.generations/([^/]+)/[^/]+/", r"\1/", path[len(prefix):])
    collection, _, rest = rest.partition("/")
    if collection not in ("memories", "memory_keys", "memory_mv"):
        return "store:other collections"
    rest = re.sub(r"^segments/[0-9a-f-]+/", "", rest)
    rest = re.sub(r"payload_index/[0-9a-z]+-([a-z_]+)-(map|numeric)/.*", r"payload_index:\1", rest)
    rest = re.sub(r"page_[0-9]+\.dat", "pages", rest)
    return f"{collection}:{rest}"


def drop_from_page_cache(root: Path) -> int:
    """Writes back and drops every file under ``root`` from the page cache; how many files."""
    os.sync()
    dropped = 0
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                dropped += 1
            finally:
                os.close(fd)
    return dropped


def _folded(kib: collections.Counter[str]) -> dict[str, float]:
    small = sum(v for k, v in kib.items() if v < 2048 and k.startswith(("memories", "memory_keys", "memory_mv")))
    libs = sum(v for k, v in kib.items() if k.startswith("lib:"))
    rows = {k: v for k, v in kib.items() if (v >= 2048 or not k.startswith(("memories", "memory_keys", "memory_mv", "lib:")))}
    rows["store:smaller files"] = small
    rows["lib:smaller"] = libs - sum(v for k, v in rows.items() if k.startswith("lib:"))
    rows["libs"] = libs
    rows["total"] = sum(kib.values())
    return {k: round(v / 1024, 1) for k, v in sorted(rows.items(), key=lambda kv: -kv[1]) if v >= 512}


async def _measure(data_dir: Path, searches: list[int], idle: float = 0.0, stores: int = 0) -> list[dict[str, Any]]:
    cwd = data_dir.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    env = scope_env(project_name(0))
    daemon = start_daemon(data_dir, cwd, CONTEXTD_INDEX_AFTER_POINTS="0")
    store = data_dir / "store"
    texts = scale_records.queries(max(searches) + 1, seed=31)
    rows = []
    try:
        async with socket_client(daemon.socket, cwd, env) as client:
            await client.call_tool("memory_search", {"query": texts[0]})
            time.sleep(2)  # the start's background work (warming, sweeps) settles
            rows.append({"searches": 1, **smaps_mib(daemon.process.pid, store)})
            if stores:
                rng = random.Random(time.time_ns())  # new lessons: a duplicate stores nothing
                for serial in range(stores):
                    await store_lesson(client, 60_000_000 + serial, rng)
                    await anyio.sleep(0.05)
                rows.append({"searches": 1, "stores": stores, **smaps_mib(daemon.process.pid, store)})
            started = time.monotonic()
            while time.monotonic() - started < idle:
                await anyio.sleep(min(30.0, idle - (time.monotonic() - started)))
                rows.append({"searches": 1, "idle_s": round(time.monotonic() - started), **smaps_mib(daemon.process.pid, store)})
            done = 1
            for n in searches:
                for text in texts[done:n + 1]:
                    await client.call_tool("memory_search", {"query": text, "limit": 5})
                done = n + 1
                rows.append({"searches": n, **smaps_mib(daemon.process.pid, store)})
    finally:
        daemon.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a filled data directory (default: a new, empty one)")
    parser.add_argument("--searches", default="20,200,1000")
    parser.add_argument("--stores", type=int, default=0, help="new lessons stored after the first answer")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds left alone after the first answer (and the stores)")
    parser.add_argument("--cold", action="store_true", help="drop the store's files from the page cache first")
    args = parser.parse_args()
    counts = [int(n) for n in args.searches.split(",")]
    with tempfile.TemporaryDirectory(prefix="rss-floor-") as tmp:
        data = args.data or Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        if args.cold:
            drop_from_page_cache(data)
        for row in anyio.run(_measure, data, counts, args.idle, args.stores):
            print(json.dumps({"load1": round(os.getloadavg()[0], 2), **row}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
