"""Session and checkpoint tools through the real MCP client (in-process), on the real store."""

from __future__ import annotations

from typing import Any

import pytest

from contextd_mcp.container import Container
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio


async def call(client: Any, tool: str, **arguments: Any) -> Any:
    return data(await client.call_tool(tool, arguments))


def distill_all(container: Container) -> None:
    while container.distill.run_once():
        pass


async def test_a_session_with_nothing_to_distil_queues_nothing_and_says_so(client: Any, container: Container) -> None:
    started = await call(client, "session_start", task="read the code")
    ended = await call(client, "session_end", session_id=started["session_id"], outcome="success")
    assert ended["job_id"] is None and ended["state"] == "nothing_new"
    assert ended["note"] == "nothing queued: no summary, no learnings, and no transcript"
    assert not container.distill.run_once()  # no job was queued
    again = await client.call_tool("session_end", {"session_id": started["session_id"], "outcome": "success"})
    assert again.is_error and "already ended (nothing was distilled)" in again.content[0].text


async def test_a_lesson_of_one_session_is_injected_into_the_next(client: Any, container: Container) -> None:
    first = await call(client, "session_start", task="make the S3 upload tests pass after the boto3 upgrade")
    assert first["memories"] == [] and first["injection_tokens"] > 0
    ended = await call(
        client, "session_end", session_id=first["session_id"], outcome="success",
        summary="Use ChecksumAlgorithm='SHA256' instead of ContentMD5 on put_object: boto3 1.36 rejects ContentMD5.",
    )
    assert ended == {"session_id": first["session_id"], "job_id": ended["job_id"], "state": "queued", "note": None}
    assert (await call(client, "distill_status", job_id=ended["job_id"]))["state"] == "pending"
    distill_all(container)
    status = await call(client, "distill_status", job_id=ended["job_id"])
    assert status["state"] == "done" and len(status["memories_created"]) == 1
    later = await call(client, "session_start", task="S3 put_object fails after upgrading boto3")
    assert [m["id"] for m in later["memories"]] == status["memories_created"]
    assert "ChecksumAlgorithm" in later["injected_context"] and later["injection_tokens"] < 500
    memory = await call(client, "memory_get", memory_id=status["memories_created"][0])
    assert memory["origin"] == "distilled" and memory["outcome"] == "success"


async def test_a_failed_session_yields_an_anti_pattern(client: Any, container: Container) -> None:
    session = await call(client, "session_start")
    ended = await call(
        client, "session_end", session_id=session["session_id"], outcome="failure",
        summary="The release broke because the migration locked the orders table for ten minutes. "
        "Create indexes CONCURRENTLY on large tables.",
    )
    distill_all(container)
    (memory_id,) = (await call(client, "distill_status", job_id=ended["job_id"]))["memories_created"]
    memory = await call(client, "memory_get", memory_id=memory_id)
    assert memory["outcome"] == "failure" and memory["title"].startswith("Avoid:")
    assert "How to avoid it: Create indexes CONCURRENTLY" in memory["content"]
    found = await call(client, "memory_search", query="migration locks a big table", outcome="failure")
    assert found["memories"][0]["id"] == memory_id
    assert found["memories"][0]["outcome"] == "failure"  # a preview names an anti-pattern as such


async def test_learnings_handed_over_are_kept(client: Any, container: Container) -> None:
    session = await call(client, "session_start")
    ended = await call(client, "session_end", session_id=session["session_id"], outcome="partial", learnings=[
        {"title": "Pin the base image by digest", "content": "Tags move; a digest makes builds reproducible.",
         "outcome": "success"},
        {"title": "Building on the latest tag", "content": "A new base image broke the build without a code change.",
         "outcome": "failure"},
    ])
    distill_all(container)
    ids = (await call(client, "distill_status", job_id=ended["job_id"]))["memories_created"]
    titles = [(await call(client, "memory_get", memory_id=i))["title"] for i in ids]
    assert titles == ["Pin the base image by digest", "Building on the latest tag"]


async def test_session_errors_are_clear(client: Any) -> None:
    text = error_text(await client.call_tool(
        "session_end", {"session_id": "7e0a3c1d-0000-4000-8000-000000000000", "outcome": "success"}))
    assert text.startswith("not_found: session '7e0a3c1d")
    session = await call(client, "session_start")
    await call(client, "session_end", session_id=session["session_id"], outcome="success")
    text = error_text(await client.call_tool("session_end", {"session_id": session["session_id"], "outcome": "success"}))
    assert text.startswith("conflict:") and "already ended" in text
    text = error_text(await client.call_tool("checkpoint_save", {"summary": "x", "session_id": session["session_id"]}))
    assert "already ended" in text
    # The in-process client has no connection id, so there is no "current session" to default to.
    assert "not_found" in error_text(await client.call_tool("session_end", {"outcome": "success"}))
    assert "not_found" in error_text(await client.call_tool("distill_status", {"job_id": "nope"}))


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("session_end", {"session_id": "s", "outcome": "great"}, "outcome: Input should be 'success', 'failure' or 'partial'"),
        ("session_end", {"outcome": "success", "transcript_path": "/etc/passwd"}, "transcript_path: is not a parameter"),
        ("session_end", {"outcome": "success", "learnings": [{"title": "t", "content": "c"}] * 4}, "learnings: List should have at most 3"),
        ("session_end", {"outcome": "success", "summary": "x" * 4001}, "summary: String should have at most 4000"),
        ("session_start", {"task": "x" * 2001}, "task: String should have at most 2000"),
        ("checkpoint_save", {"summary": ""}, "summary: String should have at least 1"),
        ("checkpoint_resume", {"checkpoint_id": "c", "level": "everything"}, "level: Input should be 'summary', 'context' or 'full'"),
        ("checkpoint_list", {"limit": 51}, "limit: Input should be less than or equal to 50"),
    ],
)
async def test_bad_input_names_the_field(client: Any, tool: str, arguments: dict[str, Any], expected: str) -> None:
    text = error_text(await client.call_tool(tool, arguments))
    assert text.startswith("invalid_input:") and expected in text


async def test_checkpoint_save_list_resume_at_three_levels(client: Any) -> None:
    session = await call(client, "session_start")
    first = await call(client, "checkpoint_save", summary="Started the upload fix.", session_id=session["session_id"])
    second = await call(
        client, "checkpoint_save", summary="Upload fix done; mypy stubs next.",
        context="Decided: ChecksumAlgorithm=SHA256.", full_state="Files: storage.py\nLog: 3 passed", tags=["s3"],
        session_id=session["session_id"],
    )
    listed = (await call(client, "checkpoint_list"))["checkpoints"]
    assert [c["id"] for c in listed] == [second["checkpoint_id"], first["checkpoint_id"]]
    assert listed[0]["tokens"] == second["tokens"] and listed[0]["tags"] == ["s3"] and listed[0]["created_at"]
    by_level = {
        level: await call(client, "checkpoint_resume", checkpoint_id=second["checkpoint_id"], level=level)
        for level in ("summary", "context", "full")
    }
    assert by_level["summary"]["context"] is None and by_level["summary"]["full_state"] is None
    assert by_level["context"]["context"] == "Decided: ChecksumAlgorithm=SHA256." and by_level["context"]["full_state"] is None
    assert by_level["full"]["full_state"] == "Files: storage.py\nLog: 3 passed"
    assert [by_level[lv]["tokens"] for lv in ("summary", "context", "full")] == [
        second["tokens"]["summary"], second["tokens"]["context"], second["tokens"]["full"]]
    assert by_level["summary"]["tokens"] < by_level["context"]["tokens"] < by_level["full"]["tokens"]
    started = await call(client, "session_start")
    assert started["latest_checkpoint"]["id"] == second["checkpoint_id"]
    assert second["checkpoint_id"] in started["injected_context"]
