"""Lingering placeholders through the real daemon and MCP client: the setting reaches the
sandbox, an unused placeholder goes after its linger while the daemon runs, and every one goes
when the daemon stops (the crash journal covers a daemon that cannot stop cleanly)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data

pytestmark = pytest.mark.anyio
PLACEHOLDERS = (".git", ".vscode", ".claude", ".idea", ".mcp.json", ".bashrc")  # some of them


def _lingering(project: Path) -> list[str]:
    return sorted(name for name in PLACEHOLDERS if (project / name).is_dir())


async def test_placeholders_linger_then_go_and_go_at_daemon_stop(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    daemon = start_daemon(data_dir, tmp_path, CONTEXTD_SANDBOX_PLACEHOLDER_LINGER_S="60")
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            first = data(await client.call_tool("bash", {"command": "echo x > .vscode/t.json; echo w=$?"}))
            assert "w=0" not in first["stdout"], first
            assert _lingering(project_dir) == sorted(PLACEHOLDERS), "they linger for the next call"
            made = (project_dir / ".vscode").stat().st_ino
            second = data(await client.call_tool("bash", {"command": "ls -A .vscode | wc -l"}))
            assert second["stdout"].strip() == "0", second
            assert (project_dir / ".vscode").stat().st_ino == made, "held again, not made anew"
    finally:
        daemon.stop()
    assert sorted(os.listdir(project_dir)) == [], "the daemon's stop left placeholders behind"


async def test_an_unused_placeholder_goes_after_the_configured_linger(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    daemon = start_daemon(data_dir, tmp_path, CONTEXTD_SANDBOX_PLACEHOLDER_LINGER_S="0.5")
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            assert data(await client.call_tool("bash", {"command": "true"}))["exit_code"] == 0
            deadline = time.monotonic() + 10
            while os.listdir(project_dir) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(os.listdir(project_dir)) == [], "still there long after the linger, daemon running"
            # The next call makes them again, and a linger of 0 would remove them at its end.
            assert data(await client.call_tool("bash", {"command": "ls -A | wc -l"}))["stdout"].strip() != "0"
    finally:
        daemon.stop()
    assert sorted(os.listdir(project_dir)) == []
