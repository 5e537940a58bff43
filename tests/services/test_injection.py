"""What session_start injects: few, trusted, relevant memories, always under 500 tokens."""

from __future__ import annotations

import re

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.models.checkpoint import SaveCheckpoint
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.requests import MemoryFeedback, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import EndSession, StartSession
from contextd_mcp.services.injection import CONFIDENCE_FLOOR

SCOPE = Scope(tenant="acme", team="core", project="api")
COUNTER = WordPieceTokenCounter()
WORDS = ("retry backoff upload multipart checksum boto3 bucket region timeout presigned lifecycle versioning "
         "encryption policy").split()


def long_memory(n: int) -> StoreMemory:
    body = " ".join(WORDS[(n + i) % len(WORDS)] + ("." if i % 12 == 11 else "") for i in range(1100))
    body = body[:7990].rsplit(" ", 1)[0]  # as long as a memory may be
    return StoreMemory(title=f"S3 upload lesson {n} about {WORDS[n % len(WORDS)]} handling in production", content=body)


def start(container: Container, task: str | None = None, connection: str = "c") -> object:
    return container.sessions.start(SCOPE, connection, StartSession(task=task))


def assert_cut_at_words(text: str) -> None:
    """Every "…" follows a whole word of the sources: nothing is cut mid-word."""
    known = set(WORDS) | {"Checkpoint", "with", "a", "long", "summary", "production", "handling"}
    for cut in re.findall(r"(\S+)…", text):
        assert cut.rstrip(".") in known, cut


def test_injection_stays_under_500_tokens_with_long_memories(container: Container) -> None:
    # 20 here (embedding 8 kB memories is slow); the e2e test stores 100 through the real client.
    container.memory.store_many(SCOPE, [long_memory(n) for n in range(20)])
    container.checkpoints.save(SCOPE, SaveCheckpoint(summary="Checkpoint " + "with a long summary " * 80))
    for task in ("upload retries with multipart checksum", None, "x" * 2000):
        started = start(container, task)
        assert started.injection_tokens == COUNTER.count(started.injected_context)
        assert started.injection_tokens < 500
        assert len(started.memories) <= 3
        assert "contextd session" in started.injected_context and "Latest checkpoint" in started.injected_context
        assert_cut_at_words(started.injected_context)
    assert len(start(container, "upload retries with multipart checksum").memories) == 3


def test_only_confident_and_relevant_memories_are_injected(container: Container) -> None:
    trusted = container.memory.store(SCOPE, StoreMemory(
        title="Use ChecksumAlgorithm with boto3 1.36", content="put_object rejects ContentMD5 since boto3 1.36."))
    doubted = container.memory.store(SCOPE, StoreMemory(
        title="Retry S3 uploads with exponential backoff", content="Throttled uploads succeed on retry."))
    container.memory.feedback(SCOPE, MemoryFeedback(memory_id=doubted.id, helpful=False))  # 0.50 < floor
    container.memory.store(SCOPE, StoreMemory(title="Vacuum postgres weekly", content="Bloat slows queries.",
                                              outcome=Outcome.failure))
    started = start(container, "boto3 S3 upload fails with a checksum error")
    assert [m.id for m in started.memories] == [trusted.id]
    assert started.memories[0].relevance is not None and started.memories[0].relevance >= 0.25
    assert CONFIDENCE_FLOOR == 0.55
    unrelated = start(container, "write the release notes for the mobile app")
    assert unrelated.memories == []


def test_without_a_task_recent_work_picks_the_memories(container: Container) -> None:
    container.memory.store(SCOPE, StoreMemory(title="Vacuum postgres weekly", content="Bloat slows queries."))
    s3 = container.memory.store(SCOPE, StoreMemory(
        title="Use ChecksumAlgorithm with boto3 1.36", content="put_object rejects ContentMD5 since boto3 1.36."))
    for n in range(3):
        container.memory.store(SCOPE, StoreMemory(title=f"Frontend lint rule {n}", content=f"Rule {n} for eslint."))
    first = start(container, "fix S3 uploads after the boto3 upgrade", "a")
    container.sessions.end(SCOPE, "a", EndSession(outcome="success", summary="boto3 checksum change handled."))
    later = start(container, None, "b")
    assert later.memories[0].id == s3.id  # the last session's work, not merely the newest memories
    assert first.session_id != later.session_id


def test_an_empty_project_gets_just_the_session_line(container: Container) -> None:
    started = start(container)
    assert started.memories == [] and started.latest_checkpoint is None
    assert started.injected_context == f"contextd session: `{started.session_id}`"


def test_anti_patterns_read_as_such(container: Container) -> None:
    container.memory.store(SCOPE, StoreMemory(
        title="Running migrations inside the test transaction", outcome=Outcome.failure,
        content="It deadlocks on the second connection; run migrations before the transaction starts."))
    started = start(container, "tests deadlock when running migrations")
    assert "**Avoid: Running migrations inside the test transaction**" in started.injected_context
    assert "_(anti-pattern, confidence 0.67)_" in started.injected_context
