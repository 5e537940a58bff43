"""The session lifecycle through the real `contextd-mcp stdio` bridge and the daemon it starts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from tests.e2e.test_stdio import stdio
from tests.helpers import data, run_cli
from tests.helpers import stop_daemon as stop

pytestmark = pytest.mark.anyio


async def call(client: Any, tool: str, **arguments: Any) -> Any:
    return data(await client.call_tool(tool, arguments))


async def wait_done(client: Any, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await call(client, "distill_status", job_id=job_id)
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} not finished within {timeout}s: {status}")


async def test_start_store_end_then_the_next_session_gets_the_lesson(shared_data_dir: Path, project_dir: Path) -> None:
    async with stdio(shared_data_dir, project_dir) as client:
        first = await call(client, "session_start", task="get the S3 upload tests green after the boto3 upgrade")
        assert first["memories"] == []
        await call(client, "memory_store", title="Run the upload tests with moto 5",
                   content="moto 4 cannot emulate the new checksum headers; moto 5 can.")
        saved = await call(client, "checkpoint_save", summary="Tests reproduce the failure.")
        # session_end may omit the id: the bridge's connection started this session.
        ended = await call(client, "session_end", outcome="success",
                           summary="Use ChecksumAlgorithm='SHA256' instead of ContentMD5 on put_object: "
                                   "boto3 1.36 rejects ContentMD5.")
        assert ended["session_id"] == first["session_id"]
        status = await wait_done(client, ended["job_id"])
        assert status["state"] == "done" and len(status["memories_created"]) == 1
        listed = (await call(client, "checkpoint_list", session_id=first["session_id"]))["checkpoints"]
        assert [c["id"] for c in listed] == [saved["checkpoint_id"]]

    async with stdio(shared_data_dir, project_dir) as client:  # a later session, another connection
        later = await call(client, "session_start", task="S3 put_object raises ParamValidationError after upgrading boto3")
        assert status["memories_created"][0] in [m["id"] for m in later["memories"]]
        assert "ChecksumAlgorithm" in later["injected_context"]
        assert later["latest_checkpoint"]["id"] == saved["checkpoint_id"]


async def test_a_failed_session_yields_an_anti_pattern(shared_data_dir: Path, project_dir: Path) -> None:
    async with stdio(shared_data_dir, project_dir) as client:
        session = await call(client, "session_start")
        ended = await call(client, "session_end", session_id=session["session_id"], outcome="failure",
                           summary="The deploy failed: the migration locked the orders table for ten minutes. "
                                   "Build large indexes CONCURRENTLY.")
        (memory_id,) = (await wait_done(client, ended["job_id"]))["memories_created"]
        memory = await call(client, "memory_get", memory_id=memory_id)
        assert memory["outcome"] == "failure" and memory["title"].startswith("Avoid:")
        assert "How to avoid it: Build large indexes CONCURRENTLY." in memory["content"]


async def test_checkpoint_save_list_resume_at_all_levels(shared_data_dir: Path, project_dir: Path) -> None:
    counter = WordPieceTokenCounter()
    async with stdio(shared_data_dir, project_dir) as client:
        saved = await call(client, "checkpoint_save", summary="Half done.", context="Next: the retry path.",
                           full_state="Notes: " + "upload part retried; " * 50, tags=["s3"])
        assert (await call(client, "checkpoint_list"))["checkpoints"][0]["id"] == saved["checkpoint_id"]
        for level, fields in (("summary", ["summary"]), ("context", ["summary", "context"]),
                              ("full", ["summary", "context", "full_state"])):
            resumed = await call(client, "checkpoint_resume", checkpoint_id=saved["checkpoint_id"], level=level)
            assert [f for f in ("summary", "context", "full_state") if resumed[f]] == fields
            assert resumed["tokens"] == sum(counter.count(resumed[f]) for f in fields) == saved["tokens"][level]


async def test_session_end_returns_before_distillation_finishes(data_dir: Path, project_dir: Path) -> None:
    async with stdio(data_dir, project_dir, CONTEXTD_DISTILL_DELAY_S="3") as client:
        session = await call(client, "session_start")
        began = time.perf_counter()
        ended = await call(client, "session_end", session_id=session["session_id"], outcome="success",
                           summary="Caching the wheel builds halved the CI time.")
        elapsed = time.perf_counter() - began
        assert (await call(client, "distill_status", job_id=ended["job_id"]))["state"] in ("pending", "running")
        assert elapsed < 1.0  # the bench measures the real figure (< 100 ms); this box is shared
        assert (await wait_done(client, ended["job_id"]))["state"] == "done"


@pytest.mark.slow
async def test_injection_stays_under_500_tokens_with_100_long_memories(data_dir: Path, project_dir: Path) -> None:
    counter = WordPieceTokenCounter()  # the model's real WordPiece tokenizer
    words = "retry backoff upload multipart checksum boto3 bucket region timeout presigned lifecycle policy".split()
    async with stdio(data_dir, project_dir) as client:
        for n in range(100):
            body = " ".join(words[(n + i) % len(words)] for i in range(1200))[:7990].rsplit(" ", 1)[0] + "."
            await call(client, "memory_store", title=f"Upload lesson {n}: {words[n % len(words)]} " + "detail " * 20,
                       content=body)
        for task in ("multipart upload retries and checksums", None):
            started = await call(client, "session_start", **({"task": task} if task else {}))
            assert len(started["memories"]) == 3
            assert counter.count(started["injected_context"]) == started["injection_tokens"] < 500


@pytest.mark.slow
async def test_a_job_queued_when_the_daemon_is_killed_completes_after_restart(
    data_dir: Path, project_dir: Path
) -> None:
    # The daemon holds each claimed job 60 s (test-only CONTEXTD_DISTILL_DELAY_S), so the kill
    # lands with the job claimed (in running/), the harder case: it must be requeued at start.
    async with stdio(data_dir, project_dir, CONTEXTD_DISTILL_DELAY_S="60") as client:
        session = await call(client, "session_start")
        ended = await call(client, "session_end", session_id=session["session_id"], outcome="success",
                           summary="Setting PYTHONDONTWRITEBYTECODE kept the read-only image clean.")
        deadline = time.monotonic() + 30
        while (await call(client, "distill_status", job_id=ended["job_id"]))["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pid = json.loads(run_cli(data_dir, "status", "--json").stdout)["pid"]
        os.kill(pid, signal.SIGKILL)
    assert (data_dir / "queue" / "running" / f"{ended['job_id']}.json").exists()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)

    async with stdio(data_dir, project_dir) as client:  # starts a fresh daemon, without the delay
        status = await wait_done(client, ended["job_id"])
        assert status["state"] == "done" and len(status["memories_created"]) == 1
        memory = await call(client, "memory_get", memory_id=status["memories_created"][0])
        assert "PYTHONDONTWRITEBYTECODE" in memory["content"]
    stop(data_dir)
    assert not list((data_dir / "queue" / "running").iterdir())
