"""Every tool refuses bad input with an error naming the field and rule, and keeps serving."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio

UNKNOWN = str(uuid.uuid4())

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # (tool, arguments, fragments the error must contain)
    ("memory_store", {"content": "x"}, ["title: is required"]),
    ("memory_store", {"title": 5, "content": "x"}, ["title:", "string"]),
    ("memory_store", {"title": "t" * 201, "content": "x"}, ["title:", "at most 200 characters"]),
    ("memory_store", {"title": "t", "content": "c" * 8001}, ["content:", "at most 8000 characters"]),
    ("memory_store", {"title": "t", "content": "c", "description": "d" * 501}, ["description:", "at most 500"]),
    ("memory_store", {"title": "t", "content": "c", "outcome": "maybe"}, ["outcome:", "'success' or 'failure'"]),
    ("memory_store", {"title": "t", "content": "c", "tags": ["ok"] * 17}, ["tags:", "at most 16 items"]),
    ("memory_store", {"title": "t", "content": "c", "tags": ["bad tag!"]}, ["tags:", "must be letters"]),
    ("memory_store", {"title": "t", "content": "c", "tags": ["x" * 49]}, ["tags.0:", "at most 48"]),
    ("memory_store", {"title": "   ", "content": "c"}, ["title:", "at least 1 character"]),
    ("memory_store", {"title": "t", "content": "c", "bogus": 1}, ["bogus: is not a parameter"]),
    ("memory_search", {}, ["query: is required"]),
    ("memory_search", {"query": "q" * 2001}, ["query:", "at most 2000"]),
    ("memory_search", {"query": "q", "limit": 0}, ["limit:", "greater than or equal to 1"]),
    ("memory_search", {"query": "q", "limit": 21}, ["limit:", "less than or equal to 20"]),
    ("memory_search", {"query": "q", "limit": "many"}, ["limit:", "integer"]),
    ("memory_search", {"query": "q", "min_confidence": 1.5}, ["min_confidence:", "less than or equal to 1"]),
    ("memory_search", {"query": "q", "scope": "universe"}, ["scope:", "'project', 'team' or 'org'"]),
    ("memory_get", {}, ["memory_id: is required"]),
    ("memory_get", {"memory_id": ["a"]}, ["memory_id:", "string"]),
    ("memory_get", {"memory_id": "x" * 65}, ["memory_id:", "at most 64"]),
    ("memory_get", {"memory_id": UNKNOWN}, ["not_found", UNKNOWN]),
    ("memory_get", {"memory_id": "not-a-uuid"}, ["not_found"]),
    ("memory_feedback", {"memory_id": UNKNOWN}, ["helpful: is required"]),
    ("memory_feedback", {"memory_id": UNKNOWN, "helpful": "very"}, ["helpful:", "boolean"]),
    ("memory_feedback", {"memory_id": UNKNOWN, "helpful": True}, ["not_found"]),
    ("memory_feedback", {"memory_id": UNKNOWN, "helpful": True, "comment": "c" * 1001}, ["comment:", "at most 1000"]),
    ("memory_outcome", {"memory_id": UNKNOWN}, ["succeeded: is required"]),
    ("memory_outcome", {"memory_id": UNKNOWN, "succeeded": False}, ["not_found"]),
    ("no_such_tool", {}, ["not_found", "unknown tool"]),
]


@pytest.mark.parametrize(("tool", "arguments", "fragments"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_call_is_a_clear_tool_error(client: Any, tool: str, arguments: dict[str, Any], fragments: list[str]) -> None:
    text = error_text(await client.call_tool(tool, arguments))
    for fragment in fragments:
        assert fragment in text, text


async def test_bad_calls_leave_stored_data_untouched_and_server_serving(client: Any) -> None:
    mid = data(await client.call_tool("memory_store", {"title": "Keep me", "content": "Intact content."}))["id"]
    before = data(await client.call_tool("memory_get", {"memory_id": mid}))
    for tool, arguments, _ in CASES:
        assert (await client.call_tool(tool, arguments)).is_error
    # Rejected calls that name the real id must not move anything either.
    for arguments in ({"helpful": "very"}, {"helpful": True, "comment": "c" * 1001}, {"helpful": True, "x": 1}):
        assert (await client.call_tool("memory_feedback", {"memory_id": mid, **arguments})).is_error
    assert (await client.call_tool("memory_outcome", {"memory_id": mid, "succeeded": None})).is_error
    after = data(await client.call_tool("memory_get", {"memory_id": mid}))
    assert after["confidence"] == before["confidence"] and after["helpful_count"] == 0
    assert after["content"] == "Intact content."


async def test_rejected_value_is_not_echoed(client: Any) -> None:
    secret_like = "hunter2-" + "z" * 300
    text = error_text(await client.call_tool("memory_store", {"title": secret_like, "content": "c"}))
    assert "hunter2" not in text
