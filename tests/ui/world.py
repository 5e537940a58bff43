"""A real daemon serving /ui/ with tokens of two tenants, lessons stored over MCP, and a plain
HTTP client for the page (cookie, CSRF token and Origin as a browser sends them)."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import anyio

from tests.e2e.daemons import Daemon, http_client
from tests.helpers import data

PROJECT = {"X-Contextd-Project": "api"}
LESSONS = [
    ("Run alembic upgrade before the API tests", "The API tests need the schema: run `alembic upgrade head` first.",
     ["db", "pytest"]),
    ("Pin the Redis image to 7.2 in CI", "Redis 7.4 changed ACL defaults and broke the cache tests; pin 7.2.", ["ci"]),
    ("Use ruff format, not black", "The repository formats with ruff format; black fights it on trailing commas.", ["style"]),
    ("Do not mock the database in integration tests", "Mocked DB tests passed while the migration was broken.", ["db"]),
]


@dataclass
class World:
    daemon: Daemon
    tokens: dict[str, str]
    ids: dict[str, str]  # title → memory id (acme, project api)

    @property
    def base(self) -> str:
        assert self.daemon.base is not None
        return self.daemon.base


async def store_lessons(base: str, token: str) -> dict[str, str]:
    """Stores LESSONS over MCP, then rates the first one helpful twice from a search (the chart's data)."""
    ids = {}
    async with http_client(base, token, **PROJECT) as client:
        for title, content, tags in LESSONS:
            stored = data(await client.call_tool("memory_store", {"title": title, "content": content, "tags": tags}))
            ids[title] = stored["id"]
        found = data(await client.call_tool("memory_search", {"query": "database schema before API tests"}))
        for hit in found["memories"][:2]:
            data(await client.call_tool("memory_feedback", {"memory_id": hit["id"], "helpful": True}))
    return ids


async def mcp_search(base: str, token: str, query: str) -> list[str]:
    async with http_client(base, token, **PROJECT) as client:
        found = data(await client.call_tool("memory_search", {"query": query, "limit": 20, "min_confidence": 0.0}))
    return [m["title"] for m in found["memories"]]


async def mcp_get(base: str, token: str, memory_id: str) -> Any:
    async with http_client(base, token, **PROJECT) as client:
        result = await client.call_tool("memory_get", {"memory_id": memory_id})
    return None if result.is_error else data(result)


def search(base: str, token: str, query: str) -> list[str]:
    return anyio.run(mcp_search, base, token, query)


def get(base: str, token: str, memory_id: str) -> Any:
    return anyio.run(mcp_get, base, token, memory_id)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def page(base: str, path: str, token: str | None = None, method: str = "GET", form: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one request to the page; redirects are not followed."""
    sent = dict(headers or {})
    if token is not None:
        sent["Cookie"] = f"contextd_ui={token}"
    body = urllib.parse.urlencode(form).encode() if form is not None else None
    if body is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(base + path, data=body, headers=sent, method=method)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def origin(base: str) -> dict[str, str]:
    return {"Origin": base}
