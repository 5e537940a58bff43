"""Sessions: start (with an injection), end (enqueue distillation), expire (TTL clean-up).

A session is a record in the ``sessions`` collection (no vector) and, while it lives,
an entry in this service's connection map: the connection that started it (MCP socket
connection, HTTP session, or a Claude Code session through the hook) finds it again
with ``active_session(connection_id)``. The map is rebuilt lazily from the store, so a
daemon restart does not orphan a Claude Code session whose SessionEnd hook comes later.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from contextd_mcp.errors import Conflict, NotFound, Reason
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import (
    DistillStatus,
    EndSession,
    ErrorFix,
    SessionEnded,
    SessionOutcome,
    SessionStarted,
    SessionStatus,
    StartSession,
)
from contextd_mcp.ports.job_queue import JobQueue
from contextd_mcp.ports.scoped_store import AcrossScopes, scope_of
from contextd_mcp.ports.vector_store import Condition, Range, Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.checkpoints import iso
from contextd_mcp.services.injection import Injector
from contextd_mcp.services.transcript_marks import Slice, TranscriptMarks

log = logging.getLogger("contextd_mcp")

COLLECTION = "sessions"
DISTILL = "distill"
# How often a session's last_seen is written back while calls keep touching it: idle
# TTLs are hours, so a minute of staleness costs nothing and saves a write per call.
TOUCH_WRITE_EVERY_S = 60.0
SWEEP_PAGE = 256

# Called when a session ends or expires, with (scope, session_id, reason) where reason is
# "ended" or "expired": other features drop the session's temporary data here (context
# folding's open branches, scratch state). Memories and checkpoints are never touched.
SessionClosed = Callable[[Scope, str, str], None]


@dataclass(frozen=True)
class SessionPolicy:
    idle_ttl_s: float = 4 * 3600
    max_ttl_s: float = 24 * 3600
    retention_s: float = 30 * 86400


# Told each session's outcome at session_end (memory reinforces what it injected).
OutcomeListener = Callable[[Scope, str, SessionOutcome], object]


class SessionService:
    def __init__(
        self,
        backing: Backing,
        sweeps: AcrossScopes,
        queue: JobQueue,
        injector: Injector,
        policy: SessionPolicy = SessionPolicy(),
        on_session_closed: Sequence[SessionClosed] = (),
        on_outcome: Sequence[OutcomeListener] = (),
    ) -> None:
        self._stores = backing.stores
        self._sweeps = sweeps  # the admin path: expiry and retention look across every scope
        self._scrubber = backing.scrubber
        self._queue = queue
        self._injector = injector
        self.policy = policy
        self._now = backing.now
        self._lock = threading.Lock()
        self._by_connection: dict[str, str] = {}
        self._seen: dict[str, tuple[float, float]] = {}  # session id → (last seen, last written)
        self._owners: dict[str, Scope] = {}  # session id → its scope, for writing last_seen back
        self.on_session_closed: list[SessionClosed] = list(on_session_closed)
        self.on_outcome: list[OutcomeListener] = list(on_outcome)
        self._marks = TranscriptMarks(backing)
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=("tenant", "team", "project", "status", "connection_id"),
                float_fields=("created_ts", "last_seen_ts", "closed_ts"),
            )
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, scope: Scope, connection_id: str, request: StartSession, reuse: bool = False) -> SessionStarted:
        """Start a session bound to ``connection_id``; with ``reuse``, continue the one it has.

        ``reuse`` is for the Claude Code hook: a resumed or compacted Claude session fires
        SessionStart again under the same id and should keep its contextd session.
        """
        now = self._now()
        store = self._stores.of(scope)
        current = self._active_record(scope, connection_id) if reuse and connection_id else None
        if current is not None:
            session_id = current.id
            store.set_fields(COLLECTION, session_id, {"last_seen_ts": now})
        else:
            session_id = str(uuid.uuid4())
            payload: dict[str, Any] = {
                **scope.fields(),
                "status": SessionStatus.active.value,
                "connection_id": connection_id,
                "project_path": self._scrub(request.project_path),
                "task": self._scrub(request.task),
                "created_ts": now,
                "last_seen_ts": now,
                "closed_ts": 0.0,
            }
            store.upsert(COLLECTION, [Record(id=session_id, payload=payload)])
        with self._lock:
            if connection_id:
                self._by_connection[connection_id] = session_id
            self._seen[session_id] = (now, now)
            self._owners[session_id] = scope
        injection = self._injector.build(scope, session_id, request.task, self._recent_work(scope))
        if injection.memories:  # what the session was shown, for the web page's timeline
            shown = [{"id": m.id, "title": m.title} for m in injection.memories]
            store.set_fields(COLLECTION, session_id, {"injected": shown})
        return SessionStarted(
            session_id=session_id,
            injected_context=injection.text,
            injection_tokens=injection.tokens,
            memories=injection.memories,
            latest_checkpoint=injection.checkpoint,
            idle_expires_at=iso(now + self.policy.idle_ttl_s),
        )

    def end(
        self, scope: Scope, connection_id: str, request: EndSession, transcript_path: str | None = None
    ) -> SessionEnded:
        """Close the session and enqueue its distillation durably; returns at once.

        Only what was not distilled before is queued (services/transcript_marks.py): a
        resumed session's transcript from where the last end left it; with no summary, no
        learnings and no new turns, no job at all. Everything that goes into the job file is
        scrubbed first: the queue is storage too.
        """
        record = self._require(scope, self.resolve(scope, connection_id, request.session_id, required=True))
        now = self._now()
        # The Claude Code session (the hook's connection) owns the transcript across resumes.
        mark_key = connection_id or record.id
        part = self._marks.next_slice(scope, mark_key, transcript_path) if transcript_path else None
        payload = {
            "scope": scope.fields(),
            "session_id": record.id,
            "outcome": request.outcome.value,
            "task": record.payload.get("task", ""),
            "summary": self._scrub(request.summary),
            "learnings": [
                {
                    "title": self._scrub(item.title),
                    "description": self._scrub(item.description),
                    "content": self._scrub(item.content),
                    "outcome": item.outcome.value,
                }
                for item in request.learnings
            ],
            **_transcript_fields(part),
        }
        job_id: str | None = None
        if part is not None or payload["summary"] or payload["learnings"]:
            job_id = self._queue.enqueue(DISTILL, payload)
            if part is not None:
                self._marks.advance(scope, mark_key, part, record.id)
        self._stores.of(scope).set_fields(
            COLLECTION,
            record.id,
            {
                "status": SessionStatus.ended.value,
                "closed_ts": now,
                "last_seen_ts": now,
                "outcome": request.outcome.value,
                "summary": payload["summary"],
                "job_id": job_id or "",
            },
        )
        self._forget(record.id)
        self._closed(scope, record.id, "ended")
        for callback in self.on_outcome:
            callback(scope, record.id, request.outcome)
        return SessionEnded(
            session_id=record.id,
            job_id=job_id,
            state="queued" if job_id else "nothing_new",
            note=_end_note(transcript_path, part, job_id is not None),
        )

    # -- finding a session ----------------------------------------------------------------

    def active_session(self, connection_id: str) -> str | None:
        """The session this connection started and has not ended (None if it has none)."""
        with self._lock:
            return self._by_connection.get(connection_id) if connection_id else None

    def _active_record(self, scope: Scope, connection_id: str) -> Record | None:
        session_id = self.active_session(connection_id)
        if session_id is not None:
            found = self._stores.of(scope).get(COLLECTION, [session_id])
            if found and found[0].payload["status"] == SessionStatus.active.value and not self._expired(found[0]):
                return found[0]
        # Not in memory (e.g. the daemon restarted since): the store remembers the binding.
        where = {"connection_id": connection_id, "status": SessionStatus.active.value}
        candidates = [r for r in self._stores.of(scope).scan(COLLECTION, 8, match=where) if not self._expired(r)]
        if not candidates:
            return None
        newest = max(candidates, key=lambda r: float(r.payload["created_ts"]))
        with self._lock:
            self._by_connection[connection_id] = newest.id
        return newest

    def resolve(self, scope: Scope, connection_id: str, session_id: str | None, required: bool) -> str:
        """The id a call names, else the connection's session; "" when neither and not required.

        A named session must be this scope's and still active: an unknown id is NotFound, an
        ended or expired one a Conflict saying which.
        """
        if session_id:
            self._require(scope, session_id)
            return session_id
        record = self._active_record(scope, connection_id) if connection_id else None
        if record is not None:
            return record.id
        if required:
            raise NotFound("session", "(this connection's)")  # no session started on this connection
        return ""

    def _require(self, scope: Scope, session_id: str) -> Record:
        found = self._stores.of(scope).get(COLLECTION, [session_id])
        if not found:
            raise NotFound("session", session_id)
        record = found[0]
        status = record.payload["status"]
        if status == SessionStatus.active.value and self._expired(record):
            self._expire(record)
            status = SessionStatus.expired.value
        if status == SessionStatus.expired.value:
            raise Conflict(
                f"session {session_id!r} expired (idle over {self.policy.idle_ttl_s:.0f}s or older than "
                f"{self.policy.max_ttl_s:.0f}s); start a new one with session_start",
                reason=Reason.session_expired,
            )
        if status == SessionStatus.ended.value:
            job = record.payload.get("job_id")
            raise Conflict(
                f"session {session_id!r} already ended ({f'distillation job {job}' if job else 'nothing was distilled'})",
                reason=Reason.session_ended,
            )
        self.touch_session(scope, session_id)
        return record

    # -- activity and expiry --------------------------------------------------------------

    def touch(self, connection_id: str, scope: Scope) -> None:
        """Any call on a connection keeps its session alive (a ToolRunner response hook)."""
        session_id = self.active_session(connection_id)
        if session_id is None:
            return
        # A connection id is unique per transport, not across tenants: only the caller's own
        # session may be kept alive (the isolation suite caught another tenant's being touched).
        if not self._stores.of(scope).get(COLLECTION, [session_id]):
            return
        self.touch_session(scope, session_id)

    def touch_session(self, scope: Scope, session_id: str) -> None:
        now = self._now()
        with self._lock:
            _, written = self._seen.get(session_id, (now, 0.0))
            write = now - written >= TOUCH_WRITE_EVERY_S
            self._seen[session_id] = (now, now if write else written)
            self._owners[session_id] = scope
        if write:
            self._stores.of(scope).set_fields(COLLECTION, session_id, {"last_seen_ts": now})

    def _last_seen(self, record: Record) -> float:
        with self._lock:
            remembered = self._seen.get(record.id, (0.0, 0.0))[0]
        return max(float(record.payload["last_seen_ts"]), remembered)

    def _expired(self, record: Record) -> bool:
        now = self._now()
        return (
            now - self._last_seen(record) > self.policy.idle_ttl_s
            or now - float(record.payload["created_ts"]) > self.policy.max_ttl_s
        )

    def _expire(self, record: Record) -> None:
        scope = scope_of(record.payload)
        self._stores.of(scope).set_fields(
            COLLECTION, record.id, {"status": SessionStatus.expired.value, "closed_ts": self._now()}
        )
        self._forget(record.id)
        self._closed(scope, record.id, "expired")
        log.info("session %s expired", record.id)

    def sweep(self) -> int:
        """End every expired session (the clean-up worker runs this); returns how many.

        Only sessions and their temporary data go: memories and checkpoints made in an
        expired session stay. Closed session records are deleted after the retention.
        """
        now = self._now()
        active: dict[str, Condition] = {"status": SessionStatus.active.value}
        # Whatever touch() kept in memory first: a busy session must not expire on a stale record.
        with self._lock:
            pending = [
                (sid, seen, self._owners[sid]) for sid, (seen, written) in self._seen.items()
                if seen > written and sid in self._owners
            ]
        for session_id, seen, owner in pending:
            self._stores.of(owner).set_fields(COLLECTION, session_id, {"last_seen_ts": seen})
            with self._lock:
                if session_id in self._seen:
                    self._seen[session_id] = (self._seen[session_id][0], seen)
        candidates: dict[str, Record] = {}
        for where in (
            {**active, "last_seen_ts": Range(lte=now - self.policy.idle_ttl_s)},
            {**active, "created_ts": Range(lte=now - self.policy.max_ttl_s)},
        ):
            for record in self._sweeps.scan(COLLECTION, where, limit=SWEEP_PAGE):
                candidates[record.id] = record
        expired = 0
        for record in candidates.values():
            if self._expired(record):
                self._expire(record)
                expired += 1
        old = self._sweeps.scan(
            COLLECTION,
            {"status": [SessionStatus.ended.value, SessionStatus.expired.value],
             "closed_ts": Range(lte=now - self.policy.retention_s)},
            limit=SWEEP_PAGE,
        )
        by_scope: dict[Scope, list[str]] = {}
        for record in old:
            by_scope.setdefault(scope_of(record.payload), []).append(record.id)
        for scope, ids in by_scope.items():  # each through its own scope's handle
            self._stores.of(scope).delete(COLLECTION, ids)
        return expired

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._seen.pop(session_id, None)
            self._owners.pop(session_id, None)
            for connection, bound in list(self._by_connection.items()):
                if bound == session_id:
                    del self._by_connection[connection]

    def _closed(self, scope: Scope, session_id: str, reason: str) -> None:
        for callback in self.on_session_closed:
            try:
                callback(scope, session_id, reason)
            except Exception:  # one feature's clean-up must not block another's, nor the caller
                log.exception("session %s: clean-up callback %r failed", session_id, callback)

    # -- distillation status --------------------------------------------------------------

    def job_status(self, scope: Scope, job_id: str) -> DistillStatus:
        job = self._queue.status(job_id)
        if job is None or job.payload.get("scope") != scope.fields():
            raise NotFound("job", job_id)
        result = job.result or {}
        return DistillStatus(
            job_id=job.id,
            session_id=str(job.payload.get("session_id", "")),
            state=job.state.value,
            attempts=job.attempts,
            error=job.last_error,
            memories_created=list(result.get("memories_created", [])),
            memories_reinforced=list(result.get("memories_reinforced", [])),
            remediation_candidates=[ErrorFix(**c) for c in result.get("remediation_candidates", [])],
            duration_ms=result.get("duration_ms"),
        )

    def _recent_work(self, scope: Scope) -> str | None:
        where = {"status": SessionStatus.ended.value}
        last = self._stores.of(scope).scan(COLLECTION, 1, match=where, order_by="closed_ts")
        if not last:
            return None
        text = " ".join(filter(None, (last[0].payload.get("task"), last[0].payload.get("summary"))))
        return text or None

    def _scrub(self, text: str | None) -> str:
        return self._scrubber.scrub(text).text if text else ""

    def counts(self) -> dict[str, int]:
        """Sessions in every scope, by status (for status and tests: the admin path)."""
        return {s.value: self._sweeps.count(COLLECTION, {"status": s.value}) for s in SessionStatus}



def _transcript_fields(part: Slice | None) -> dict[str, Any]:
    if part is None:
        return {"transcript_path": None}
    return {
        "transcript_path": part.path,
        "transcript_range": [part.start, part.end],
        # Memories of these sessions came from this same transcript: known, not new evidence.
        "transcript_sessions": part.earlier_sessions,
    }


def _end_note(transcript_path: str | None, part: Slice | None, queued: bool) -> str | None:
    if part is not None:
        kind = "rewritten since it was last distilled; read again whole" if part.rewritten else "new"
        return f"transcript bytes {part.start}-{part.end} queued ({kind})"
    if queued:  # from the summary or learnings
        return "the transcript has no turns that were not distilled before" if transcript_path else None
    reason = "the transcript has no turns that were not distilled before" if transcript_path else "no transcript"
    return f"nothing queued: no summary, no learnings, and {reason}"
