"""FileJobQueue: durable states on disk, crash recovery, retries and failures."""

from __future__ import annotations

import json
from pathlib import Path

from contextd_mcp.adapters.job_queue import FileJobQueue
from contextd_mcp.ports.job_queue import JobState


def test_a_job_goes_pending_running_done_and_only_keeps_its_result(tmp_path: Path) -> None:
    queue = FileJobQueue(tmp_path)
    job_id = queue.enqueue("distill", {"scope": {"tenant": "t"}, "session_id": "s", "summary": "long text"})
    assert queue.status(job_id).state is JobState.pending
    assert oct((tmp_path / "pending" / f"{job_id}.json").stat().st_mode & 0o777) == "0o600"
    job = queue.claim(now=1e12)
    assert job is not None and job.id == job_id and queue.status(job_id).state is JobState.running
    assert queue.claim(now=1e12) is None  # claimed once
    queue.complete(job, {"memories_created": ["m1"]})
    done = queue.status(job_id)
    assert done.state is JobState.done and done.result == {"memories_created": ["m1"]}
    assert "summary" not in done.payload and done.payload["session_id"] == "s"
    assert queue.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 0}


def test_oldest_due_job_first_and_retries_wait_their_turn(tmp_path: Path) -> None:
    times = iter([1.0, 2.0, 3.0])
    queue = FileJobQueue(tmp_path, now=lambda: next(times))
    first, second = queue.enqueue("k", {"n": 1}), queue.enqueue("k", {"n": 2})
    job = queue.claim(now=10)
    assert job.id == first
    queue.retry(job, "boom", not_before=100)
    assert queue.claim(now=50).id == second  # the retry is not due yet
    assert queue.claim(now=50) is None
    again = queue.claim(now=100)
    assert again.id == first and again.attempts == 1 and again.last_error == "boom"
    queue.fail(again, "boom twice")
    failed = queue.status(first)
    assert failed.state is JobState.failed and failed.attempts == 2 and failed.last_error == "boom twice"


def test_recover_requeues_running_jobs_and_keeps_their_progress(tmp_path: Path) -> None:
    queue = FileJobQueue(tmp_path)
    job_id = queue.enqueue("k", {})
    job = queue.claim(now=1e12)
    job.progress["item-1"] = {"action": "created", "id": "m1"}
    queue.save_progress(job)
    (tmp_path / "tmp" / "half-written.json").write_text("{")  # a write interrupted by the crash
    restarted = FileJobQueue(tmp_path)  # the process died with the job running
    assert restarted.recover() == 1
    assert not list((tmp_path / "tmp").iterdir())
    again = restarted.claim(now=1e12)
    assert again.id == job_id and again.progress == {"item-1": {"action": "created", "id": "m1"}}


def test_a_crash_between_write_and_unlink_neither_loses_nor_repeats(tmp_path: Path) -> None:
    queue = FileJobQueue(tmp_path)
    job_id = queue.enqueue("k", {})
    job = queue.claim(now=1e12)
    queue.complete(job, {"ok": True})
    # Simulate dying after done/ was written but before running/ was removed.
    (tmp_path / "running" / f"{job_id}.json").write_text(json.dumps({"id": job_id, "kind": "k", "payload": {}}))
    restarted = FileJobQueue(tmp_path)
    assert restarted.recover() == 0
    assert restarted.status(job_id).state is JobState.done
    assert restarted.claim(now=1e12) is None


def test_status_rejects_non_uuid_ids(tmp_path: Path) -> None:
    queue = FileJobQueue(tmp_path)
    assert queue.status("../../etc/passwd") is None
    assert queue.status("not-a-uuid") is None


def test_enqueue_survives_without_the_queue_object(tmp_path: Path) -> None:
    """Durable means on disk and fsync'd before enqueue returns: a new process sees it."""
    job_id = FileJobQueue(tmp_path).enqueue("k", {"x": 1})
    claimed = FileJobQueue(tmp_path).claim(now=1e12)
    assert claimed.id == job_id and claimed.payload == {"x": 1}
