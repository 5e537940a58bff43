"""HTTP holds under idle and slow clients (issue 14 part 3).

200 idle and 200 slowloris connections, each reopened as soon as the daemon closes it,
used to take every connection slot before anyone was authenticated: every token holder
got 503 while they stayed open. Now they time out and are budgeted apart from
authenticated clients, and the holder's calls go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.abuse import run_abuse
from tests.e2e.daemons import create_token, http_client, serving_http, start_daemon
from tests.helpers import data, free_port

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serving_http(tmp_path_factory.mktemp("abuse"), "--tenant", "acme", "--project", "api") as (daemon, token, _):
        yield {"daemon": daemon, "token": token}


@pytest.mark.slow
async def test_a_token_holder_is_served_through_200_idle_and_200_slowloris_connections(world: dict) -> None:
    report = await run_abuse(world["daemon"].base, world["token"], idle=200, slowloris=200, seconds=15)
    print(report.summary())
    assert report.rounds >= 10, report.summary()
    assert report.success_rate >= 0.95, f"{report.summary()}; first failures: {report.failures[:3]}"
    # The idle and slow connections were not simply left to sit: the daemon closed them.
    assert report.reconnects >= 400, report.summary()
    assert world["daemon"].process.poll() is None


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Small budgets, long deadlines: what is closed here is closed by the budget, not a timeout."""
    root = tmp_path_factory.mktemp("tight")
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    tokens = [create_token(data_dir, "--tenant", "acme", "--project", "api") for _ in range(2)]
    daemon = start_daemon(
        data_dir, cwd, http=f"127.0.0.1:{free_port()}", CONTEXTD_HTTP_MAX_UNAUTHENTICATED="16",
        CONTEXTD_HTTP_HEADER_TIMEOUT_S="120", CONTEXTD_MAX_CONNECTIONS="2",
    )
    yield {"daemon": daemon, "tokens": tokens}
    daemon.stop()
    assert "Traceback" not in daemon.output()


async def test_past_the_unauthenticated_budget_the_oldest_idle_connections_are_closed(tight: dict) -> None:
    host, port = tight["daemon"].base.removeprefix("http://").split(":")
    idle = [await anyio.connect_tcp(host, int(port)) for _ in range(64)]
    try:
        await anyio.sleep(1)
        async with http_client(tight["daemon"].base, tight["tokens"][0]) as client:
            assert "memories" in data(await client.call_tool("memory_search", {"query": "budget"}))
        closed = 0
        for stream in idle:
            with anyio.move_on_after(0.2):
                try:
                    await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    closed += 1
        # 64 - 16 were closed, oldest first: the first ones are gone, the last ones still open.
        assert closed >= 64 - 16 - 1, closed
    finally:
        for stream in idle:
            await stream.aclose()


async def test_concurrent_requests_are_counted_per_token(tight: dict) -> None:
    base, (busy, other) = tight["daemon"].base, tight["tokens"]
    headers = {"Authorization": f"Bearer {busy}", "Accept": "text/event-stream"}
    # Two long-lived SSE streams: the busy token's whole budget (CONTEXTD_MAX_CONNECTIONS=2).
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", base + "/sse", headers=headers) as one,
        http.stream("GET", base + "/sse", headers=headers) as two,
    ):
        assert one.status_code == two.status_code == 200
        third = await http.get(base + "/sse", headers=headers)
        assert third.status_code == 503 and "CONTEXTD_MAX_CONNECTIONS" in third.text
        async with http_client(base, other) as client:  # another token is not affected
            assert "memories" in data(await client.call_tool("memory_search", {"query": "per token"}))
