"""The page's defences over plain HTTP, against the real daemon: authentication, CSRF (Origin and
token), DNS rebinding (Host), tenant isolation, security headers, and the audit of its changes."""

from __future__ import annotations

import urllib.parse
from html import escape as html_escape
from typing import Any

import anyio

from tests.e2e.daemons import audit_events, http_client
from tests.helpers import data
from tests.ui.world import LESSONS, PROJECT, World, csrf_of, get, origin, page, search

TITLE = LESSONS[1][0]


def test_a_request_without_a_valid_token_is_refused(world: World) -> None:
    memory_id = world.ids[TITLE]
    for token in (None, "ctxd_not-a-real-token"):
        for path in ("/ui/", "/ui/memories", f"/ui/memories/{memory_id}", "/ui/sessions"):
            status, _, body = page(world.base, path, token)
            assert status == 401, path
            assert TITLE not in body and 'id="login"' in body
    status, _, _ = page(world.base, f"/ui/memories/{memory_id}/delete", None, "POST", {"csrf": "x"}, origin(world.base))
    assert status == 401
    assert get(world.base, world.tokens["acme"], memory_id) is not None


def test_the_cookie_does_not_authenticate_mcp(world: World) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    status, _, _ = page(world.base, "/mcp", world.tokens["acme"], "POST", None,
                        {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    assert status == 401, body


def test_a_cross_origin_post_is_refused(world: World) -> None:
    token, memory_id = world.tokens["acme"], world.ids[TITLE]
    _, _, html = page(world.base, f"/ui/memories/{memory_id}", token)
    csrf = csrf_of(html)
    action = f"/ui/memories/{memory_id}/delete"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):  # another site, a sandboxed frame, none
        status, _, _ = page(world.base, action, token, "POST", {"csrf": csrf}, headers)
        assert status == 403, headers
    for form in ({}, {"csrf": "0" * 64}):  # same origin, but no CSRF token or a forged one
        status, _, _ = page(world.base, action, token, "POST", form, origin(world.base))
        assert status == 403, form
    assert get(world.base, token, memory_id) is not None


def test_a_foreign_host_header_is_refused(world: World) -> None:
    port = urllib.parse.urlsplit(world.base).port
    for host in ("evil.example", f"evil.example:{port}", f"attacker.test:{port}"):
        status, _, body = page(world.base, "/ui/memories", world.tokens["acme"], headers={"Host": host})
        assert status == 421, host
        assert TITLE not in body


def test_another_tenants_memories_are_not_visible(world: World) -> None:
    memory_id = world.ids[TITLE]
    globex = world.tokens["globex"]
    status, _, body = page(world.base, f"/ui/memories/{memory_id}?project=api", globex)
    assert status == 404 and TITLE not in body
    for path in ("/ui/memories", "/ui/memories?project=api", "/ui/memories?q=redis+image&project=api", "/ui/"):
        status, _, body = page(world.base, path, globex)
        assert status == 200 and TITLE not in body, path
    _, _, html = page(world.base, "/ui/memories", globex)
    status, _, _ = page(world.base, f"/ui/memories/{memory_id}/delete", globex, "POST", {"csrf": csrf_of(html)},
                        origin(world.base))
    assert status == 404
    assert get(world.base, world.tokens["acme"], memory_id) is not None


def test_security_headers_on_every_page(world: World) -> None:
    for path in ("/ui/", "/ui/memories", "/ui/login", "/ui/static/ui.js"):
        _, headers, _ = page(world.base, path, world.tokens["acme"])
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["content-security-policy"].startswith("default-src 'self'"), path
        assert "unsafe-inline" not in lower["content-security-policy"]
        assert "frame-ancestors 'none'" in lower["content-security-policy"]
        assert lower["x-frame-options"] == "DENY"


def test_a_read_only_token_cannot_edit(world: World) -> None:
    token, memory_id = world.tokens["reader"], world.ids[LESSONS[2][0]]
    status, _, html = page(world.base, f"/ui/memories/{memory_id}?project=api", token)
    assert status == 200
    status, _, body = page(world.base, f"/ui/memories/{memory_id}/edit", token, "POST",
                           {"csrf": csrf_of(html), "title": "changed by a reader", "project": "api"}, origin(world.base))
    assert status == 400 and "read-only" in body
    assert get(world.base, world.tokens["acme"], memory_id)["title"] == LESSONS[2][0]


def test_an_edit_is_audited_as_the_page(world: World) -> None:
    token, memory_id = world.tokens["acme"], world.ids[LESSONS[3][0]]
    _, _, html = page(world.base, f"/ui/memories/{memory_id}?project=api", token)
    form = {"csrf": csrf_of(html), "project": "api", "title": "Never mock the database in integration tests",
            "description": "", "content": LESSONS[3][1], "tags": "db, testing"}
    status, headers, _ = page(world.base, f"/ui/memories/{memory_id}/edit", token, "POST", form, origin(world.base))
    assert status == 303, headers
    got = get(world.base, token, memory_id)
    assert got["title"] == form["title"] and got["tags"] == ["db", "testing"]
    assert "Never mock the database in integration tests" in search(world.base, token, "mocking the database")
    events = [e for e in audit_events(world.daemon.data_dir) if e.get("tool") == "ui.memory_update"]
    assert events and events[-1]["tenant"] == "acme" and events[-1]["outcome"] == "ok"
    assert events[-1]["transport"] == "ui"


def test_merge_folds_a_near_duplicate_into_the_kept_memory(world: World) -> None:
    token = world.tokens["acme"]
    keep, drop = anyio.run(_two_duplicates, world.base, token)
    _, _, html = page(world.base, f"/ui/memories/{keep}?project=api", token)
    assert f'name="drop" value="{drop}"' in html  # offered as a near duplicate
    form = {"csrf": csrf_of(html), "keep": keep, "drop": drop, "project": "api"}
    status, _, _ = page(world.base, "/ui/memories/merge", token, "POST", form, origin(world.base))
    assert status == 303
    assert get(world.base, token, drop) is None
    kept = get(world.base, token, keep)
    assert kept["helpful_count"] == 1  # the dropped one's rating moved over
    assert set(kept["tags"]) == {"docker", "cache", "ci"}
    events = [e for e in audit_events(world.daemon.data_dir) if e.get("tool") == "ui.memory_merge"]
    assert events and events[-1]["outcome"] == "ok"


async def _two_duplicates(base: str, token: str) -> tuple[str, str]:
    async with http_client(base, token, **PROJECT) as client:
        a = data(await client.call_tool("memory_store", {
            "title": "Clear the docker build cache when CI images go stale",
            "content": "Stale layers kept an old lockfile; docker builder prune fixed the CI image.", "tags": ["docker", "cache"]}))
        b = data(await client.call_tool("memory_store", {
            "title": "Prune the docker build cache when the CI image is stale",
            "content": "An old lockfile survived in cached layers; run docker builder prune.", "tags": ["docker", "ci"]}))
        data(await client.call_tool("memory_search", {"query": "stale docker image in CI"}))
        data(await client.call_tool("memory_feedback", {"memory_id": b["id"], "helpful": True}))
    return a["id"], b["id"]


def test_the_session_timeline_shows_what_was_injected_and_distilled(world: World) -> None:
    token = world.tokens["acme"]
    started, ended = anyio.run(_a_session, world.base, token)
    assert started["memories"], "nothing was injected: the fixture's lessons should match the task"
    status, _, body = page(world.base, f"/ui/sessions/{started['session_id']}?project=api", token)
    assert status == 200
    for memory in started["memories"]:
        assert html_escape(memory["title"]) in body
    assert ended["job_id"] and ended["job_id"] in body
    status, _, body = page(world.base, "/ui/sessions", token)
    assert started["session_id"] in body


async def _a_session(base: str, token: str) -> tuple[Any, Any]:
    async with http_client(base, token, **PROJECT) as client:
        started = data(await client.call_tool("session_start", {"task": "the cache tests fail on the Redis image in CI"}))
        ended = data(await client.call_tool("session_end", {
            "session_id": started["session_id"], "outcome": "success", "summary": "Pinned Redis to 7.2.",
            "learnings": [{"title": "Pin Redis in CI", "description": "Pin the image.", "content": "Pin redis:7.2 in CI.",
                           "outcome": "success"}]}))
    return started, ended


def test_an_oversized_form_is_refused_unread(world: World) -> None:
    token, memory_id = world.tokens["acme"], world.ids[LESSONS[1][0]]
    _, _, html = page(world.base, f"/ui/memories/{memory_id}?project=api", token)
    form = {"csrf": csrf_of(html), "project": "api", "title": "x", "content": "y" * (128 * 1024)}
    status, _, _ = page(world.base, f"/ui/memories/{memory_id}/edit", token, "POST", form, origin(world.base))
    assert status == 413
    assert get(world.base, token, memory_id)["title"] == LESSONS[1][0]
    form = {"csrf": csrf_of(html), "project": "api", "content": "z" * 9000}  # within the form cap, over the field's
    status, _, body = page(world.base, f"/ui/memories/{memory_id}/edit", token, "POST", form, origin(world.base))
    assert status == 400 and "content: at most 8000 characters" in body


def test_a_skill_is_edited_and_deleted_through_its_tools(world: World) -> None:
    token = world.tokens["acme"]
    skill_id = anyio.run(_a_skill, world.base, token, "skill_create", {
        "name": "review-migration", "description": "Review a migration.", "prompt_template": "Review {{file}}."})["id"]
    status, _, html = page(world.base, "/ui/kind/skills", token)
    assert status == 200 and "review-migration" in html
    _, _, html = page(world.base, f"/ui/kind/skills/{skill_id}", token)
    form = {"csrf": csrf_of(html), "description": "Review a migration for locks.", "prompt_template": "Review {{file}} now."}
    status, _, _ = page(world.base, f"/ui/kind/skills/{skill_id}/edit", token, "POST", form, origin(world.base))
    assert status == 303
    got = anyio.run(_a_skill, world.base, token, "skill_get", {"skill_id": skill_id, "scope": "org"})
    assert got["description"] == form["description"] and got["prompt_template"] == form["prompt_template"]
    status, _, _ = page(world.base, f"/ui/kind/skills/{skill_id}/delete", token, "POST", {"csrf": form["csrf"]},
                        origin(world.base))
    assert status == 303
    assert anyio.run(_a_skill, world.base, token, "skill_get", {"skill_id": skill_id, "scope": "org"}) is None
    tools = [e.get("tool") for e in audit_events(world.daemon.data_dir)]
    assert "ui.skill_update" in tools and "ui.skill_delete" in tools


async def _a_skill(base: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with http_client(base, token, **PROJECT, **{"X-Contextd-Toolsets": "all"}) as client:
        result = await client.call_tool(tool, arguments)
    return None if result.is_error else data(result)
