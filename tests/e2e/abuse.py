"""Idle and slowloris HTTP clients against the real daemon, and a token holder working meanwhile.

Shared by tests/e2e/test_http_abuse.py and bench/bench_http_abuse.py. Each attacker keeps
its connection open as long as the daemon lets it, and opens a new one when it is closed
(a real attacker does), so the daemon faces the full count for the whole run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import anyio

from tests.e2e.daemons import http_client

ROUND_TIMEOUT_S = 15.0


@dataclass
class AbuseReport:
    idle: int
    slowloris: int
    seconds: float
    reconnects: int = 0  # attacker connections the daemon closed (timed out or evicted)
    latencies: list[float] = field(default_factory=list)  # successful rounds, seconds
    failures: list[str] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.latencies) + len(self.failures)

    @property
    def success_rate(self) -> float:
        return len(self.latencies) / self.rounds if self.rounds else 0.0

    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    def p95_ms(self) -> float:
        if len(self.latencies) < 2:
            return self.p50_ms()
        return statistics.quantiles(self.latencies, n=20)[-1] * 1000

    def summary(self) -> str:
        return (
            f"{self.idle} idle + {self.slowloris} slowloris for {self.seconds:.0f}s: token holder "
            f"{len(self.latencies)}/{self.rounds} rounds ok ({self.success_rate:.1%}), "
            f"p50 {self.p50_ms():.0f} ms, p95 {self.p95_ms():.0f} ms; attacker connections closed by the daemon: "
            f"{self.reconnects}"
        )


async def _attacker(host: str, port: int, slow: bool, stop: anyio.Event, report: AbuseReport) -> None:
    gone = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
    while not stop.is_set():
        try:
            stream = await anyio.connect_tcp(host, port)
        except OSError:
            await anyio.sleep(0.1)
            continue
        async with stream, anyio.create_task_group() as tg:

            async def until_closed() -> None:
                try:
                    while True:
                        await stream.receive()  # noqa: B023 - run and awaited within this iteration
                except gone:
                    pass
                tg.cancel_scope.cancel()

            async def trickle() -> None:
                try:
                    await stream.send(f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())  # noqa: B023
                    for n in range(100_000):  # a header line a second, never the blank line ending them
                        await anyio.sleep(1)
                        await stream.send(f"X-Slow-{n}: aaaaaaaa\r\n".encode())  # noqa: B023
                except gone:
                    pass

            tg.start_soon(until_closed)
            if slow:
                tg.start_soon(trickle)
            await stop.wait()
            tg.cancel_scope.cancel()
        if not stop.is_set():
            report.reconnects += 1
            await anyio.sleep(0.01)


async def _holder_round(base: str, token: str, report: AbuseReport) -> None:
    started = time.perf_counter()
    try:
        with anyio.fail_after(ROUND_TIMEOUT_S):
            async with http_client(base, token) as client:  # a fresh connection and session each round
                result = await client.call_tool("memory_search", {"query": "retry policy"})
        if result.is_error:
            report.failures.append(f"tool error: {result.content[0].text[:200]}")  # type: ignore[union-attr]
            return
    except BaseException as exc:
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            raise
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        report.failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    report.latencies.append(time.perf_counter() - started)


async def run_abuse(base: str, token: str, idle: int, slowloris: int, seconds: float, warmup: float = 2.0) -> AbuseReport:
    """Hold ``idle`` + ``slowloris`` connections open for ``seconds`` while the token holder works."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    report = AbuseReport(idle, slowloris, seconds)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        for i in range(idle + slowloris):
            tg.start_soon(_attacker, host, int(port), i >= idle, stop, report)
        await anyio.sleep(warmup)  # every attacker connected before the holder starts
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await _holder_round(base, token, report)
            await anyio.sleep(0.1)
        stop.set()
    return report
