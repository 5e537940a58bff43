"""kill -9 the daemon in the middle of acknowledged writes: after a restart every one is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_load import SCOPE_ENV, CrashReport, kill9_cycle
from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data, run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    report = CrashReport()
    acknowledged: list[str] = []
    for _ in range(2):
        daemon = start_daemon(data_dir, cwd)
        acknowledged += await kill9_cycle(daemon, cwd, writers=3, kill_after=2.5, report=report)
        assert daemon.process.returncode == -9
    assert len(acknowledged) >= 10 and report.in_flight_at_kill >= 1

    daemon = start_daemon(data_dir, cwd)  # the store opens after two crashes
    try:
        status = run_cli(data_dir, "status", "--json")
        assert status.returncode == 0 and '"running": true' in status.stdout
        async with socket_client(daemon.socket, cwd, SCOPE_ENV) as client:
            for mid in acknowledged:
                assert data(await client.call_tool("memory_get", {"memory_id": mid}))["id"] == mid
            stored = data(await client.call_tool("memory_store", {"title": "After the crash", "content": "Still writable."}))
            assert data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "After the crash"
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
