"""The stdio bridge handing its stdio to the daemon, against relaying lines: same daemon, same client.

    python -m bench.stdio_handoff [--runs 2000] [--gap-ms 0]

One daemon of this tree; two real `contextd-mcp stdio` bridges under the real MCP SDK client,
one handing its stdin/stdout to the daemon (the default), one relaying lines
(`CONTEXTD_STDIO_HANDOFF=0`). Each round times, in a new random order: a no-op tool call
(`toolsets`: an in-memory answer of ~1 KB) and `tools/list` (a reply of tens of KB, which the
daemon writes in more than one piece) on each bridge, and `ping`, which this server answers
with a JSON-RPC error (method not found): the smallest round trip through the SDK's dispatch,
no tool, no worker thread. Nothing of the
sandbox is involved, so the rows share one daemon fairly, and the difference between the two
bridges is the relay's two socket hops and wake-ups, measured where they are a large part of
the call rather than a few percent of a `bash` call. The load average before and after is
reported: on 2 shared cores a load above 1 is mostly other work. So is each bridge's own CPU
time over the run, per call (from /proc), which load does not stretch the way it does latency.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from bench.driver import CLI, contextd_env, stdio_client, stop_contextd, summary

BRIDGES = {"handoff": {}, "relay": {"CONTEXTD_STDIO_HANDOFF": "0"}}


async def _measure(work: Path, runs: int, gap_ms: float) -> dict[str, Any]:
    data = work / "data"
    project = work / "project"
    project.mkdir()
    samples: dict[str, list[float]] = {}
    calls: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for name, extra in BRIDGES.items():
            client = await stack.enter_async_context(stdio_client([*CLI, "stdio"], contextd_env(data, **extra), project))
            await client.list_tools()
            calls[f"tools/list ({name})"] = client.list_tools
            calls[f"ping ({name})"] = lambda c=client: _ping(c)
            calls[f"no-op tool ({name})"] = lambda c=client: c.call_tool("toolsets", {})
        for call in calls.values():
            await call()
        bridges = _bridge_pids()
        cpu_before = {name: _cpu_ms(pid) for name, pid in bridges.items()}
        samples = {name: [] for name in calls}
        order = list(calls)
        shuffle = random.Random(13).shuffle
        load = os.getloadavg()[0]
        for _ in range(runs):
            shuffle(order)
            for name in order:
                await anyio.sleep(gap_ms / 1000)
                started = time.perf_counter()
                await calls[name]()
                samples[name].append((time.perf_counter() - started) * 1000)
        cpu = {name: (_cpu_ms(pid) - cpu_before[name]) / (3 * runs) for name, pid in bridges.items()}
    out: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    out["bridge_cpu_ms_per_call"] = {name: round(value, 3) for name, value in cpu.items()}
    out["loadavg_1m_before_after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    out["gap_ms"] = gap_ms
    return out


async def _ping(client: Any) -> None:
    from mcp.shared.exceptions import MCPError

    try:
        await client.send_ping()
    except MCPError:
        pass  # answered, with an error: the round trip is what is timed


def _bridge_pids() -> dict[str, int]:
    """This process's `contextd-mcp stdio` children, by mode (read from their environment)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            if b"stdio" not in (entry / "cmdline").read_bytes():
                continue
            relayed = b"CONTEXTD_STDIO_HANDOFF=0" in (entry / "environ").read_bytes()
        except OSError:
            continue
        found["relay" if relayed else "handoff"] = int(entry.name)
    return found


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-handoff-bench-") as tmp:
        try:
            result = anyio.run(_measure, Path(tmp), args.runs, args.gap_ms)
        finally:
            stop_contextd(Path(tmp) / "data")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
