"""No client can take the daemon down: a bad line ends (at most) that connection.

Issue 14 part 1: a hello, then ``garbage``, ``{"a":1}`` or a line over the cap, then a close,
made the daemon exit 1 (the parse-error reply hit the closed peer inside an ExceptionGroup).
Part 2: an oversize ``tools/call`` was answered with ``id: null``, so the real SDK client
waited for its own timeout instead of getting an error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from contextd_mcp.transports.hello import PROTOCOL
from tests.e2e.daemons import Daemon, socket_client, start_daemon
from tests.helpers import data

pytestmark = pytest.mark.anyio

CAP = 65536


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path]]:
    root = tmp_path_factory.mktemp("survives")
    cwd = root / "cwd"
    cwd.mkdir()
    daemon = start_daemon(root / "data", cwd, CONTEXTD_REQUEST_MAX_BYTES=str(CAP))
    yield daemon, cwd
    daemon.stop()
    assert "Traceback" not in daemon.output()


async def _hello(stream: Any, cwd: Path) -> dict[str, Any]:
    hello = {"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": {}, "pid": os.getpid()}
    await stream.send(json.dumps(hello).encode() + b"\n")
    buffer = b""
    with anyio.fail_after(30):
        while b"\n" not in buffer:
            buffer += await stream.receive(65536)
    return json.loads(buffer.split(b"\n", 1)[0])


async def _still_serving(daemon: Daemon, cwd: Path) -> None:
    assert daemon.process.poll() is None, daemon.output()[-2000:]
    with anyio.fail_after(60):
        async with socket_client(daemon.socket, cwd) as client:
            stored = data(await client.call_tool("memory_store", {"title": "Still here", "content": "Serving."}))
            assert data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "Still here"


@pytest.mark.parametrize(
    "line",
    [b"garbage\n", b'{"a":1}\n', b"\xff\xfe\xfa not utf-8\n", b'{"jsonrpc":"2.0","id":' + b"x" * (2 * CAP) + b"\n"],
    ids=["garbage", "not-jsonrpc", "invalid-utf8", "oversize"],
)
async def test_one_bad_line_and_a_close_do_not_stop_the_daemon(world: tuple[Daemon, Path], line: bytes) -> None:
    daemon, cwd = world
    pid = daemon.process.pid
    async with await anyio.connect_unix(str(daemon.socket)) as stream:
        assert (await _hello(stream, cwd))["ok"] is True
        await stream.send(line)
    await anyio.sleep(0.5)  # the daemon's reply now meets a closed peer
    await _still_serving(daemon, cwd)
    assert daemon.process.pid == pid


async def test_an_oversize_call_through_the_real_client_fails_at_once(world: tuple[Daemon, Path]) -> None:
    daemon, cwd = world
    async with socket_client(daemon.socket, cwd) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as raised:
            await client.call_tool("memory_store", {"title": "Big", "content": "x" * (2 * CAP)})
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"the client waited {elapsed:.1f}s for an answer"
        assert f"larger than {CAP} bytes" in str(raised.value) and "CONTEXTD_REQUEST_MAX_BYTES" in str(raised.value)
        # The same session goes on.
        assert data(await client.call_tool("memory_store", {"title": "Small", "content": "Fits."}))["id"]


async def _exchange(daemon: Daemon, cwd: Path, line: bytes) -> dict[str, Any]:
    async with await anyio.connect_unix(str(daemon.socket)) as stream:
        assert (await _hello(stream, cwd))["ok"] is True
        await stream.send(line)
        buffer = b""
        with anyio.fail_after(10):
            while b"\n" not in buffer:
                buffer += await stream.receive(65536)
        return json.loads(buffer.split(b"\n", 1)[0])


@pytest.mark.parametrize(
    ("line", "expected_id"),
    [
        (b'{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"pad":"' + b"x" * (2 * CAP) + b'"}}\n', 41),
        (b'{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"pad":"' + b"x" * (2 * CAP) + b'"}}\n', "req-7"),
        (b'{"jsonrpc":"2.0","id":42,"method":7}\n', 42),
        (b'{"jsonrpc":"1.0","id":"abc","method":"tools/list"}\n', "abc"),
        (b'{"jsonrpc":"2.0","id":{"nested":1},"method":"tools/list"}\n', None),
        (b'{"jsonrpc":"2.0","id":[1,2],"method":"tools/list"}\n', None),
    ],
    ids=["oversize-int-id", "oversize-str-id", "bad-method", "bad-version", "object-id", "array-id"],
)
async def test_a_bad_request_is_answered_with_its_own_id(
    world: tuple[Daemon, Path], line: bytes, expected_id: Any
) -> None:
    reply = await _exchange(world[0], world[1], line)
    assert reply["id"] == expected_id and reply["error"]["code"] in (-32600, -32700), reply


def test_in_process_stdio_speaks_the_same_framing_and_caps(tmp_path: Path) -> None:
    from tests.helpers import raw_in_process, read_replies

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    lines = [json.dumps(init).encode(), b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
             b'{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"pad":"' + b"x" * (2 * CAP) + b'"}}',
             b"garbage", b'{"jsonrpc":"2.0","id":78,"method":"tools/list"}']
    with raw_in_process(tmp_path, CONTEXTD_REQUEST_MAX_BYTES=str(CAP)) as process:
        assert process.stdin is not None
        process.stdin.write(b"\n".join(lines) + b"\n")
        process.stdin.flush()
        replies = read_replies(process, {78}, timeout=90)
        assert f"larger than {CAP} bytes" in replies[77]["error"]["message"]
        assert replies[None]["error"]["code"] == -32700
        assert any(t["name"] == "memory_store" for t in replies[78]["result"]["tools"])
