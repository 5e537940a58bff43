"""FileJobQueue: the JobQueue port as one JSON file per job in state directories.

    queue/tmp/       files being written
    queue/pending/   waiting (or waiting for a retry's ``not_before``)
    queue/running/   claimed by the worker
    queue/done/      finished, with the result (inputs dropped)
    queue/failed/    gave up after the last attempt, with the error

Every write goes to ``tmp/``, is fsync'd, then renamed into place and the directory
fsync'd: a job is either wholly in one state or not there, whatever kills the process.
A rename is the state change, so a crash between two steps leaves the job in the older
state, and ``recover`` (run at start) moves whatever is in ``running/`` back to pending.
One process owns a data directory (DESIGN.md §1), so no cross-process locking is needed;
a thread lock orders the worker against status reads.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contextd_mcp.ports.job_queue import Job, JobState

# Finished jobs are kept for status queries this long, then pruned.
KEEP_FINISHED_S = 7 * 86400


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _valid_id(job_id: str) -> bool:
    try:
        return str(uuid.UUID(job_id)) == job_id
    except ValueError:
        return False


class FileJobQueue:
    def __init__(self, root: Path, now: Any = time.time) -> None:
        self._root = root
        self._now = now
        self._dirs = {state: root / state.value for state in JobState}
        self._tmp = root / "tmp"
        for directory in (*self._dirs.values(), self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)  # job inputs are a user's session summaries
        self._lock = threading.RLock()
        self._wake = threading.Event()

    def _path(self, state: JobState, job_id: str) -> Path:
        return self._dirs[state] / f"{job_id}.json"

    def _write(self, job: Job, state: JobState) -> None:
        job.state = state
        data = json.dumps(asdict(job), default=str).encode()
        tmp = self._tmp / f"{job.id}.{uuid.uuid4().hex[:8]}.json"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path(state, job.id))
        _fsync_dir(self._dirs[state])

    def _move(self, job: Job, old: JobState, new: JobState) -> None:
        """Write the job's new content under ``new``, then drop the ``old`` file.

        If the process dies between the two steps, the job exists in both; ``recover``
        and ``claim`` prefer the later state, so it is neither lost nor run twice.
        """
        self._write(job, new)
        self._path(old, job.id).unlink(missing_ok=True)
        _fsync_dir(self._dirs[old])

    @staticmethod
    def _read(path: Path) -> Job | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        raw["state"] = JobState(raw.get("state", "pending"))
        return Job(**raw)

    def enqueue(self, kind: str, payload: dict[str, Any]) -> str:
        job = Job(id=str(uuid.uuid4()), kind=kind, payload=payload, created_ts=self._now())
        self._write(job, JobState.pending)
        self._wake.set()
        return job.id

    def claim(self, now: float) -> Job | None:
        with self._lock:
            due = []
            for path in self._dirs[JobState.pending].glob("*.json"):
                job = self._read(path)
                if job is None or job.not_before > now:
                    continue
                if any(self._path(s, job.id).exists() for s in (JobState.done, JobState.failed)):
                    path.unlink(missing_ok=True)  # a crash after finishing it, before the cleanup
                    continue
                due.append(job)
            if not due:
                self._wake.clear()
                return None
            job = min(due, key=lambda j: (j.created_ts, j.id))
            self._move(job, JobState.pending, JobState.running)
            return job

    def save_progress(self, job: Job) -> None:
        with self._lock:
            self._write(job, JobState.running)

    def complete(self, job: Job, result: dict[str, Any]) -> None:
        with self._lock:
            job.result = result
            job.payload = {k: job.payload[k] for k in ("scope", "session_id") if k in job.payload}
            job.progress = {}
            job.finished_ts = self._now()
            self._move(job, JobState.running, JobState.done)

    def retry(self, job: Job, error: str, not_before: float) -> None:
        with self._lock:
            job.attempts += 1
            job.last_error = error
            job.not_before = not_before
            self._move(job, JobState.running, JobState.pending)

    def fail(self, job: Job, error: str) -> None:
        with self._lock:
            job.attempts += 1
            job.last_error = error
            job.finished_ts = self._now()
            self._move(job, JobState.running, JobState.failed)

    def release(self, job: Job) -> None:
        with self._lock:
            self._move(job, JobState.running, JobState.pending)

    def recover(self) -> int:
        with self._lock:
            moved = 0
            for path in self._dirs[JobState.running].glob("*.json"):
                job = self._read(path)
                if job is None:
                    continue
                finished = any(self._path(s, job.id).exists() for s in (JobState.done, JobState.failed))
                if finished:
                    path.unlink(missing_ok=True)
                    continue
                self._move(job, JobState.running, JobState.pending)
                moved += 1
            for leftover in self._tmp.glob("*.json"):  # half-written: never renamed, so never enqueued
                leftover.unlink(missing_ok=True)
            self._prune()
            if moved:
                self._wake.set()
            return moved

    def _prune(self) -> None:
        cutoff = self._now() - KEEP_FINISHED_S
        for state in (JobState.done, JobState.failed):
            for path in self._dirs[state].glob("*.json"):
                job = self._read(path)
                if job is not None and (job.finished_ts or job.created_ts) < cutoff:
                    path.unlink(missing_ok=True)

    def status(self, job_id: str) -> Job | None:
        if not _valid_id(job_id):
            return None
        with self._lock:
            # Later states first: during a move the job briefly exists in two places.
            for state in (JobState.done, JobState.failed, JobState.running, JobState.pending):
                path = self._path(state, job_id)
                if path.exists():
                    job = self._read(path)
                    if job is not None:
                        job.state = state
                        return job
        return None

    def counts(self) -> dict[str, int]:
        return {state.value: sum(1 for _ in self._dirs[state].glob("*.json")) for state in JobState}

    def wait(self, timeout: float) -> bool:
        return self._wake.wait(timeout)
