"""Thousands of hostile frames on the socket and on HTTP; the same daemon answers afterwards.

Before this, the first bad line followed by a close stopped the daemon (issue 14 part 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.daemons import http_client, serving_http, socket_client
from tests.e2e.fuzz import INIT_PARAMS, fuzz_http, fuzz_socket
from tests.helpers import data

pytestmark = pytest.mark.anyio

CAP = 65536


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz")
    with serving_http(root, "--tenant", "acme", "--project", "api", CONTEXTD_REQUEST_MAX_BYTES=str(CAP)) as (daemon, token, cwd):
        yield {"daemon": daemon, "token": token, "cwd": cwd}


def open_http_session(base: str, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS}
    response = httpx.post(base + "/mcp", content=json.dumps(init), headers=headers, timeout=30)
    assert response.status_code == 200
    return response.headers["mcp-session-id"]


async def fuzz_and_check(world: dict, socket_frames: int, http_frames: int, seed: int) -> None:
    daemon, token, cwd = world["daemon"], world["token"], world["cwd"]
    pid = daemon.process.pid
    session = open_http_session(daemon.base, token)
    async with anyio.create_task_group() as tg:
        results: dict[str, Any] = {}

        async def on_socket() -> None:
            results["socket"] = await fuzz_socket(daemon.socket, cwd, socket_frames, seed, CAP)

        async def on_http() -> None:
            results["http"] = await fuzz_http(daemon.base, token, http_frames, seed + 1, CAP, session)

        tg.start_soon(on_socket)
        tg.start_soon(on_http)
    print(f"fuzz: socket {results['socket'].frames} frames / {results['socket'].connections} connections, "
          f"http {results['http'].frames} requests; kinds {results['socket'].kinds}")
    assert results["socket"].frames >= socket_frames and results["http"].frames >= http_frames
    assert daemon.process.poll() is None and daemon.process.pid == pid, daemon.output()[-3000:]
    with anyio.fail_after(60):
        async with socket_client(daemon.socket, cwd) as client:
            stored = data(await client.call_tool("memory_store", {"title": "After the storm", "content": "Calm."}))
            assert data(await client.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "After the storm"
        async with http_client(daemon.base, token) as client:
            found = data(await client.call_tool("memory_search", {"query": "fuzz content"}))
            assert isinstance(found["memories"], list)


async def test_a_few_hundred_hostile_frames_leave_the_daemon_serving(world: dict) -> None:
    await fuzz_and_check(world, socket_frames=400, http_frames=200, seed=14)


@pytest.mark.slow
async def test_thousands_of_hostile_frames_leave_the_same_daemon_serving(world: dict) -> None:
    await fuzz_and_check(world, socket_frames=4000, http_frames=2000, seed=1414)


async def test_an_oversize_http_call_through_the_real_client_fails_at_once_naming_the_limit(world: dict) -> None:
    from mcp.shared.exceptions import MCPError

    async with http_client(world["daemon"].base, world["token"]) as client:
        started = anyio.current_time()
        with pytest.raises(MCPError) as raised:
            await client.call_tool("memory_store", {"title": "Big", "content": "y" * (3 * CAP)})
        assert anyio.current_time() - started < 1.0
        assert f"larger than {CAP} bytes" in str(raised.value) and "CONTEXTD_REQUEST_MAX_BYTES" in str(raised.value)
        assert data(await client.call_tool("memory_store", {"title": "Small", "content": "Fits."}))["id"]


@pytest.mark.parametrize(
    ("body", "expected_id"),
    [(b'{"jsonrpc":"2.0","id":5,"method":7}', 5), (b'{"jsonrpc":"1.0","id":"abc","method":"tools/list"}', "abc"),
     (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', None), (b"garbage", None)],
    ids=["bad-method", "bad-version", "object-id", "not-json"],
)
def test_a_bad_http_request_is_answered_like_on_the_socket(world: dict, body: bytes, expected_id: object) -> None:
    base, token = world["daemon"].base, world["token"]
    session = open_http_session(base, token)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json", "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}
    response = httpx.post(base + "/mcp", content=body, headers=headers, timeout=30)
    assert response.status_code == 400
    assert response.json()["id"] == expected_id and response.json()["error"]["code"] == -32700
