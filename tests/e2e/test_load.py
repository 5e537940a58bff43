"""Bounded load on loopback: concurrent MCP clients over HTTP and the socket, no errors, no lost writes.

The figures (bigger run) come from ``bench/bench_load.py``; this asserts correctness at a small size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_load import run_load

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_mixed_load_over_http_and_socket_has_no_errors_and_no_lost_writes(tmp_path: Path) -> None:
    report = await run_load(tmp_path, http_clients=3, socket_clients=3, seconds=8)
    print(report.summary())
    assert report.errors == []
    assert report.lost == []
    assert {"memory_store", "memory_search", "memory_feedback"} <= set(report.latencies)
    assert len(report.acknowledged) >= 12 and report.calls >= 30
    # Every client made progress: nobody was starved by the others.
    assert sorted(report.per_client) == ["h0", "h1", "h2", "s0", "s1", "s2"]
    assert min(report.per_client.values()) >= 3, dict(report.per_client)
