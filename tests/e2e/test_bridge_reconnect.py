"""Agents survive a daemon restart (issue 16, item 4), through the real MCP SDK client over stdio.

Before: after ``contextd-mcp stop`` (or the daemon killed) the bridge exited 0 with nothing on
stderr; the client's next call failed with a closed connection, a call in flight never got an
answer (the client waited for its own timeout).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from tests.e2e.daemons import start_as_bridge
from tests.helpers import CLI, data, env_for, run_cli

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def bridge(data_dir: Path, cwd: Path, errlog: Path, bridge_starts: bool = False, **env: str) -> AsyncIterator[Any]:
    """The real `contextd-mcp stdio` under the real SDK client, its stderr kept in ``errlog``.
    Its first daemon is started for it as it would start it (daemons.start_as_bridge) unless
    ``bridge_starts``; the daemons it starts again after a stop or a kill are its own."""
    if not bridge_starts:
        start_as_bridge(data_dir, env_for(data_dir, **env))
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "stdio"], env=env_for(data_dir, **env), cwd=str(cwd))
    with open(errlog, "w") as log:
        async with Client(stdio_client(params, errlog=log), read_timeout_seconds=90) as client:
            yield client


def daemon_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "daemon.json").read_text())["pid"])


def kill_daemon(data_dir: Path) -> int:
    pid = daemon_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    return pid


async def wait_for(path: Path, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while not path.exists():
            await anyio.sleep(0.02)


async def test_a_call_after_stop_reaches_the_restarted_daemon(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    errlog = tmp_path / "bridge.err"
    async with bridge(data_dir, project_dir, errlog) as client:
        stored = data(await client.call_tool("memory_store", {"title": "Survives a restart", "content": "Kept."}))
        started = data(await client.call_tool("session_start", {"task": "restart the daemon under an agent"}))
        first = daemon_pid(data_dir)
        stopped = run_cli(data_dir, "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        with anyio.fail_after(90):
            got = data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))
        assert got["title"] == "Survives a restart"
        assert daemon_pid(data_dir) != first
        # The daemon-side session came back with the connection: session_end needs no id.
        ended = data(await client.call_tool("session_end", {"outcome": "success", "summary": "Restarted."}))
        assert ended["session_id"] == started["session_id"]
    lines = errlog.read_text().splitlines()
    reconnected = [line for line in lines if "went away; reconnected" in line]
    assert len(reconnected) == 1 and f"pid {first}" in reconnected[0], lines


async def test_a_call_in_flight_when_the_daemon_is_killed_gets_an_error_and_the_next_works(
    data_dir: Path, project_dir: Path, tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    errlog = tmp_path / "bridge.err"
    async with bridge(data_dir, project_dir, errlog) as client:
        await client.list_tools()
        outcome: dict[str, Any] = {}

        async def slow_call() -> None:
            try:
                outcome["result"] = await client.call_tool("bash", {"command": "touch running; sleep 30"})
            except MCPError as exc:
                outcome["error"] = exc

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                await wait_for(project_dir / "running")
                killed = kill_daemon(data_dir)
        assert "result" not in outcome, outcome
        assert "went away" in str(outcome["error"]) and "may or may not have taken effect" in str(outcome["error"])
        with anyio.fail_after(90):
            assert data(await client.call_tool("memory_store", {"title": "After the kill", "content": "Works."}))["id"]
        assert daemon_pid(data_dir) != killed
    assert "1 request(s) in flight answered with an error" in errlog.read_text()


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def _read(process: subprocess.Popen[bytes], count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """The next ``count`` reply lines (fewer if none come within ``timeout``)."""
    assert process.stdout is not None
    replies: list[dict[str, Any]] = []
    until = time.monotonic() + timeout
    while len(replies) < count and select.select([process.stdout], [], [], max(0.0, until - time.monotonic()))[0]:
        line = process.stdout.readline()
        if not line:
            break
        if line == b"\n":
            # The bridge ends a long line the daemon may have died in the middle of; killed after
            # writing it and before telling the bridge it was whole, the line was whole already.
            continue
        replies.append(json.loads(line))
    return replies


def _raw_bridge(data_dir: Path, project_dir: Path, reconnect_seconds: str) -> subprocess.Popen[bytes]:
    """`contextd-mcp stdio` driven line by line, initialized (its first daemon started for it)."""
    start_as_bridge(data_dir, env_for(data_dir, CONTEXTD_RECONNECT_SECONDS=reconnect_seconds))
    process = subprocess.Popen(
        [*CLI, "stdio"], cwd=project_dir, env=env_for(data_dir, CONTEXTD_RECONNECT_SECONDS=reconnect_seconds),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,  # select() sees every line
    )
    _send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    assert [r["id"] for r in _read(process, 1)] == [1]
    _send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    return process


def test_each_request_in_flight_is_answered_exactly_once_with_its_own_id(data_dir: Path, project_dir: Path) -> None:
    """On the wire: the error carries the request's id, no reply comes twice, and the bridge keeps
    the session (no second initialize needed)."""
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    process = _raw_bridge(data_dir, project_dir, "40")  # a start takes ~13 s on a loaded CI box
    try:
        for request_id in ("slow-a", 7):
            _send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                            "params": {"name": "bash", "arguments": {"command": f"touch ran-{request_id}; sleep 30"}}})
        deadline = time.monotonic() + 60
        while not all((project_dir / f"ran-{i}").exists() for i in ("slow-a", 7)) and time.monotonic() < deadline:
            time.sleep(0.02)
        kill_daemon(data_dir)
        lost = _read(process, 2, timeout=30)
        assert {r["id"]: r["error"]["code"] for r in lost} == {"slow-a": -32000, 7: -32000}, lost
        _send(process, {"jsonrpc": "2.0", "id": 8, "method": "tools/list"})  # the same session goes on
        listed = _read(process, 1)
        assert listed[0]["id"] == 8 and "result" in listed[0], listed
        assert any(t["name"] == "memory_store" for t in listed[0]["result"]["tools"])
        assert _read(process, 1, timeout=1.0) == []  # nothing answered twice
    finally:
        process.kill()
        process.wait()


def test_a_daemon_that_cannot_come_back_gives_a_clear_error_and_the_bridge_exits_1(data_dir: Path, project_dir: Path) -> None:
    """Every new daemon finds the data directory owned (a process holds its lock): the request
    gets an error with its own id, stderr says what holds the directory and which setting waits,
    and the bridge exits 1 once its window (short here: only its end is under test) is over."""
    process = _raw_bridge(data_dir, project_dir, "3")
    try:
        _send(process, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert [r["id"] for r in _read(process, 1)] == [2]
        with open(data_dir / "daemon.lock", "a+") as squatter:
            kill_daemon(data_dir)
            time.sleep(0.1)  # the kernel drops the dead daemon's lock
            fcntl.flock(squatter, fcntl.LOCK_EX)  # every new daemon now finds the directory owned
            _send(process, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
            replies = _read(process, 1, timeout=60)
            assert [r["id"] for r in replies] == [9], replies
            if "went away" in replies[0]["error"]["message"]:  # sent before the bridge saw the drop: in flight
                _send(process, {"jsonrpc": "2.0", "id": 10, "method": "tools/list"})
                replies = _read(process, 1, timeout=60)
                assert [r["id"] for r in replies] == [10], replies
            assert "unreachable" in replies[0]["error"]["message"] and "daemon" in replies[0]["error"]["message"], replies
            assert _read(process, 1, timeout=1.0) == []
            assert process.wait(timeout=30) == 1
        stderr = process.stderr.read().decode()  # type: ignore[union-attr]
        assert "no daemon came back" in stderr and "exiting" in stderr and "CONTEXTD_RECONNECT_SECONDS" in stderr, stderr
        assert f"process {os.getpid()} holds" in stderr, stderr
    finally:
        process.kill()
        process.wait()


async def test_serve_http_beside_a_bridge_started_daemon_says_what_to_run_and_that_works(
    data_dir: Path, project_dir: Path, tmp_path: Path
) -> None:
    """Before: "another contextd-mcp daemon already owns …" and nothing else."""
    import shlex

    from tests.e2e.daemons import _healthy, start_daemon
    from tests.helpers import free_port

    address = f"127.0.0.1:{free_port()}"
    async with bridge(data_dir, project_dir, tmp_path / "bridge.err", bridge_starts=True) as client:
        stored = data(await client.call_tool("memory_store", {"title": "Before HTTP", "content": "Socket only."}))
        refused = run_cli(data_dir, "serve", "--http", address, "--allow-unauthenticated-loopback")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        suggested = shlex.split(refused.stderr.split("run: ", 1)[1].split(" (connected", 1)[0])
        assert suggested == ["contextd-mcp", "serve", "--http", address, "--allow-unauthenticated-loopback", "--replace"]
        http = start_daemon(data_dir, project_dir, *suggested[4:], http=address)  # what it says, run as is
        try:
            assert _healthy(f"http://{address}")
            with anyio.fail_after(90):  # the agent goes on, now on the daemon serving HTTP too
                assert data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "Before HTTP"
            assert daemon_pid(data_dir) == http.process.pid
        finally:
            http.stop()
        with anyio.fail_after(90):  # back on a bridge-started daemon (the fixture stops it), not one starting
            assert data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "Before HTTP"


async def test_an_agents_restrictions_hold_after_the_restart(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    """session_start(agent=…) binds the connection in the daemon's memory, which a restart
    loses: without the bridge re-asserting it, the restricted agent could write again."""
    from tests.helpers import error_text

    async with bridge(data_dir, project_dir, tmp_path / "bridge.err") as client:
        data(await client.call_tool("agent_create", {
            "name": "reader", "description": "Reads only.", "system_prompt": "Read.",
            "tools_enabled": ["session_start", "session_end", "memory_search", "memory_get"]}))
        data(await client.call_tool("session_start", {"task": "read only", "agent": "reader"}))
        attempt = {"title": "Not allowed", "content": "A reader does not write."}
        assert "memory_store" in error_text(await client.call_tool("memory_store", attempt))
        assert run_cli(data_dir, "stop").returncode == 0
        with anyio.fail_after(90):
            assert "memory_store" in error_text(await client.call_tool("memory_store", attempt))
        assert data(await client.call_tool("memory_search", {"query": "anything"}))["memories"] == []
