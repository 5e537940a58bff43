"""The real `contextd-mcp stdio` command through the real MCP SDK client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests import zygote as forks
from tests.e2e.daemons import start_as_bridge
from tests.helpers import CLI, data, env_for, run_cli

pytestmark = pytest.mark.anyio


def stdio(data_dir: Path, cwd: Path, *extra_args: str, bridge_starts: bool = False, **env: str) -> Client:
    """A real bridge (``contextd-mcp stdio``) and the SDK's client on it. Its daemon, when none
    runs, is started for it as it would start it (daemons.start_as_bridge, from the zygote),
    unless ``bridge_starts``: tests of the bridge's own start let it spawn one."""
    environ = env_for(data_dir, **env)
    if not bridge_starts and "--in-process" not in extra_args:
        start_as_bridge(data_dir, environ)
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "stdio", *extra_args], env=environ, cwd=str(cwd))
    return Client(params, read_timeout_seconds=60)


async def exercise(client: Any) -> str:
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"memory_store", "memory_search", "memory_get", "memory_feedback", "memory_outcome"} <= names
    mid = data(
        await client.call_tool(
            "memory_store",
            {"title": "Set PYTHONDONTWRITEBYTECODE in containers", "content": "Avoids .pyc files in read-only images."},
        )
    )["id"]
    found = data(await client.call_tool("memory_search", {"query": "stop python writing pyc files in docker"}))
    assert found["memories"][0]["id"] == mid
    assert data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": True}))["confidence"] == 0.75
    assert data(await client.call_tool("memory_get", {"memory_id": mid}))["helpful_count"] == 1
    return mid


async def test_store_search_feedback_get_then_restart(data_dir: Path, project_dir: Path) -> None:
    async with stdio(data_dir, project_dir, bridge_starts=True) as client:
        mid = await exercise(client)
    status = json.loads(run_cli(data_dir, "status", "--json").stdout)
    assert status["running"] is True and status["memories"] == 1
    assert status["embedding_model"] == "contextd/all-MiniLM-L6-v2-int8"
    stopped = run_cli(data_dir, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert json.loads(run_cli(data_dir, "status", "--json").stdout)["running"] is False

    async with stdio(data_dir, project_dir, bridge_starts=True) as client:  # starts a fresh daemon on the same store
        found = data(await client.call_tool("memory_search", {"query": "python bytecode files in container images"}))
        assert [m["id"] for m in found["memories"]] == [mid]
        assert found["memories"][0]["confidence"] == 0.75


async def test_scope_comes_from_the_bridge_not_the_daemon(data_dir: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    async with stdio(data_dir, one) as client:
        await client.call_tool("memory_store", {"title": "Only in project one", "content": "Scoped lesson."})
    async with stdio(data_dir, two) as client:
        assert data(await client.call_tool("memory_search", {"query": "scoped lesson"}))["memories"] == []
    async with stdio(data_dir, two, CONTEXTD_PROJECT="shared", CONTEXTD_TENANT="local") as client:
        assert data(await client.call_tool("memory_search", {"query": "scoped lesson"}))["memories"] == []
        wide = data(await client.call_tool("memory_search", {"query": "scoped lesson", "scope": "org"}))
        assert [m["title"] for m in wide["memories"]] == ["Only in project one"]


async def test_in_process_mode(data_dir: Path, project_dir: Path) -> None:
    async with stdio(data_dir, project_dir, "--in-process") as client:
        mid = await exercise(client)
    async with stdio(data_dir, project_dir, "--in-process") as client:
        assert data(await client.call_tool("memory_get", {"memory_id": mid}))["confidence"] == 0.75


def test_stop_and_status_without_a_daemon(data_dir: Path) -> None:
    stopped = run_cli(data_dir, "stop")
    assert stopped.returncode == 0 and "no daemon running" in stopped.stdout
    status = run_cli(data_dir, "status")
    assert status.returncode == 0 and "not running" in status.stdout


def test_daemon_stops_when_its_data_directory_is_removed(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import time

    from tests.helpers import env_for

    data_dir = tmp_path / "doomed"
    daemon = forks.popen([*CLI, "serve"], env=env_for(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "contextd.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(data_dir)
        daemon.wait(timeout=20)  # it stops (its store is gone, so the exit status may say so)
    finally:
        daemon.kill()


def test_idle_daemon_exits(data_dir: Path, project_dir: Path) -> None:
    import subprocess

    from tests.helpers import env_for

    daemon = forks.popen([*CLI, "serve", "--idle-exit", "1"], env=env_for(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert daemon.wait(timeout=60) == 0
    finally:
        daemon.kill()
