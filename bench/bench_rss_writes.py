"""Where a daemon's RSS goes under writes (issue 19): RssAnon / RssFile per call, by mapping.

    .venv/bin/python -m bench.bench_rss_writes --data DIR [--phases store:40,search:40,mixed:300,store:40]
        [--baseline-src OTHER_TREE/src] [--json FILE]

A real daemon (`contextd-mcp serve`, indexing off) on a data directory filled by
``bench.bench_scale --keep`` (its first project). After 10 searches and one store (warm-up),
each phase makes its calls through one unix-socket MCP client and reports the daemon's
``/proc/PID/status`` (VmRSS, RssAnon, RssFile) before and after, per call, and the mappings of
``/proc/PID/smaps`` whose Rss changed most (store files by their path under ``store/``,
anonymous memory as ``[anon]`` / ``[heap]``). Phases: ``store:N`` N ``memory_store`` calls one at a
time, ``search:N`` N ``memory_search`` calls, ``mixed:N`` N searches back to back while a second
client stores at ``--write-rate``/s (what ``bench_scale`` measures). ``--baseline-src`` runs the
daemon from another tree's ``src`` (PYTHONPATH), for a before/after on the same store.
The 1-minute load average is printed with each phase: figures on a loaded machine are noisy.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import scale_records
from bench.bench_scale import _pct, _writer, project_name, scope_env
from tests.e2e.daemons import socket_client, start_daemon

FIELDS = ("VmRSS", "RssAnon", "RssFile")


def status_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in FIELDS:
            out[key] = int(value.split()[0]) / 1024
    return out


def rss_by_mapping(pid: int) -> collections.Counter[str]:
    """KiB resident per mapping name (anonymous regions summed as one name)."""
    by: collections.Counter[str] = collections.Counter()
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else "[anon]"
            name = name.split("/store/", 1)[1] if "/store/" in name else name
        elif parts[0] == "Rss:":
            by[name] += int(parts[1])
    return by


async def _call(client: Any, kind: str, serial: int, texts: list[str], rng: random.Random) -> None:
    if kind == "store":
        item = scale_records.lesson(20_000_000 + serial, rng)
        result = await client.call_tool("memory_store", item.request.model_dump(mode="json", exclude_none=True))
    else:
        result = await client.call_tool("memory_search", {"query": texts[serial % len(texts)], "limit": 5})
    if result.is_error:
        raise RuntimeError(str(result.content[0]))


async def _phase(daemon: Any, client: Any, kind: str, n: int, write_rate: float, state: dict[str, Any]) -> dict[str, Any]:
    pid = daemon.process.pid
    s0, m0 = status_mib(pid), rss_by_mapping(pid)
    started = time.perf_counter()
    stores: list[float] = []
    searches: list[float] = []
    if kind == "mixed":
        stop = anyio.Event()
        cwd = daemon.data_dir.parent / "cwd"
        async with socket_client(daemon.socket, cwd, state["env"]) as writer, anyio.create_task_group() as tg:
            tg.start_soon(_writer, writer, write_rate, stop, stores, state["rng"])
            for _ in range(n):
                state["serial"] += 1
                t0 = time.perf_counter()
                await _call(client, "search", state["serial"], state["texts"], state["rng"])
                searches.append((time.perf_counter() - t0) * 1000)
            stop.set()
    else:
        for _ in range(n):
            state["serial"] += 1
            t0 = time.perf_counter()
            await _call(client, kind, state["serial"], state["texts"], state["rng"])
            (searches if kind == "search" else stores).append((time.perf_counter() - t0) * 1000)
    s1, m1 = status_mib(pid), rss_by_mapping(pid)
    writes = len(stores) if kind == "mixed" else n if kind == "store" else 0
    changed = {k: m1.get(k, 0) - m0.get(k, 0) for k in set(m0) | set(m1)}
    top = sorted(changed.items(), key=lambda kv: -abs(kv[1]))[:8]
    return {
        "phase": f"{kind}:{n}", "seconds": round(time.perf_counter() - started, 1), "writes": writes,
        "load_1m": float(Path("/proc/loadavg").read_text().split()[0]),
        "start_mib": {k: round(v, 1) for k, v in s0.items()}, "end_mib": {k: round(v, 1) for k, v in s1.items()},
        "per_write_kib": {k: round((s1[k] - s0[k]) * 1024 / writes, 1) for k in FIELDS} if writes else None,
        "search_p50_p95_ms": [_pct(searches, 0.5), _pct(searches, 0.95)] if searches else None,
        "store_p50_ms": _pct(stores, 0.5) if stores else None,
        "top_mappings_kib": [[k, v] for k, v in top if v],
    }


async def run(data: Path, phases: list[tuple[str, int]], write_rate: float, baseline_src: str | None) -> dict[str, Any]:
    cwd = data.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    env = scope_env(project_name(0))
    extra = {"PYTHONPATH": baseline_src} if baseline_src else {}
    daemon = start_daemon(data, cwd, CONTEXTD_INDEX_AFTER_POINTS="0", **extra)
    state: dict[str, Any] = {"env": env, "texts": scale_records.queries(400), "rng": random.Random(5), "serial": 0}
    results = []
    try:
        async with socket_client(daemon.socket, cwd, env) as client:
            for _ in range(10):
                await _call(client, "search", 0, state["texts"], state["rng"])
            await _call(client, "store", 0, state["texts"], state["rng"])
            for kind, n in phases:
                results.append(await _phase(daemon, client, kind, n, write_rate, state))
                print(json.dumps(results[-1]), flush=True)
    finally:
        daemon.stop()
    return {"data": str(data), "daemon_src": baseline_src or "this tree", "phases": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--phases", default="store:40,search:40,mixed:300,store:40")
    parser.add_argument("--write-rate", type=float, default=20.0)
    parser.add_argument("--baseline-src", help="run the daemon from this src directory (PYTHONPATH)")
    parser.add_argument("--json", type=Path, help="append the run's figures (one JSON object) to this file")
    args = parser.parse_args()
    phases = [(p.split(":")[0], int(p.split(":")[1])) for p in args.phases.split(",")]
    if any(kind not in ("store", "search", "mixed") for kind, _ in phases):
        parser.error("phases are store:N, search:N or mixed:N")
    figures = anyio.run(run, args.data, phases, args.write_rate, args.baseline_src)
    if args.json:
        with args.json.open("a") as out:
            out.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
