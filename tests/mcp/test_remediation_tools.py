"""Remediation tools through a real MCP client, on the real store and model."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.models.scope import Scope
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio

FIXES = {
    "yaml": (
        "ModuleNotFoundError: No module named 'yaml'",
        'Traceback (most recent call last):\n  File "/srv/ledger/ledger/cli.py", line 562, in <module>\n'
        "    import yaml\nModuleNotFoundError: No module named 'yaml'",
        "Install the PyYAML distribution: python -m pip install PyYAML, and declare it.",
    ),
    "requests": (
        "ModuleNotFoundError: No module named 'requests'",
        'Traceback (most recent call last):\n  File "/builds/hooli/webapp/billing.py", line 71, in <module>\n'
        "    import requests\nModuleNotFoundError: No module named 'requests'",
        "Activate the virtualenv and python -m pip install requests into that interpreter.",
    ),
    "pg": (
        "connect ECONNREFUSED 127.0.0.1:5432 from a Node app in Docker",
        "Error: connect ECONNREFUSED 127.0.0.1:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",
        "Inside a container localhost is the container itself: connect to the compose service name (db:5432).",
    ),
    "redis": (
        "[ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379",
        "[ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379\n    at TCPConnectWrap.afterConnect",
        "Start Redis (docker run -p 6379:6379 redis:7) or point REDIS_URL at the running instance.",
    ),
    "eresolve": (
        "npm ERR! code ERESOLVE unable to resolve dependency tree",
        "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! Found: react@18.2.0\n"
        "npm ERR! Could not resolve dependency:\nnpm ERR! peer react@\"^17.0.0\" from react-dom@17.0.2",
        "Align the peer versions (upgrade react-dom to 18) rather than --legacy-peer-deps.",
    ),
    "borrow": (
        "Rust E0382: borrow of moved value",
        "error[E0382]: borrow of moved value: `order`\n  --> src/main.rs:14:20\n   |\n12 |     let total = consume(order);",
        "Pass a reference (&order) or clone before the move.",
    ),
}

REWORDED = {
    "yaml": "2025-01-02T10:00:00.1230000Z E   ModuleNotFoundError: No module named 'yaml'\n"
    "2025-01-02T10:00:00.2000000Z tests/test_sync.py:3: in <module>",
    "requests": '  File "/Users/mkhan/code/etl/etl/io.py", line 9, in <module>\n    import requests\n'
    "ModuleNotFoundError: No module named 'requests'",
    "pg": "db error: Error: connect ECONNREFUSED 127.0.0.1:5432\n  errno: -111, code: 'ECONNREFUSED', port: 5432",
    "redis": "[ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379 (pid 4242)",
    "eresolve": "npm error code ERESOLVE\nnpm error ERESOLVE could not resolve\nnpm error peer react@\"^16.8.0\" from some-lib@2.1.0",
    "borrow": "error[E0382]: use of moved value: `config`\n --> src/server.rs:88:9",
}


async def record(client: Any, key: str, **extra: Any) -> dict[str, Any]:
    title, problem, solution = FIXES[key]
    args = {"title": title, "problem": problem, "solution": solution, **extra}
    return data(await client.call_tool("remediation_record", args))


async def search(client: Any, error: str, **extra: Any) -> list[dict[str, Any]]:
    return data(await client.call_tool("remediation_search", {"error": error, **extra}))["remediations"]


async def test_tools_are_listed_with_capped_schemas(client: Any) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"remediation_record", "remediation_search", "remediation_feedback", "remediation_get"} <= set(tools)
    schema = tools["remediation_record"].input_schema
    assert schema["required"] == ["title", "problem", "solution"]
    assert schema["properties"]["problem"]["maxLength"] == 8000
    assert tools["remediation_search"].annotations.read_only_hint is True


async def test_record_then_find_with_reworded_errors(client: Any) -> None:
    ids = {key: (await record(client, key))["id"] for key in FIXES}
    for key, error in REWORDED.items():
        hits = await search(client, error)
        assert hits and hits[0]["id"] == ids[key], (key, [h["title"] for h in hits])
    top = (await search(client, REWORDED["pg"], limit=2))[0]
    assert top["solution"].startswith("Inside a container localhost")
    assert 0 < top["relevance"] <= 1 and top["confidence"] == pytest.approx(0.6667, abs=1e-3)
    assert top["category"] == "network" and top["scope"] == "project"


async def test_category_is_inferred_or_taken_and_filters_search(client: Any) -> None:
    yaml = await record(client, "yaml")
    assert (yaml["category"], yaml["category_inferred"]) == ("dependency", True)
    borrow = await record(client, "borrow", category="build", tags=["Rust"])
    assert (borrow["category"], borrow["category_inferred"]) == ("build", False)
    assert [h["id"] for h in await search(client, REWORDED["borrow"], category="dependency")] == [yaml["id"]]
    full = data(await client.call_tool("remediation_get", {"remediation_id": borrow["id"]}))
    assert full["tags"] == ["rust"] and full["problem"].startswith("error[E0382]")


async def test_same_record_twice_is_one_record(client: Any) -> None:
    first = await record(client, "yaml")
    second = await record(client, "yaml")
    assert second["id"] == first["id"] and second["duplicate_of_existing"] is True


async def test_feedback_moves_confidence_and_ranking(client: Any) -> None:
    title, problem, _ = FIXES["pg"]
    fixes = []
    for solution in ("Use host.docker.internal instead of localhost.", "Use the compose service name, db:5432."):
        args = {"title": title, "problem": problem, "solution": solution}
        fixes.append(data(await client.call_tool("remediation_record", args))["id"])
    await record(client, "redis")
    before = [h["id"] for h in await search(client, REWORDED["pg"])]
    assert set(before[:2]) == set(fixes)
    first, second = before[0], before[1]

    up = data(await client.call_tool("remediation_feedback", {"remediation_id": second, "helpful": True}))
    down = data(await client.call_tool("remediation_feedback", {"remediation_id": first, "helpful": False}))
    assert up["confidence"] > 0.6667 > down["confidence"] and not down["hidden_from_search"]
    after = await search(client, REWORDED["pg"])
    assert [h["id"] for h in after[:2]] == [second, first]
    assert after[0]["confidence"] == up["confidence"]
    # Confidence reorders fixes of the same error; it does not lift another error's fix above them.
    for _ in range(3):
        await client.call_tool("remediation_feedback", {"remediation_id": after[-1]["id"], "helpful": True})
    assert [h["id"] for h in (await search(client, REWORDED["pg"]))[:2]] == [second, first]

    for _ in range(4):
        hidden = data(await client.call_tool("remediation_feedback", {"remediation_id": first, "helpful": False}))
    assert hidden["hidden_from_search"] is True
    assert first not in [h["id"] for h in await search(client, REWORDED["pg"])]
    counts = data(await client.call_tool("remediation_get", {"remediation_id": first}))
    assert (counts["helpful_count"], counts["unhelpful_count"]) == (0, 5)


async def test_secrets_are_redacted_before_storing(client: Any) -> None:
    key = "AKIA" + "Q3ZRT7WMX2LPVB4N"
    problem = f"botocore.exceptions.ClientError: InvalidAccessKeyId for key {key}"
    rid = data(
        await client.call_tool("remediation_record", {"title": "InvalidAccessKeyId", "problem": problem, "solution": "Rotate the key."})
    )["id"]
    stored = data(await client.call_tool("remediation_get", {"remediation_id": rid}))
    assert key not in stored["problem"] and "[REDACTED" in stored["problem"]


async def test_scopes_isolate_unless_widened(container: Container, client: Any) -> None:
    from mcp import Client

    rid = (await record(client, "eresolve"))["id"]
    sibling = Caller(scope=Scope(tenant="acme", team="core", project="web"), transport="memory")
    stranger = Caller(scope=Scope(tenant="other", team="core", project="api"), transport="memory")
    for caller, widened_sees in ((sibling, True), (stranger, False)):
        token = CURRENT_CALLER.set(caller)
        try:
            async with Client(container.server()) as other:
                assert await search(other, REWORDED["eresolve"]) == []
                wide = await search(other, REWORDED["eresolve"], scope="org")
                assert ([h["id"] for h in wide] == [rid]) is widened_sees
                got = await other.call_tool("remediation_feedback", {"remediation_id": rid, "helpful": True, "scope": "org"})
                assert got.is_error is not widened_sees
                assert "not_found" in error_text(await other.call_tool("remediation_get", {"remediation_id": rid}))
        finally:
            CURRENT_CALLER.reset(token)


UNKNOWN = str(uuid.uuid4())
BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("remediation_record", {"title": "t", "problem": "p"}, ["solution: is required"]),
    ("remediation_record", {"title": "t", "problem": "p" * 8001, "solution": "s"}, ["problem:", "at most 8000"]),
    ("remediation_record", {"title": "t", "problem": "p", "solution": "s", "category": "plumbing"}, ["category:", "'build'"]),
    ("remediation_record", {"title": "t", "problem": "p", "solution": "s", "symptoms": ["x"] * 11}, ["symptoms:", "at most 10"]),
    ("remediation_record", {"title": " ", "problem": "p", "solution": "s"}, ["title:", "at least 1"]),
    ("remediation_record", {"title": "t", "problem": "p", "solution": "s", "tags": ["bad tag"]}, ["tags:", "must be letters"]),
    ("remediation_search", {}, ["error: is required"]),
    ("remediation_search", {"error": "e" * 16001}, ["error:", "at most 16000"]),
    ("remediation_search", {"error": "e", "limit": 0}, ["limit:", "greater than or equal to 1"]),
    ("remediation_search", {"error": "e", "scope": "galaxy"}, ["scope:"]),
    ("remediation_search", {"error": "e", "bogus": True}, ["bogus: is not a parameter"]),
    ("remediation_feedback", {"remediation_id": UNKNOWN}, ["helpful: is required"]),
    ("remediation_feedback", {"remediation_id": UNKNOWN, "helpful": True}, ["not_found", UNKNOWN]),
    ("remediation_get", {"remediation_id": "not-a-uuid"}, ["not_found"]),
]


@pytest.mark.parametrize(("tool", "arguments", "fragments"), BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD)])
async def test_bad_input_is_a_clear_error(client: Any, tool: str, arguments: dict[str, Any], fragments: list[str]) -> None:
    text = error_text(await client.call_tool(tool, arguments))
    for fragment in fragments:
        assert fragment in text, text
