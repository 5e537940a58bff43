"""Memory tools through a real MCP client, on the real store and model."""

from __future__ import annotations

from typing import Any

import pytest

from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio


async def store(client: Any, title: str, content: str, **extra: Any) -> str:
    return data(await client.call_tool("memory_store", {"title": title, "content": content, **extra}))["id"]


async def test_lists_all_memory_tools_with_schemas(client: Any) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"memory_store", "memory_search", "memory_get", "memory_feedback", "memory_outcome"} <= set(tools)
    store_schema = tools["memory_store"].input_schema
    assert store_schema["required"] == ["title", "content"]
    assert store_schema["properties"]["title"]["maxLength"] == 200
    assert tools["memory_search"].annotations.read_only_hint is True
    # Output schemas stay out of tools/list (tokens); results are still structured.
    assert tools["memory_store"].output_schema is None


async def test_store_search_get_roundtrip(client: Any) -> None:
    mid = await store(
        client,
        "Pin the Postgres image tag in docker-compose",
        "Using postgres:latest broke CI when 17 shipped; pin postgres:16.4 and bump on purpose.",
        tags=["Docker", "postgres"],
    )
    await store(client, "Prefer f-strings for logging? No", "Use logger.info('%s', x) so formatting is lazy.")
    hits = data(await client.call_tool("memory_search", {"query": "CI broke after the database container upgraded"}))
    assert hits["memories"][0]["id"] == mid
    top = hits["memories"][0]
    # A preview: what it takes to choose, scores at two decimals, no nulls, no default outcome
    # (a strategy); the rest via memory_get.
    assert set(top) == {"id", "title", "description", "confidence", "score"}
    assert 0 < top["score"] <= 1 and 0 < top["confidence"] <= 1
    assert top["confidence"] == round(top["confidence"], 2) and top["score"] == round(top["score"], 2)
    memory = data(await client.call_tool("memory_get", {"memory_id": mid}))
    assert memory["tags"] == ["docker", "postgres"]
    assert memory["content"].startswith("Using postgres:latest")
    assert memory["description"] == "Using postgres:latest broke CI when 17 shipped; pin postgres:16.4 and bump on purpose."
    assert memory["outcome"] == "success" and memory["origin"] == "stored"


async def test_identical_store_returns_the_existing_memory(client: Any) -> None:
    first = data(await client.call_tool("memory_store", {"title": "A", "content": "Same lesson."}))
    second = data(await client.call_tool("memory_store", {"title": "A", "content": "Same lesson."}))
    assert second["id"] == first["id"] and second["duplicate_of_existing"] is True


async def test_feedback_moves_confidence_and_unhelpful_hides(client: Any) -> None:
    mid = await store(client, "Cache node_modules keyed on the lockfile hash", "Key the CI cache on package-lock.json.")
    start = data(await client.call_tool("memory_get", {"memory_id": mid}))["confidence"]
    up = data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": True}))
    assert up["confidence"] > start and up["hidden_from_search"] is False
    query = {"query": "speed up npm installs in CI with caching"}
    assert [h["id"] for h in data(await client.call_tool("memory_search", query))["memories"]] == [mid]

    down = up
    for _ in range(7):  # Beta(3, 1) needs 7 misses to fall under 0.3: 3 / 11
        down = data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": False}))
    assert down["confidence"] < 0.3 and down["hidden_from_search"] is True
    assert data(await client.call_tool("memory_search", query))["memories"] == []
    # Still readable by id, and visible when asked for explicitly.
    lowered = data(await client.call_tool("memory_search", {**query, "min_confidence": 0.0}))
    assert [h["id"] for h in lowered["memories"]] == [mid]


async def test_new_memory_leaves_search_after_four_unhelpful(client: Any) -> None:
    mid = await store(client, "Use git worktree for parallel branches", "git worktree add ../b feature-b.")
    results = []
    for _ in range(4):
        results.append(data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": False})))
    assert [r["hidden_from_search"] for r in results] == [False, False, False, True]


async def test_confidence_breaks_ties_between_similar_memories(client: Any) -> None:
    a = await store(client, "Retry flaky network calls with backoff", "Wrap HTTP calls in exponential backoff retries.")
    b = await store(client, "Retry flaky HTTP requests with backoff", "Use exponential backoff when HTTP calls fail.")
    for _ in range(3):
        await client.call_tool("memory_feedback", {"memory_id": b, "helpful": True})
    await client.call_tool("memory_feedback", {"memory_id": a, "helpful": False})
    hits = data(await client.call_tool("memory_search", {"query": "HTTP requests fail intermittently, retry them"}))
    assert [h["id"] for h in hits["memories"][:2]] == [b, a]


async def test_outcome_is_weaker_than_feedback(client: Any) -> None:
    mid = await store(client, "Run migrations before deploy", "Apply DB migrations in a pre-deploy job.")
    base = data(await client.call_tool("memory_get", {"memory_id": mid}))["confidence"]
    after_outcome = data(await client.call_tool("memory_outcome", {"memory_id": mid, "succeeded": True}))["confidence"]
    after_feedback = data(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": True}))["confidence"]
    assert base < after_outcome < after_feedback
    memory = data(await client.call_tool("memory_get", {"memory_id": mid}))
    assert (memory["uses_succeeded"], memory["helpful_count"]) == (1, 1)


async def test_filters_outcome_and_tags(client: Any) -> None:
    good = await store(client, "Use pytest tmp_path for files", "tmp_path gives each test its own directory.", tags=["pytest"])
    bad = await store(
        client, "Writing test files into the repo", "Tests that write into the repo leak state.", outcome="failure", tags=["pytest"]
    )
    await store(client, "Use tmp dirs in Go tests", "t.TempDir() cleans up after itself.", tags=["go"])
    query = "tests writing temporary files"
    failures = data(await client.call_tool("memory_search", {"query": query, "outcome": "failure"}))["memories"]
    assert [h["id"] for h in failures] == [bad]
    tagged = data(await client.call_tool("memory_search", {"query": query, "tags": ["pytest"]}))["memories"]
    assert {h["id"] for h in tagged} == {good, bad}


async def test_projects_are_isolated_unless_widened(container: Container, client: Any) -> None:
    from mcp import Client

    mid = await store(client, "Use ruff for lint and format", "ruff replaces flake8, isort and black.")
    sibling = Caller(scope=Scope(tenant="acme", team="core", project="web"), transport="memory")
    stranger = Caller(scope=Scope(tenant="other", team="core", project="api"), transport="memory")
    query = {"query": "which python linter and formatter"}
    for caller, widened_sees in ((sibling, True), (stranger, False)):
        token = CURRENT_CALLER.set(caller)
        try:
            async with Client(container.server()) as other:
                assert data(await other.call_tool("memory_search", query))["memories"] == []
                assert "not_found" in error_text(await other.call_tool("memory_get", {"memory_id": mid}))
                wide = data(await other.call_tool("memory_search", {**query, "scope": "org"}))["memories"]
                assert ([h["id"] for h in wide] == [mid]) is widened_sees
                assert all(h["scope"] == "team" for h in wide)  # named only when not this project's
                got = await other.call_tool("memory_get", {"memory_id": mid, "scope": "org"})
                assert got.is_error is not widened_sees
                if widened_sees:
                    assert data(got)["scope"] == "team"
        finally:
            CURRENT_CALLER.reset(token)
