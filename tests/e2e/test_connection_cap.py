"""CONTEXTD_MAX_CONNECTIONS: past it a new socket session is refused by name; open ones go on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from contextd_mcp.transports.hello import PROTOCOL
from tests.e2e.daemons import Daemon, start_daemon

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path]]:
    root = tmp_path_factory.mktemp("cap")
    cwd = root / "cwd"
    cwd.mkdir()
    running = start_daemon(root / "data", cwd, CONTEXTD_MAX_CONNECTIONS="2")
    yield running, cwd
    running.stop()
    assert "Traceback" not in running.output()


async def hello(stream: Any, cwd: Path) -> dict[str, Any]:
    await stream.send(json.dumps({"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": {}, "pid": os.getpid()}).encode() + b"\n")
    buffer = b""
    with anyio.fail_after(30):
        while b"\n" not in buffer:
            buffer += await stream.receive(65536)
    return json.loads(buffer.split(b"\n", 1)[0])


async def test_a_session_past_the_cap_is_refused_and_the_open_ones_keep_working(daemon: tuple[Daemon, Path]) -> None:
    running, cwd = daemon
    socket = str(running.socket)
    async with await anyio.connect_unix(socket) as first, await anyio.connect_unix(socket) as second:
        assert (await hello(first, cwd))["ok"] and (await hello(second, cwd))["ok"]
        async with await anyio.connect_unix(socket) as third:
            refused = await hello(third, cwd)
        assert refused["ok"] is False and "CONTEXTD_MAX_CONNECTIONS=2" in refused["error"]
        init = {
            "jsonrpc": "2.0", "id": 7, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        }
        await first.send(json.dumps(init).encode() + b"\n")
        with anyio.fail_after(30):
            reply = await first.receive(65536)
        assert b"contextd-mcp" in reply and b'"id":7' in reply.replace(b" ", b"")
    with anyio.fail_after(10):  # both closed: a new session is accepted again
        while True:
            async with await anyio.connect_unix(socket) as again:
                if (await hello(again, cwd))["ok"]:
                    break
            await anyio.sleep(0.05)
