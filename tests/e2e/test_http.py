"""`contextd-mcp serve --http`: Streamable HTTP at /mcp and legacy SSE at /sse, real clients."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.sse import sse_client

from tests import zygote as forks
from tests.helpers import CLI, data, env_for, free_port, run_cli

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def http_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One daemon for the module's two tests of a running server (the others test refusals to
    start): the rebinding test sends no MCP call, so the store test sees the store it would alone."""
    root = tmp_path_factory.mktemp("http")
    data_dir, project_dir = root / "data", root / "project"
    project_dir.mkdir()
    port = free_port()
    process = forks.popen(
        [*CLI, "serve", "--http", f"127.0.0.1:{port}", "--allow-unauthenticated-loopback"],
        env=env_for(data_dir),
        cwd=project_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("daemon did not come up")
    yield base
    stopped = run_cli(data_dir, "stop")
    assert process.wait(timeout=30) == 0
    assert stopped.returncode == 0, stopped.stderr
    output = process.stdout.read().decode() if process.stdout else ""
    assert "Traceback" not in output, output


async def test_streamable_http_then_sse_share_one_store(http_daemon: str) -> None:
    async with Client(http_daemon + "/mcp", read_timeout_seconds=30) as client:
        assert "memory_store" in {t.name for t in (await client.list_tools()).tools}
        mid = data(
            await client.call_tool("memory_store", {"title": "Use HTTP keep-alive", "content": "Reuse connections in clients."})
        )["id"]
        hits = data(await client.call_tool("memory_search", {"query": "reuse HTTP connections"}))
        assert hits["memories"][0]["id"] == mid

    async with Client(sse_client(http_daemon + "/sse"), read_timeout_seconds=30) as client:
        assert data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": True}))["confidence"] == 0.75
        assert data(await client.call_tool("memory_get", {"memory_id": mid}))["helpful_count"] == 1


def test_dns_rebinding_is_refused(http_daemon: str) -> None:
    request = urllib.request.Request(
        http_daemon + "/mcp",
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers={"Host": "evil.example:80", "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code in (403, 421)


def test_non_loopback_http_without_auth_refuses_to_start(data_dir: Path) -> None:
    result = run_cli(data_dir, "serve", "--http", "0.0.0.0:0", timeout=30)
    assert result.returncode == 2 and "non-loopback" in result.stderr


def test_loopback_http_without_tokens_needs_the_explicit_opt_in(data_dir: Path) -> None:
    result = run_cli(data_dir, "serve", "--http", "127.0.0.1:0", timeout=30)
    assert result.returncode == 2 and "--allow-unauthenticated-loopback" in result.stderr
    opted_in_remotely = run_cli(data_dir, "serve", "--http", "0.0.0.0:0", timeout=30, CONTEXTD_HTTP_ALLOW_LOCAL_NOAUTH="1")
    assert opted_in_remotely.returncode == 2 and "loopback only" in opted_in_remotely.stderr
