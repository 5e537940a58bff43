"""Load and crash figures for the daemon, through real MCP clients, loopback only.

    .venv/bin/python bench/bench_load.py [--http 8] [--socket 8] [--seconds 30]
    .venv/bin/python bench/bench_load.py --kill9 5 [--writers 4]

Load: one real daemon (`contextd-mcp serve --http 127.0.0.1:PORT`, bearer token), N
Streamable HTTP clients (with the token) and M clients on its unix socket (the bridge
protocol, no bridge process), all in one scope, each looping a mixed workload (45 %
memory_store, 40 % memory_search, 15 % memory_feedback on one of its own acknowledged
writes) for a fixed time. Afterwards every acknowledged store is read back with
memory_get: a write that was acknowledged and is not found is a lost write.

Kill -9: W socket writers store memories as fast as they are acknowledged; the daemon is
SIGKILLed mid-stream, restarted, and every acknowledged id is read back. Repeated.

The clients run in this process, on the same cores as the daemon: latencies include
their own JSON and pydantic work.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.e2e.daemons import Daemon, create_token, http_client, socket_client, start_daemon
from tests.helpers import free_port

TENANT, PROJECT = "loadco", "loadtest"
SCOPE_ENV = {"CONTEXTD_TENANT": TENANT, "CONTEXTD_TEAM": "default", "CONTEXTD_PROJECT": PROJECT}
WORDS = (
    "cache retry timeout index deploy rollback schema migration lock queue worker token header proxy "
    "socket thread pool memory leak flaky test fixture docker image tag pin build wheel compile"
).split()


@dataclass
class LoadReport:
    http_clients: int
    socket_clients: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    per_client: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def percentile(self, q: float, op: str | None = None) -> float:
        values = sorted(self.latencies[op] if op else [x for v in self.latencies.values() for x in v])
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]

    def summary(self) -> str:
        lines = [
            f"clients: {self.http_clients} HTTP + {self.socket_clients} socket, {self.seconds:.0f} s",
            f"calls: {self.calls} ({self.calls / self.seconds:.1f}/s), errors: {len(self.errors)}, "
            f"acknowledged writes: {len(self.acknowledged)}, lost writes: {len(self.lost)}",
            f"all calls: p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms",
        ]
        for op in sorted(self.latencies):
            lines.append(
                f"  {op:<16} n={len(self.latencies[op]):<6} p50 {self.percentile(0.5, op):7.1f} ms"
                f"  p99 {self.percentile(0.99, op):7.1f} ms"
            )
        lines += [f"  error: {e}" for e in self.errors[:10]]
        return "\n".join(lines)


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _client_loop(name: str, client: Any, deadline: float, report: LoadReport, seed: int) -> None:
    rng = random.Random(seed)
    mine: list[str] = []
    serial = 0
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.45 or not mine:
            serial += 1
            op, args = "memory_store", {
                "title": f"{name} lesson {serial}: {_text(rng, 4)}",
                "content": f"Client {name} write {serial}. {_text(rng, 18)}.",
                "tags": [name],
            }
        elif roll < 0.85:
            op, args = "memory_search", {"query": _text(rng, 5), "limit": 5}
        else:
            op, args = "memory_feedback", {"memory_id": rng.choice(mine), "helpful": rng.random() < 0.7}
        started = time.perf_counter()
        try:
            result = await client.call_tool(op, args)
        except Exception as exc:  # a transport failure is an error of the run, not of the bench
            report.errors.append(f"{name} {op}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        report.latencies[op].append((time.perf_counter() - started) * 1000)
        report.per_client[name] += 1
        if result.is_error:
            report.errors.append(f"{name} {op}: {result.content[0].text[:160]}")
            continue
        if op == "memory_store":
            mid = result.structured_content["id"]
            mine.append(mid)
            report.acknowledged.append(mid)


async def run_load(root: Path, http_clients: int, socket_clients: int, seconds: float) -> LoadReport:
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    token = create_token(data_dir, "--tenant", TENANT, "--project", PROJECT, "--name", "load")
    daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}")
    report = LoadReport(http_clients, socket_clients, seconds)
    try:
        # Warm the model and the collection before the clock starts.
        async with socket_client(daemon.socket, cwd, SCOPE_ENV) as warm:
            await warm.call_tool("memory_search", {"query": "warm up"})
        deadline = time.monotonic() + seconds

        async def over_http(i: int) -> None:
            async with http_client(daemon.base, token) as client:  # type: ignore[arg-type]
                await _client_loop(f"h{i}", client, deadline, report, 1000 + i)

        async def over_socket(i: int) -> None:
            async with socket_client(daemon.socket, cwd, SCOPE_ENV) as client:
                await _client_loop(f"s{i}", client, deadline, report, 2000 + i)

        async with anyio.create_task_group() as tg:
            for i in range(http_clients):
                tg.start_soon(over_http, i)
            for i in range(socket_clients):
                tg.start_soon(over_socket, i)
        report.lost = await _missing(daemon, cwd, report.acknowledged)
    finally:
        daemon.stop()
    return report


async def _missing(daemon: Daemon, cwd: Path, ids: list[str]) -> list[str]:
    missing = []
    async with socket_client(daemon.socket, cwd, SCOPE_ENV) as client:
        for mid in ids:
            result = await client.call_tool("memory_get", {"memory_id": mid})
            if result.is_error or result.structured_content.get("id") != mid:
                missing.append(mid)
    return missing


@dataclass
class CrashReport:
    cycles: int = 0
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    in_flight_at_kill: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)

    def summary(self) -> str:
        restart = statistics.median(self.restart_seconds) if self.restart_seconds else float("nan")
        ack = sorted(self.ack_ms)
        p50 = ack[len(ack) // 2] if ack else float("nan")
        return (
            f"kill -9 cycles: {self.cycles}, acknowledged writes: {self.acknowledged}, "
            f"lost after restart: {len(self.lost)}, writes in flight at the kill: {self.in_flight_at_kill}, "
            f"restart to serving: {restart:.1f} s (median), store ack p50 {p50:.1f} ms"
        )


async def kill9_cycle(daemon: Daemon, cwd: Path, writers: int, kill_after: float, report: CrashReport) -> list[str]:
    """Writers store until the daemon dies under them; returns the acknowledged ids."""
    acked: list[str] = []
    in_flight = [0]

    async def writer(i: int) -> None:
        rng = random.Random(i + int(time.time()))
        try:
            async with socket_client(daemon.socket, cwd, SCOPE_ENV) as client:
                n = 0
                while True:
                    n += 1
                    in_flight[0] += 1
                    started = time.perf_counter()
                    result = await client.call_tool(
                        "memory_store",
                        {"title": f"w{i} crash write {n} {rng.random()}", "content": f"{_text(rng, 12)} {rng.random()}"},
                    )
                    in_flight[0] -= 1
                    if result.is_error:
                        raise RuntimeError(result.content[0].text)
                    report.ack_ms.append((time.perf_counter() - started) * 1000)
                    acked.append(result.structured_content["id"])
        except Exception:
            pass

    async def killer() -> None:
        await anyio.sleep(kill_after)
        report.in_flight_at_kill += in_flight[0]
        os.kill(daemon.process.pid, signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        for i in range(writers):
            tg.start_soon(writer, i)
        tg.start_soon(killer)
    daemon.process.wait(timeout=30)
    return acked


async def run_kill9(root: Path, cycles: int, writers: int, kill_after: float) -> CrashReport:
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    report = CrashReport()
    acknowledged: list[str] = []
    for _ in range(cycles):
        daemon = start_daemon(data_dir, cwd)
        acknowledged += await kill9_cycle(daemon, cwd, writers, kill_after, report)
        report.cycles += 1
    started = time.perf_counter()
    daemon = start_daemon(data_dir, cwd)
    report.restart_seconds.append(time.perf_counter() - started)
    try:
        report.acknowledged = len(acknowledged)
        report.lost = await _missing(daemon, cwd, acknowledged)
    finally:
        daemon.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", type=int, default=8, help="Streamable HTTP clients (default 8)")
    parser.add_argument("--socket", type=int, default=8, help="unix-socket clients (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--kill9", type=int, default=0, metavar="CYCLES", help="run the kill -9 test instead")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers for --kill9 (default 4)")
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds of writes before each kill")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-load-") as tmp:
        if args.kill9:
            crash = anyio.run(run_kill9, Path(tmp), args.kill9, args.writers, args.kill_after)
            print(crash.summary())
            return 1 if crash.lost else 0
        load = anyio.run(run_load, Path(tmp), args.http, args.socket, args.seconds)
        print(load.summary())
        return 1 if load.errors or load.lost else 0


if __name__ == "__main__":
    sys.exit(main())
