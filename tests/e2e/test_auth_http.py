"""Bearer tokens on the real daemon: Streamable HTTP and SSE, through the real MCP client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.e2e.daemons import Daemon, audit_events, create_token, http_client, sse, start_daemon
from tests.helpers import data, error_text, free_port, run_cli

pytestmark = pytest.mark.anyio

CALL = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"memory_store","arguments":{"title":"t","content":"c"}}}'
INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}'
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """One daemon on loopback with tokens for two tenants, and a read-only one."""
    root = tmp_path_factory.mktemp("auth")
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    tokens = {
        "acme": create_token(data_dir, "--tenant", "acme", "--project", "api", "--name", "acme"),
        "globex": create_token(data_dir, "--tenant", "globex", "--project", "api"),
        "reader": create_token(data_dir, "--tenant", "acme", "--project", "api", "--read-only"),
    }
    daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}")

    async def make_builder() -> None:
        async with http_client(daemon.base, tokens["acme"]) as acme:
            data(await acme.call_tool("agent_create", {"name": "builder", "description": "Builds.", "system_prompt": "Build."}))

    anyio.run(make_builder)
    # The agent exists first: a token's agent is resolved (by the running daemon) when it is made.
    tokens["agent"] = create_token(data_dir, "--tenant", "acme", "--project", "api", "--agent", "builder")
    yield {"daemon": daemon, "tokens": tokens, "data_dir": data_dir, "cwd": cwd}
    daemon.stop()
    assert "Traceback" not in daemon.output()


def post(base: str, body: bytes, token: str | None = None, path: str = "/mcp", host: str | None = None) -> urllib.error.HTTPError | int:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if host is not None:
        headers["Host"] = host
    request = urllib.request.Request(base + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc


def test_the_tokens_file_holds_hashes_only_and_is_owner_only(world: dict) -> None:
    path = world["data_dir"] / "tokens.json"
    text = path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o600
    for token in world["tokens"].values():
        assert token.startswith("ctxd_") and len(token) >= 45
        assert token not in text and token[5:] not in text
    listed = run_cli(world["data_dir"], "token", "list", "--json")
    entries = json.loads(listed.stdout)
    assert {e["tenant"] for e in entries} == {"acme", "globex"} and all("hash" not in e for e in entries)


@pytest.mark.parametrize("path", ["/mcp", "/messages/?session_id=0123456789abcdef0123456789abcdef"])
@pytest.mark.parametrize("token", [None, "ctxd_wrong-token-value-000000000000000000000", "not-even-our-format"])
def test_missing_or_wrong_token_gets_401_and_no_tool_runs(world: dict, path: str, token: str | None) -> None:
    daemon: Daemon = world["daemon"]
    before = len(audit_events(world["data_dir"]))
    refused = post(daemon.base, CALL, token, path)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    assert len(audit_events(world["data_dir"])) == before  # the call never reached a tool


def test_sse_stream_needs_a_token(world: dict) -> None:
    request = urllib.request.Request(world["daemon"].base + "/sse", headers={"Accept": "text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


async def test_tenant_comes_from_the_token(world: dict) -> None:
    base, tokens = world["daemon"].base, world["tokens"]
    # The header naming another project is ignored: the token pins project "api".
    async with http_client(base, tokens["acme"], **{"X-Contextd-Project": "elsewhere"}) as acme:
        mid = data(await acme.call_tool("memory_store", {"title": "Acme deploys on Fridays", "content": "Only after 4pm."}))["id"]
        assert data(await acme.call_tool("memory_get", {"memory_id": mid}))["title"] == "Acme deploys on Fridays"
    line = [e for e in audit_events(world["data_dir"]) if e["tool"] == "memory_store" and e["outcome"] == "ok"][-1]
    assert (line["tenant"], line["project"], line["transport"]) == ("acme", "api", "http")
    assert line["token"] and line["token"] not in tokens["acme"]

    async with http_client(base, tokens["agent"]) as as_agent:
        await as_agent.call_tool("memory_get", {"memory_id": mid})
    assert audit_events(world["data_dir"])[-1]["agent"] == "builder"  # attributed to the token's agent

    async with http_client(base, tokens["globex"]) as globex:
        assert error_text(await globex.call_tool("memory_get", {"memory_id": mid})).startswith("not_found")
        found = data(await globex.call_tool("memory_search", {"query": "deploy on fridays", "scope": "org"}))
        assert found["memories"] == []

    async with sse(base, tokens["acme"]) as over_sse:
        assert data(await over_sse.call_tool("memory_get", {"memory_id": mid}))["id"] == mid
    assert audit_events(world["data_dir"])[-1]["transport"] == "sse"


async def test_read_only_token_cannot_write(world: dict) -> None:
    async with http_client(world["daemon"].base, world["tokens"]["reader"]) as reader:
        refused = error_text(await reader.call_tool("memory_store", {"title": "x", "content": "y"}))
        assert refused.startswith("denied") and "read-only" in refused
        assert "memories" in data(await reader.call_tool("memory_search", {"query": "anything"}))


async def test_new_and_revoked_tokens_apply_without_restart(world: dict) -> None:
    data_dir, base = world["data_dir"], world["daemon"].base
    fresh = create_token(data_dir, "--tenant", "initech", "--name", "temp")
    async with http_client(base, fresh, **{"X-Contextd-Project": "tps"}) as client:
        data(await client.call_tool("memory_store", {"title": "Cover sheets on TPS reports", "content": "Always."}))
    assert audit_events(data_dir)[-1]["project"] == "tps"  # the token pins no project: the header picks it

    revoked = run_cli(data_dir, "token", "revoke", "temp")
    assert revoked.returncode == 0, revoked.stderr
    refused = post(base, INIT, fresh)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    assert "temp" not in run_cli(data_dir, "token", "list").stdout


async def test_an_expired_token_is_refused_without_restart(world: dict) -> None:
    import time

    data_dir, base = world["data_dir"], world["daemon"].base
    short = create_token(data_dir, "--tenant", "acme", "--project", "api", "--name", "short", "--expires-in", "2")
    assert post(base, INIT, short) == 200
    time.sleep(2.2)
    refused = post(base, INIT, short)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    listed = run_cli(data_dir, "token", "list", "--all").stdout
    assert "short" in listed and "expired" in listed


def test_dns_rebinding_is_refused_even_with_a_token(world: dict) -> None:
    refused = post(world["daemon"].base, INIT, world["tokens"]["acme"], host="evil.example:80")
    assert isinstance(refused, urllib.error.HTTPError) and refused.code in (403, 421)


def test_non_loopback_bind_starts_only_with_tokens_and_a_named_host(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path
    port = free_port()
    refused = run_cli(data_dir, "serve", "--http", f"0.0.0.0:{port}", timeout=30)
    assert refused.returncode == 2 and "non-loopback" in refused.stderr and "token create" in refused.stderr

    token = create_token(data_dir, "--tenant", "acme")
    no_host = run_cli(data_dir, "serve", "--http", f"0.0.0.0:{port}", timeout=30)
    assert no_host.returncode == 2 and "--allowed-host" in no_host.stderr

    daemon = start_daemon(data_dir, cwd, "--allowed-host", f"127.0.0.1:{port}", http=f"0.0.0.0:{port}")
    try:
        unauthenticated = post(daemon.base, INIT)
        assert isinstance(unauthenticated, urllib.error.HTTPError) and unauthenticated.code == 401
        assert post(daemon.base, INIT, token) == 200
        other_host = post(daemon.base, INIT, token, host=f"attacker.example:{port}")
        assert isinstance(other_host, urllib.error.HTTPError) and other_host.code in (403, 421)
    finally:
        daemon.stop()
