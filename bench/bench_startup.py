"""The daemon's start-up cost (issues 18, 19): CPU and wall of a ``contextd-mcp serve`` start,
to its announce (socket accepting) and to its first answered ``memory_search`` through the real
MCP client on its socket, at a small store (``--records`` lessons stored by a first daemon).

Each start is a fresh interpreter (``python -m contextd_mcp serve``), as a user's restart or a
test's daemon is; CPU is the daemon's own utime+stime read from /proc at the two moments.
``--failures`` also times the two early failures: ``serve --http`` on a taken port and
``import`` of a file that is not an export (both must fail before the store or model load).
``--data DIR``: restarts of a kept data directory instead (e.g. bench_scale's 100k store, with
``--tenant scaleco --project proj-0000``). ``--phases``: each start also taken apart
(bench/start_phases.py): when the interpreter was up, the imports, the model, each collection's
open, the tools, the socket accepting, the first call, its query embedding and engine search,
each as seconds since the spawn (medians over the runs). ``--crashed``: before each start the
collections' uniform records are removed, as a crash leaves them (adapters/uniform_fields.py:
the open asks the engine instead). ``--gc N``: the CPU of the daemon's
imports and of its container's build in fresh interpreters, the collector on against held off
(contextd_mcp/start_gc.py), N runs each, alternated.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_startup --runs 5 --importtime --failures
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_startup --runs 5 --phases --data D --tenant scaleco --project proj-0000
    PYTHONPATH=<other tree>/src ...   # the same bench against another tree's code
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import scale_records
from contextd_mcp.adapters import uniform_fields
from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import CLI, env_for

_TICK = os.sysconf("SC_CLK_TCK")
ENV = {"CONTEXTD_TENANT": "bootco", "CONTEXTD_TEAM": "default", "CONTEXTD_PROJECT": "boot"}


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (its threads included), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _fill(data_dir: Path, cwd: Path, records: int) -> None:
    daemon = start_daemon(data_dir, cwd)
    try:
        async with socket_client(daemon.socket, cwd, ENV) as client:
            rng = __import__("random").Random(3)
            for i in range(records):
                item = scale_records.lesson(i, rng)
                result = await client.call_tool("memory_store", item.request.model_dump(mode="json", exclude_none=True))
                assert not result.is_error, str(result.content[0])
    finally:
        daemon.stop()


async def one_start(data_dir: Path, cwd: Path, phases: Path | None = None) -> dict[str, float]:
    """One start to its first answer; with ``phases`` (a file), run through bench/start_phases.py."""
    env: dict[str, str] = {"CONTEXTD_INDEX_AFTER_POINTS": "0"}  # a restart, not an index build
    if phases is not None:
        phases.unlink(missing_ok=True)
        env["START_PHASES_OUT"] = str(phases)
    spawned = time.time()
    started = time.perf_counter()
    daemon = start_daemon(data_dir, cwd, **env) if phases is None else _start_phased(data_dir, cwd, env)
    ready_wall = time.perf_counter() - started
    ready_cpu = cpu_s(daemon.process.pid)
    try:
        async with socket_client(daemon.socket, cwd, ENV) as client:
            first = await client.call_tool("memory_search", {"query": "how to fix a failing build"})
            answer_wall = time.perf_counter() - started
            answer_cpu = cpu_s(daemon.process.pid)
            assert not first.is_error, str(first.content[0])
            assert first.structured_content["memories"], "the store answered nothing"
    finally:
        daemon.stop()
    out = {"ready_wall_s": ready_wall, "ready_cpu_s": ready_cpu, "first_answer_wall_s": answer_wall, "first_answer_cpu_s": answer_cpu}
    if phases is not None:
        out.update(_phase_times(phases, spawned))
    return out


def _start_phased(data_dir: Path, cwd: Path, env: dict[str, str]) -> Any:
    """start_daemon with the phase-timing wrapper as its command."""
    from tests.e2e import daemons

    wrapped = [sys.executable, "-m", "bench.start_phases"]
    saved = daemons.CLI
    daemons.CLI = wrapped
    try:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p)
        return start_daemon(data_dir, cwd, **env)
    finally:
        daemons.CLI = saved


def _phase_times(path: Path, spawned: float) -> dict[str, float]:
    """Each phase's end (and, for spans, its length) in seconds since the spawn."""
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        name = row["phase"].replace(" ", "_")
        if name in out or f"{name}_at_s" in out:
            continue
        out[f"{name}_at_s"] = row["end"] - spawned
        if row["end"] > row["start"]:
            out[f"{name}_s"] = row["end"] - row["start"]
    return out


def _timed_cli(data_dir: Path, *args: str) -> tuple[float, float, int, str]:
    """Wall and CPU (children's rusage) of one CLI command, its exit code and stderr."""
    before = os.times()
    t0 = time.perf_counter()
    done = subprocess.run([*CLI, *args], env=env_for(data_dir), capture_output=True, text=True, timeout=120, check=False)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, done.returncode, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$", re.MULTILINE)


async def importtime(data_dir: Path, cwd: Path, top: int = 12) -> dict[str, Any]:
    """One more start under ``-X importtime`` (to its first answer): the packages by their own
    import time (summed over their modules) and the slowest modules by cumulative time."""
    daemon = start_daemon(data_dir, cwd, PYTHONPROFILEIMPORTTIME="1")
    try:
        async with socket_client(daemon.socket, cwd, ENV) as client:
            await client.call_tool("memory_search", {"query": "how to fix a failing build"})
    finally:
        daemon.stop()
    packages: dict[str, int] = {}
    cumulative: list[tuple[int, str]] = []
    for self_us, cum_us, _, name in IMPORT_LINE.findall(daemon.output()):
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0) + int(self_us)
        cumulative.append((int(cum_us), name))
    return {
        "import_total_s": round(sum(packages.values()) / 1e6, 2),
        "import_by_package_s": {k: round(v / 1e6, 3) for k, v in sorted(packages.items(), key=lambda kv: -kv[1])[:top]},
        "import_slowest_cumulative_s": {n: round(c / 1e6, 3) for c, n in sorted(cumulative, reverse=True)[:top]},
    }


_GC_PROBE = """
import gc, json, sys, time
from pathlib import Path
if sys.argv[1] == "paused":
    gc.disable()
c0 = time.process_time()
from contextd_mcp import cli, container, daemon  # what run_daemon imports
from contextd_mcp.adapters import fastembed_embedder, qdrant_edge_store
from contextd_mcp.mcp import server
from contextd_mcp.transports import socket_server
from contextd_mcp.paths import DataPaths
c1 = time.process_time()
built = container.build(DataPaths(Path(sys.argv[2])))
built.server()
c2 = time.process_time()
print(json.dumps({"import_cpu_s": c1 - c0, "build_cpu_s": c2 - c1, "collections": sum(s["collections"] for s in gc.get_stats())}))
built.close()
"""


def gc_cpu(data_dir: Path, runs: int) -> dict[str, Any]:
    """CPU of the daemon's imports and of its container's build in fresh interpreters, with the
    collector on and held off (start_gc.py), alternated run by run."""
    seen: dict[str, list[dict[str, float]]] = {"on": [], "paused": []}
    for _ in range(runs):
        for mode in seen:
            env = {**env_for(data_dir), "CONTEXTD_INDEX_AFTER_POINTS": "0"}
            done = subprocess.run([sys.executable, "-c", _GC_PROBE, mode, str(data_dir)], env=env, capture_output=True,
                                  text=True, timeout=300, check=True)
            seen[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {f"gc_{mode}": {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]} for mode, rows in seen.items()}


def failures(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wall, cpu, code, err = _timed_cli(root / "taken", "serve", "--allow-unauthenticated-loopback", "--http", f"127.0.0.1:{port}")
        out["serve_taken_port"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit": code, "stderr": err}
    bad = root / "bad.jsonl"
    bad.write_text("this is not an export\n")
    wall, cpu, code, err = _timed_cli(root / "import", "import", str(bad))
    out["import_bad_file"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit": code, "stderr": err}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--failures", action="store_true")
    parser.add_argument("--importtime", action="store_true", help="one more start under -X importtime")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path, help="restart this kept data directory (no fill)")
    parser.add_argument("--tenant", help="the scope searched (with --data)")
    parser.add_argument("--project")
    parser.add_argument("--phases", action="store_true", help="time each start's phases (bench/start_phases.py)")
    parser.add_argument("--crashed", action="store_true", help="each start without the uniform records a clean close leaves")
    parser.add_argument("--gc", type=int, metavar="N", help="also: import and build CPU, collector on vs held off, N runs each")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.tenant:
        ENV.update({"CONTEXTD_TENANT": args.tenant, "CONTEXTD_PROJECT": args.project or "default"})
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        data_dir, cwd = root / "data", root / "cwd"
        cwd.mkdir()
        if args.data:
            data_dir = args.data
        else:
            anyio.run(_fill, data_dir, cwd, args.records)
        phases = root / "phases.jsonl" if args.phases else None
        runs = []
        for _ in range(args.runs):
            if args.crashed:
                for record in (data_dir / "store").glob(f"*/{uniform_fields.RECORD}"):
                    record.unlink()
            load = os.getloadavg()[0]
            runs.append({**anyio.run(one_start, data_dir, cwd, phases), "load": load})
        keys = sorted({k for r in runs for k in r}, key=lambda k: (k not in runs[0], k))
        result: dict[str, Any] = {
            "load_before": os.getloadavg()[0],
            **{k: round(statistics.median(r[k] for r in runs if k in r), 3) for k in keys},
            "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
        }
        if args.importtime:
            result.update(anyio.run(importtime, data_dir, cwd))
        if args.gc:
            result.update(gc_cpu(data_dir, args.gc))
        if args.failures:
            result.update(failures(root))
        result["load_after"] = os.getloadavg()[0]
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
