"""What a client without a valid token is told, over real HTTP: that a bearer token is needed and
how to make one, never an OAuth server that does not exist (clients then chase its metadata)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.daemons import Daemon, http_client, serving_http, sse

pytestmark = pytest.mark.anyio

INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}'
)
WRONG = "ctxd_wrong-token-value-000000000000000000000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    with serving_http(tmp_path_factory.mktemp("autherr"), "--tenant", "acme") as (daemon, token, _):
        yield daemon, token


@pytest.fixture
def daemon(world: tuple[Daemon, str]) -> Daemon:
    return world[0]


def request(base: str, path: str, token: str | None) -> urllib.error.HTTPError | int:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = None if path == "/sse" or path.startswith("/.well-known") else INIT  # POST for /register too
    method = "GET" if body is None else "POST"
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, body, headers, method=method), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc


def challenge(header: str) -> dict[str, str]:
    """RFC 6750 ``Bearer k="v", ...`` as a dict; fails on any other scheme."""
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/messages/?session_id=0123456789abcdef0123456789abcdef"])
@pytest.mark.parametrize("token", [None, WRONG], ids=["no-token", "wrong-token"])
def test_a_401_says_a_bearer_token_is_needed_and_how_to_make_one(daemon: Daemon, path: str, token: str | None) -> None:
    refused = request(daemon.base, path, token)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    params = challenge(refused.headers["WWW-Authenticate"])
    assert params["error"] == "invalid_token"
    assert "contextd-mcp token create" in params["error_description"]
    assert "resource_metadata" not in params  # no OAuth discovery to chase
    # A JSON-RPC error: the MCP SDK clients show its message as the failed request's error.
    error = json.loads(refused.read())["error"]
    assert "contextd-mcp token create" in error["message"]
    said = "no bearer token" if token is None else "not valid"
    assert said in error["message"] and said in params["error_description"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/sse",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/register",  # where Claude Code registers an OAuth client when it finds no metadata
    ],
)
def test_no_oauth_metadata_is_published_and_a_guess_is_told_what_to_do(daemon: Daemon, path: str) -> None:
    missing = request(daemon.base, path, None)
    assert isinstance(missing, urllib.error.HTTPError) and missing.code == 404
    said = missing.read().decode()
    assert "not OAuth" in said and "contextd-mcp token create" in said


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.parametrize("token", [None, WRONG], ids=["no-token", "wrong-token"])
async def test_the_python_sdk_client_says_what_to_do(daemon: Daemon, transport: str, token: str | None) -> None:
    """The SDK client fails at once; over Streamable HTTP it shows the body's message, over SSE
    (httpx raising on the stream's status) the 401."""
    with pytest.raises(Exception) as failed:
        if transport == "http":
            async with http_client(daemon.base, token) as client:
                await client.list_tools()
        else:
            async with sse(daemon.base, token) as client:
                await client.list_tools()
    said = _flatten(failed.value)
    assert ("contextd-mcp token create" in said) if transport == "http" else ("401" in said), said


def _flatten(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return " | ".join(_flatten(e) for e in inner)
    return f"{type(exc).__name__}: {exc}"


def test_a_valid_token_still_passes(world: tuple[Daemon, str]) -> None:
    daemon, token = world
    assert request(daemon.base, "/mcp", token) == 200
