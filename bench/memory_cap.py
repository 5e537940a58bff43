"""A daemon's searches under a memory limit (issue 19): how small a cgroup can hold a filled
store before its searches wait on the disk.

    sudo .venv/bin/python -m bench.memory_cap --data DIR --limits 0,330,450,520 [--queries 400]

For each limit (MiB; 0: none), a fresh copy of DIR is dropped from the page cache and a daemon
is started inside a memory cgroup of that limit (v1 ``memory.limit_in_bytes`` or v2
``memory.max``; root only), born there, so every page it touches (its heap and the store's pages
it maps) is charged to it. Then ``bench_scale.measure`` runs as usual: searches through MCP with
writes at 20/s. Reported beside its figures: the cgroup's peak, how often the limit was hit, and
the daemon's major faults (pages read again from disk). Shared libraries already in the page cache
are charged elsewhere, so the daemon's RSS can exceed the limit by their ~70 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import bench_scale
from bench.rss_floor import drop_from_page_cache

_V1 = Path("/sys/fs/cgroup/memory")
_V2 = Path("/sys/fs/cgroup/unified")


def _own(hierarchy: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == hierarchy:
            return path.lstrip("/")
    raise RuntimeError(f"this process is in no {hierarchy or 'v2'} cgroup")


@contextmanager
def memory_cgroup(limit_mib: int) -> Iterator[tuple[Path, dict[str, str]]]:
    """A new memory cgroup beside this process's, limited to ``limit_mib`` (0: not limited);
    yields it and the names of its files (limit, peak, failures, stat)."""
    if (_V1 / "memory.limit_in_bytes").exists():
        group = _V1 / _own("memory") / f"bench-{os.getpid()}"
        names = {"limit": "memory.limit_in_bytes", "peak": "memory.max_usage_in_bytes", "hits": "memory.failcnt"}
    else:
        group = _V2 / _own("") / f"bench-{os.getpid()}"
        names = {"limit": "memory.max", "peak": "memory.peak", "hits": "memory.events"}
    group.mkdir()
    try:
        if limit_mib:
            (group / names["limit"]).write_text(str(limit_mib << 20))
        yield group, names
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        time.sleep(0.5)  # the killed processes leave the group
        group.rmdir()


def _major_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[9])


def capped_run(data: Path, limit_mib: int, queries: int) -> dict[str, Any]:
    drop_from_page_cache(data / "store")
    with memory_cgroup(limit_mib) as (group, names):
        start = bench_scale.start_daemon
        home = group.parent / "cgroup.procs"
        faults: list[int] = []

        def born_inside(*args: Any, **kwargs: Any) -> Any:
            # A fresh interpreter, forked while this process is in the cgroup: the daemon is born
            # there (a process moved in later keeps its earlier pages charged where they were).
            (group / "cgroup.procs").write_text(str(os.getpid()))
            try:
                daemon = start(*args, zygote=False, **kwargs)
            finally:
                home.write_text(str(os.getpid()))
            stop = daemon.stop

            def counted_stop() -> None:
                faults.append(_major_faults(daemon.process.pid))
                stop()

            daemon.stop = counted_stop  # type: ignore[method-assign]
            return daemon

        bench_scale.start_daemon = born_inside
        try:
            out = anyio.run(bench_scale.measure, data, queries, 20.0)
        finally:
            bench_scale.start_daemon = start
        peak = int((group / names["peak"]).read_text().split()[0]) >> 20
        hits = (group / names["hits"]).read_text()
    return {
        "limit_mib": limit_mib, "cgroup_peak_mib": peak, "limit_hits": hits.strip().replace("\n", ", "),
        "major_faults": faults[0] if faults else None, **out,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a filled data directory (copied for each run)")
    parser.add_argument("--limits", default="0,520,450,330", help="MiB, comma-separated; 0: no limit")
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    for limit in (int(x) for x in args.limits.split(",")):
        with tempfile.TemporaryDirectory(prefix="memory-cap-", dir=args.data.parent) as tmp:
            copy = Path(tmp) / "data"
            shutil.copytree(args.data, copy, symlinks=True)
            row = capped_run(copy, limit, args.queries)
        keys = ("limit_mib", "cgroup_peak_mib", "limit_hits", "major_faults", "search_p50_ms", "search_p95_ms",
                "store_p50_ms", "stores_per_s", "rss_mib_after_writes", "rss_mib_peak", "rssanon_mib")
        print(json.dumps({k: row.get(k) for k in keys}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
