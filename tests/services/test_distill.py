"""Distillation on the real store and model: outcome → kind, item shape, near-duplicates,
secrets, transcripts, and the runner's retries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.adapters.job_queue import FileJobQueue
from contextd_mcp.container import Container
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.requests import GetMemory, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.job_queue import JobState
from contextd_mcp.models.remediation import GetRemediation, SearchRemediations
from contextd_mcp.services.distill import NEAR_DUPLICATE, Distiller, DistillRunner, from_summary, remediation_sink
from contextd_mcp.models.session import SessionOutcome
from contextd_mcp.transcript import digest, read_events, sentences

SCOPE = Scope(tenant="acme", team="core", project="api")
TRANSCRIPT = Path(__file__).parents[1] / "data" / "hooks" / "transcript.jsonl"


def job(outcome: str, summary: str = "", learnings: list[dict[str, Any]] | None = None,
        transcript: str | None = None, task: str = "") -> dict[str, Any]:
    return {"scope": SCOPE.fields(), "session_id": "sess-1", "outcome": outcome, "task": task, "summary": summary,
            "learnings": learnings or [], "transcript_path": transcript}


def run(container: Container, payload: dict[str, Any]) -> dict[str, Any]:
    return Distiller(container.memory, container.scrubber).run(payload, {}, lambda: None)


def memories(container: Container, ids: list[str]) -> list[Any]:
    return [container.memory.get(SCOPE, GetMemory(memory_id=i)) for i in ids]


def assert_shape(memory: Any) -> None:
    assert len(memory.title) <= 120
    assert len(sentences(memory.description)) == 1
    assert 1 <= len(sentences(memory.content)) <= 3


def test_success_gives_strategies(container: Container) -> None:
    result = run(container, job("success", "Fixed the flaky upload test by mocking the clock. The retry loop used "
                                 "wall time, so the test raced the timeout.", task="fix flaky upload test"))
    made = memories(container, result["memories_created"])
    assert len(made) == 1 and made[0].outcome is Outcome.success and made[0].origin == "distilled"
    assert made[0].title.startswith("Fixed the flaky upload test")
    assert "distilled" in made[0].tags and made[0].confidence == 0.6
    assert_shape(made[0])


def test_failure_gives_an_anti_pattern_saying_what_went_wrong_and_how_to_avoid_it(container: Container) -> None:
    result = run(container, job("failure", "The deploy failed because the migration locked the orders table for "
                                 "ten minutes. Next time run the index creation CONCURRENTLY."))
    (made,) = memories(container, result["memories_created"])
    assert made.outcome is Outcome.failure and made.title.startswith("Avoid:")
    assert "What went wrong: The deploy failed" in made.content
    assert "How to avoid it: Next time run the index creation CONCURRENTLY." in made.content
    assert_shape(made)


def test_partial_gives_both_kinds() -> None:
    items = from_summary(
        "Upload retries now work with exponential backoff. The multipart path still fails on files over 5 GB.",
        "harden uploads", SessionOutcome.partial,
    )
    assert [i.outcome for i in items] == [Outcome.success, Outcome.failure]
    assert "exponential backoff" in items[0].content and "5 GB" in items[1].content


def test_learnings_come_first_and_at_most_three_items_are_kept(container: Container) -> None:
    learnings = [
        {"title": f"Lesson {n} about caches", "description": None, "content": f"Cache layer {n} needs a TTL. "
         f"Without one, stale entry {n} survives deploys. Set it per key. This fourth sentence is dropped.",
         "outcome": "success"}
        for n in range(3)
    ]
    result = run(container, job("partial", "Tried many things. The build broke twice.", learnings))
    made = memories(container, result["memories_created"])
    assert [m.title for m in made] == ["Lesson 0 about caches", "Lesson 1 about caches", "Lesson 2 about caches"]
    assert all("fourth sentence" not in m.content for m in made)
    for m in made:
        assert_shape(m)


def test_a_near_duplicate_strengthens_the_existing_memory(container: Container) -> None:
    existing = container.memory.store(SCOPE, StoreMemory(
        title="Disable the pytest cache provider in read-only checkouts",
        content="pytest writes .pytest_cache and fails when the tree is read-only; pass -p no:cacheprovider.",
    ))
    learning = {"title": "Run pytest with -p no:cacheprovider in read-only checkouts", "description": None,
                "content": "The cache plugin writes .pytest_cache; in a read-only tree it fails, so disable it.",
                "outcome": "success"}
    result = run(container, job("success", learnings=[learning]))
    assert result["memories_created"] == [] and result["memories_reinforced"] == [existing.id]
    assert container.memory.counts(SCOPE) == 1
    after = container.memory.get(SCOPE, GetMemory(memory_id=existing.id))
    assert after.confidence > existing.confidence
    # The same words as an anti-pattern are a different lesson: stored, not merged.
    result = run(container, job("failure", learnings=[{**learning, "outcome": "failure"}]))
    assert len(result["memories_created"]) == 1 and container.memory.counts(SCOPE) == 2
    assert 0.85 < NEAR_DUPLICATE < 0.95


def test_secrets_are_scrubbed_before_storing(container: Container) -> None:
    secret = "ghp_4f9XkQ2mZ8rT1vB7nL3wY6pC0sD5hJ9aE2uK"
    result = run(container, job("success", f"Pushing needed GITHUB_TOKEN={secret} in the env. It worked after that."))
    for memory in memories(container, result["memories_created"]):
        text = memory.title + memory.description + memory.content
        assert secret not in text


def test_transcript_gives_a_fix_strategy_an_unresolved_anti_pattern_and_remediation_candidates(
    container: Container, tmp_path: Path
) -> None:
    path = tmp_path / "3f2b8c1e.jsonl"
    shutil.copy(TRANSCRIPT, path)
    result = run(container, job("partial", transcript=str(path)))
    made = memories(container, result["memories_created"])
    kinds = {m.outcome for m in made}
    assert kinds == {Outcome.success, Outcome.failure}
    fix = next(m for m in made if m.outcome is Outcome.success)
    assert "ContentMD5" in fix.content and "ChecksumAlgorithm" in fix.content
    left = next(m for m in made if m.outcome is Outcome.failure)
    assert "mypy" in left.title and "boto3-stubs" in left.content  # the assistant's own hint
    raw_lines = [json.loads(line) for line in TRANSCRIPT.read_text().splitlines()]
    outputs = [b["content"] for e in raw_lines if isinstance(e["message"]["content"], list)
               for b in e["message"]["content"] if b.get("type") == "tool_result"]
    for m in made:  # derived lines only: no tool output is copied whole, no secret is kept
        assert_shape(m)
        assert not any(len(o) > 200 and o in m.content for o in outputs)
        assert "AKIA" not in m.content and "Zr8s0mQv" not in m.content
    (candidate,) = result["remediation_candidates"]
    assert "ParamValidationError" in candidate["error"] and "ChecksumAlgorithm" in candidate["fix"]
    assert candidate["command"] == "python -m pytest tests/test_upload.py -q"


def test_transcript_fixes_become_remediations_once(container: Container, tmp_path: Path) -> None:
    path = tmp_path / "3f2b8c1e.jsonl"
    shutil.copy(TRANSCRIPT, path)
    distiller = Distiller(container.memory, container.scrubber, remediation_sink(container.remediation.record_many))
    progress: dict[str, Any] = {}
    distiller.run(job("partial", transcript=str(path)), progress, lambda: None)
    distiller.run(job("partial", transcript=str(path)), progress, lambda: None)  # a retry: not recorded twice
    assert container.remediation.counts(SCOPE) == 1
    hits = container.remediation.search(SCOPE, SearchRemediations(
        error="botocore.exceptions.ParamValidationError: Unknown parameter in input: \"ContentMD5\""))
    assert hits and "ChecksumAlgorithm" in container.remediation.get(SCOPE, GetRemediation(remediation_id=hits[0].id)).solution


def test_a_missing_transcript_is_noted_not_retried(container: Container) -> None:
    result = run(container, job("success", "It worked.", transcript="/nonexistent/x.jsonl"))
    assert result["notes"] == ["transcript not read: FileNotFoundError"]


def test_transcript_digest_pairs_errors_with_their_fix() -> None:
    d = digest(read_events(TRANSCRIPT))
    assert d.task is not None and d.task.startswith("The upload tests fail")
    assert d.files == ["/home/dev/shop-api/src/shop/storage.py"]
    assert [p["command"] for p in d.pairs] == ["python -m pytest tests/test_upload.py -q"]
    assert "The issue is that boto3 1.36 no longer accepts ContentMD5" in d.pairs[0]["fix"]
    assert [s.target for s in d.unresolved] == ["mypy src"]


class Flaky:
    """A distiller that fails a set number of times: the runner's retry path, for real."""

    def __init__(self, inner: Distiller, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def run(self, payload: dict[str, Any], progress: dict[str, Any], save: Any) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("store unavailable")
        return self.inner.run(payload, progress, save)


@pytest.mark.parametrize(("failures", "state", "attempts"), [(2, JobState.done, 2), (3, JobState.failed, 3)])
def test_runner_retries_with_backoff_then_records_failure(
    container: Container, tmp_path: Path, failures: int, state: JobState, attempts: int
) -> None:
    clock = [1000.0]
    queue = FileJobQueue(tmp_path / "q", now=lambda: clock[0])
    distiller = Flaky(Distiller(container.memory, container.scrubber), failures)
    runner = DistillRunner(queue, distiller, container.scrubber, max_attempts=3, retry_base_s=2.0,  # type: ignore[arg-type]
                           now=lambda: clock[0])
    job_id = queue.enqueue("distill", job("success", "Caching the wheel builds halved CI time."))
    waits = []
    while True:
        assert runner.run_once()
        current = queue.status(job_id)
        if current.state is not JobState.pending:
            break
        assert not runner.run_once()  # not due before its backoff has passed
        waits.append(current.not_before - clock[0])
        clock[0] = current.not_before
    assert waits == [2.0, 8.0]
    assert current.state is state and current.attempts == attempts
    if state is JobState.failed:
        assert current.last_error == "RuntimeError: store unavailable"
    else:
        assert len(current.result["memories_created"]) == 1


def test_a_retry_after_a_crash_does_not_double_count(container: Container) -> None:
    """Progress is saved per batch; an attempt that stored but died before saving it must
    not turn its own memories into "reinforced" duplicates on the retry."""
    payload = job("success", "Pinning the base image digest made the builds reproducible.")
    first = run(container, payload)
    again = run(container, payload)  # the same job, progress lost
    assert again["memories_created"] == first["memories_created"] and again["memories_reinforced"] == []
    assert container.memory.get(SCOPE, GetMemory(memory_id=first["memories_created"][0])).confidence == 0.6
