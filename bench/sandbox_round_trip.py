"""`bash("true")` round trip through the MCP tool, beside the helper alone, bubblewrap and plain bash.

    python -m bench.sandbox_round_trip [--runs 200] [--baseline-src DIR] [--budget]

`--baseline-src` (or CONTEXTD_BENCH_BASELINE_SRC in the full bench) adds a row for another
checkout's code, e.g. the commit before a change (`git worktree add /tmp/base <commit>`, then
`--baseline-src /tmp/base/src`): its daemon runs from that tree with this venv, interleaved with
the rest, so both see the same load. `--budget` also measures the sandbox's budget here: the
daemon's `sandbox` status (cgroup mode and limits) and how far the host's available memory falls
while one call holds 6 x 800 MB, for this tree and the baseline. `--project git` times a `git init`
checkout instead of an empty directory: an empty directory lacks every protected path, so each
call makes and removes a read-only placeholder for each (the sandbox's worst case); a fresh
repository already has `.git/config`, `hooks/` and `info/`.

Beside each daemon's `bash("true")` row, a no-op tool call on the same daemon and bridge (`toolsets`
with no argument: the tool layer's validation, audit and result shaping around an in-memory
answer) is the MCP floor: tool minus floor is what the sandbox adds, to set beside bwrap minus
plain `true`. The `relay` row is this tree's bash tool through a bridge that relays lines instead
of handing its stdio to the daemon (`CONTEXTD_STDIO_HANDOFF=0`), on a daemon of its own.

The daemons run with their default placeholder linger (5 s, so back-to-back calls hold the same
placeholders again); the helper row uses the same. The cold-helper row of bench_sandbox (a Python
start-up per call, ~100 ms of CPU) is left out: in an interleaved loop its exit overlapped the
next rows. Rows run in a new (seeded) random order each round. `--gap-ms` idles before each timed call (untimed), as an agent does between tool
calls: what a row leaves running in the background (a helper warming its next worker, a process
exiting) is then over before the next row is timed, instead of landing on it. The load
average before and after the run is reported: on 2 cores shared with other work, figures at a
load above 1 are mostly that work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from bench.driver import CLI, contextd_env, stdio_client, stop_contextd, summary

BASELINE_ENV = "CONTEXTD_BENCH_BASELINE_SRC"
HOLD = (
    "for i in 1 2 3 4 5 6; do python3 -c 'import time; b=bytearray(800<<20); "
    "[b.__setitem__(i,1) for i in range(0,len(b),4096)]; time.sleep(3)' & done; wait"
)


def run(
    work_dir: Path,
    quick: bool,
    baseline_src: Path | None = None,
    runs: int | None = None,
    project_kind: str = "empty",
    gap_ms: float = 0.0,
) -> dict[str, Any]:
    try:
        from contextd_mcp.sandbox import SandboxUnavailable, probe

        probe()
    except (ImportError, SandboxUnavailable) as exc:  # a host that cannot sandbox still gets the other figures
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    runs = runs or (30 if quick else 200)
    if baseline_src is None and os.environ.get(BASELINE_ENV):
        baseline_src = Path(os.environ[BASELINE_ENV])
    project = work_dir / "project"
    project.mkdir(parents=True)
    if project_kind == "git":
        subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=30)
    try:
        return anyio.run(_measure, work_dir, project, runs, baseline_src, gap_ms)
    except Exception as exc:  # noqa: BLE001 - one broken row must not sink the whole bench
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        for name in ("data", "data-relay", "data-baseline"):
            stop_contextd(work_dir / name)


def _clients(work_dir: Path, project: Path, baseline_src: Path | None) -> dict[str, tuple[Path, dict[str, str]]]:
    """Row name -> (data dir, environment) of each daemon to time."""
    found = {"mcp bash tool": (work_dir / "data", contextd_env(work_dir / "data"))}
    # Its own daemon (of this tree): two calls a round on one daemon would each find the
    # sandbox's next worker still warming from the other more often than a row with one.
    relay = work_dir / "data-relay"
    found["mcp bash tool (relay)"] = (relay, contextd_env(relay, CONTEXTD_STDIO_HANDOFF="0"))
    if baseline_src is not None:
        data = work_dir / "data-baseline"
        found["mcp bash tool (baseline)"] = (data, contextd_env(data, PYTHONPATH=str(baseline_src)))
    return found


# Row name -> (bridge's row in _clients, extra bridge environment, tool, arguments).
_BASH = ("bash", {"command": "true"})
_NOOP = ("toolsets", {})


def _rows(clients: dict[str, Any]) -> dict[str, tuple[str, dict[str, str], str, dict[str, Any]]]:
    rows: dict[str, tuple[str, dict[str, str], str, dict[str, Any]]] = {}
    for name in clients:
        rows[name] = (name, {}, *_BASH)
        rows[name.replace("bash tool", "no-op tool")] = (name, {}, *_NOOP)
    return rows


async def _measure(work_dir: Path, project: Path, runs: int, baseline_src: Path | None, gap_ms: float) -> dict[str, Any]:
    from bench.bench_sandbox import rows
    from contextd_mcp.settings import SandboxSettings

    state = work_dir / "helper-state"
    state.mkdir()
    table = rows(project, once=False, linger=SandboxSettings().placeholder_linger_s, state_dir=state)
    samples: dict[str, list[float]] = {name: [] for name in table}
    daemons = _clients(work_dir, project, baseline_src)
    async with AsyncExitStack() as stack:
        clients: dict[str, tuple[Any, str, dict[str, Any]]] = {}
        bridges: dict[tuple[str, str], Any] = {}
        for name, (daemon, extra, tool, arguments) in _rows(daemons).items():
            key = (daemon, json.dumps(extra))
            if key not in bridges:
                env = daemons[daemon][1] | extra
                bridges[key] = await stack.enter_async_context(stdio_client([*CLI, "stdio"], env, project))
            client = bridges[key]
            if tool not in {t.name for t in (await client.list_tools()).tools}:
                continue
            await client.call_tool(tool, arguments)  # start the helper once
            clients[name] = (client, tool, arguments)
            samples[name] = []
        for row in table.values():
            await row()
        load_before = os.getloadavg()
        order = [*table, *clients]
        shuffle = random.Random(13).shuffle
        for _ in range(runs):  # interleaved, so background load hits every row alike
            # In a new order each round: what a row leaves running (a daemon's zygote warming
            # its next worker, a process exiting) lands on a different row each time.
            shuffle(order)
            for name in order:
                await anyio.sleep(gap_ms / 1000)
                samples[name].append(await _timed(table.get(name), clients.get(name)))
    out: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    out["bwrap_installed"] = shutil.which("bwrap") is not None
    out["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    out["gap_ms"] = gap_ms
    return out


async def _timed(row: Any, client: tuple[Any, str, dict[str, Any]] | None) -> float:
    started = time.perf_counter()
    if client is None:
        await row()
    else:
        result = await client[0].call_tool(client[1], client[2])
        assert not result.is_error, result.content
    return (time.perf_counter() - started) * 1000


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


async def _budget_figure(work_dir: Path, project: Path, baseline_src: Path | None) -> dict[str, Any]:
    """Per daemon: its sandbox status, and the host's MemAvailable drop under 6 x 800 MB in one call."""
    out: dict[str, Any] = {}
    for name, (data, env) in _clients(work_dir, project, baseline_src).items():
        async with stdio_client([*CLI, "stdio"], env, project) as client:
            await client.call_tool("bash", {"command": "true"})
            status = subprocess.run([*CLI, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
            sandbox = json.loads(status.stdout).get("sandbox") if status.returncode == 0 else None
            start, low, stop = _mem_available(), [0], threading.Event()
            low[0] = start

            def sample() -> None:
                while not stop.wait(0.02):
                    low[0] = min(low[0], _mem_available())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                result = await client.call_tool("bash", {"command": HOLD, "timeout_seconds": 60})
            finally:
                stop.set()
                sampler.join()
            content = result.structured_content or {}
            out[name] = {
                "sandbox_status": sandbox,
                "memavailable_drop_mib_6x800MB_one_call": round((start - low[0]) / 2**20),
                "killed": content.get("killed"),
            }
        stop_contextd(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--budget", action="store_true", help="also measure the cgroup budget (allocates ~5 GB)")
    parser.add_argument("--project", choices=("empty", "git"), default="empty", help="what the timed project is")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="idle time before each timed call, not timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-bash-bench-") as tmp:
        rt = run(Path(tmp) / "rt", False, args.baseline_src, args.runs, args.project, args.gap_ms)
        report: dict[str, Any] = {"project": args.project, "round_trip_ms": rt}
        if args.budget:
            work = Path(tmp) / "budget"
            (work / "project").mkdir(parents=True)
            report["budget"] = anyio.run(_budget_figure, work, work / "project", args.baseline_src)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
