"""Port: a durable queue of background jobs (distillation).

A job, once ``enqueue`` returns, survives a crash of the process: it is done on the
next start. Its life: pending → running → done, or back to pending for a retry, or
failed after the last attempt; ``status`` answers for any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class JobState(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


@dataclass
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    state: JobState = JobState.pending
    created_ts: float = 0.0
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None
    # Steps a previous attempt already finished, so a retry after a crash does not repeat them.
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    finished_ts: float | None = None


class JobQueue(Protocol):
    def enqueue(self, kind: str, payload: dict[str, Any]) -> str: ...

    def claim(self, now: float) -> Job | None:
        """The oldest pending job that is due, moved to running; None when there is none."""
        ...

    def save_progress(self, job: Job) -> None: ...

    def complete(self, job: Job, result: dict[str, Any]) -> None: ...

    def retry(self, job: Job, error: str, not_before: float) -> None: ...

    def fail(self, job: Job, error: str) -> None: ...

    def release(self, job: Job) -> None:
        """Put a claimed job back to pending untouched (shutting down before doing it)."""
        ...

    def recover(self) -> int:
        """Requeue jobs left running by a process that died; returns how many."""
        ...

    def status(self, job_id: str) -> Job | None: ...

    def wait(self, timeout: float) -> bool:
        """Block until a job is enqueued or ``timeout`` passes."""
        ...
