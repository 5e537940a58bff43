"""Bad and slow clients get clear errors, and the daemon keeps serving everyone else.

One real daemon (socket + HTTP with a token), a 64 KiB message cap; raw bytes on the
socket and raw HTTP requests for what an SDK client would never send.
"""

from __future__ import annotations

import json
import os
import socket as pysocket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from contextd_mcp.transports.hello import PROTOCOL
from tests.e2e.daemons import Daemon, http_client, serving_http, socket_client
from tests.helpers import data

pytestmark = pytest.mark.anyio

CAP = 65536
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("faults")
    with serving_http(root, "--tenant", "acme", "--project", "api", CONTEXTD_REQUEST_MAX_BYTES=str(CAP)) as (daemon, token, cwd):
        yield {"daemon": daemon, "token": token, "cwd": cwd}


class Raw:
    """Newline-delimited JSON on the daemon socket, byte for byte."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, message: dict[str, Any] | bytes) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        await self.stream.send(raw)

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(30):
            while b"\n" not in self.buffer:
                self.buffer += await self.stream.receive(65536)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


@asynccontextmanager
async def raw_session(daemon: Daemon, cwd: Path, initialize: bool = True) -> AsyncIterator[Raw]:
    async with await anyio.connect_unix(str(daemon.socket)) as stream:
        raw = Raw(stream)
        await raw.send({"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": {}, "pid": os.getpid()})
        assert (await raw.receive())["ok"] is True
        if initialize:
            await raw.send(INIT)
            assert (await raw.receive())["result"]["serverInfo"]["name"] == "contextd-mcp"
            await raw.send(INITIALIZED)
        yield raw


async def test_socket_oversize_malformed_and_unknown_get_clear_errors_and_the_session_goes_on(world: dict) -> None:
    async with raw_session(world["daemon"], world["cwd"]) as raw:
        await raw.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"pad":"' + b"x" * (CAP * 2) + b'"}}\n')
        oversize = await raw.receive()
        assert oversize["error"]["code"] == -32600 and f"larger than {CAP} bytes" in oversize["error"]["message"]

        await raw.send(b"{this is not json\n")
        assert (await raw.receive())["error"]["code"] == -32700
        await raw.send(b'{"valid": "json", "but": "not JSON-RPC"}\n')
        assert (await raw.receive())["error"]["code"] == -32700

        await raw.send({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"})
        unknown = await raw.receive()
        assert unknown["id"] == 3 and unknown["error"]["code"] == -32601

        await raw.send({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
        listed = await raw.receive()
        assert listed["id"] == 4 and any(t["name"] == "memory_store" for t in listed["result"]["tools"])


def _mcp_headers(token: str, session: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    if session:
        headers |= {"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}
    return headers


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def test_http_oversize_malformed_and_unknown_get_clear_errors(world: dict) -> None:
    url, token = world["daemon"].base + "/mcp", world["token"]
    with httpx.Client(timeout=30) as http:
        big = http.post(url, content=b'{"pad":"' + b"x" * (CAP * 2) + b'"}', headers=_mcp_headers(token))
        assert big.status_code == 413

        bad = http.post(url, content=b"{this is not json", headers=_mcp_headers(token))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == -32700

        init = http.post(url, json=INIT, headers=_mcp_headers(token))
        assert init.status_code == 200
        session = init.headers["mcp-session-id"]
        assert http.post(url, json=INITIALIZED, headers=_mcp_headers(token, session)).status_code == 202
        unknown = http.post(url, json={"jsonrpc": "2.0", "id": 9, "method": "no/such/method"},
                            headers=_mcp_headers(token, session))
        [reply] = _messages(unknown)
        assert reply["id"] == 9 and reply["error"]["code"] == -32601


async def test_slow_and_silent_clients_do_not_block_others(world: dict) -> None:
    daemon, cwd, token = world["daemon"], world["cwd"], world["token"]
    host, port = daemon.base.removeprefix("http://").split(":")  # type: ignore[union-attr]
    async with (
        await anyio.connect_unix(str(daemon.socket)) as silent,
        await anyio.connect_unix(str(daemon.socket)) as half_hello,
        raw_session(daemon, cwd) as half_message,
    ):
        await half_hello.send(b'{"contextd": 1, "op": "mc')
        await half_message.send(b'{"jsonrpc":"2.0","id":7,"method":"tools/li')
        slow_http = pysocket.create_connection((host, int(port)))
        slow_http.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{\"jsonrpc\":")
        try:
            with anyio.fail_after(60):
                async with socket_client(daemon.socket, cwd) as client:
                    mid = data(await client.call_tool("memory_store", {"title": "Served", "content": "Meanwhile."}))["id"]
                    assert data(await client.call_tool("memory_get", {"memory_id": mid}))["title"] == "Served"
                async with http_client(daemon.base, token) as client:  # type: ignore[arg-type]
                    assert "memories" in data(await client.call_tool("memory_search", {"query": "served meanwhile"}))
            # A connection that never says hello is told why and closed (10 s hello timeout).
            with anyio.fail_after(30):
                reply = await silent.receive()
            assert b"bad hello" in reply
        finally:
            slow_http.close()
