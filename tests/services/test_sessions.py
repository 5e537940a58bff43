"""SessionService on the real store: binding, errors, TTL expiry and its clean-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextd_mcp.adapters.job_queue import FileJobQueue
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.errors import Conflict, NotFound, Reason
from contextd_mcp.models.checkpoint import ListCheckpoints, SaveCheckpoint
from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import EndSession, StartSession
from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.injection import Injector
from contextd_mcp.services.sessions import SessionPolicy, SessionService

SCOPE = Scope(tenant="acme", team="core", project="api")
OTHER = Scope(tenant="other", team="core", project="api")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(container: Container, tmp_path: Path, clock: Clock) -> SessionService:
    injector = Injector(container.memory, container.checkpoints, Stores(container.store), WordPieceTokenCounter())
    return SessionService(
        Backing.of(Stores(container.store), container.embedder, container.scrubber, clock),
        AcrossScopes(container.store),
        FileJobQueue(tmp_path / "queue", now=clock),
        injector,
        SessionPolicy(idle_ttl_s=100, max_ttl_s=1000, retention_s=5000),
    )


def test_start_binds_the_connection_and_end_unbinds_it(sessions: SessionService) -> None:
    started = sessions.start(SCOPE, "conn-1", StartSession(task="fix the build"))
    assert sessions.active_session("conn-1") == started.session_id
    assert sessions.active_session("conn-2") is None
    ended = sessions.end(SCOPE, "conn-1", EndSession(outcome="success", summary="Done."))
    assert ended.session_id == started.session_id and ended.state == "queued"
    assert sessions.active_session("conn-1") is None


def test_unknown_foreign_ended_and_expired_ids_are_clear_errors(sessions: SessionService, clock: Clock) -> None:
    with pytest.raises(NotFound, match="session 'b6d7"):
        sessions.end(SCOPE, "c", EndSession(session_id="b6d7f0a4-0000-4000-8000-000000000000", outcome="success"))
    mine = sessions.start(SCOPE, "c", StartSession())
    with pytest.raises(NotFound):  # another tenant's id looks exactly like a missing one
        sessions.end(OTHER, "x", EndSession(session_id=mine.session_id, outcome="success"))
    sessions.end(SCOPE, "c", EndSession(session_id=mine.session_id, outcome="success"))
    with pytest.raises(Conflict, match="already ended") as ended:
        sessions.end(SCOPE, "c", EndSession(session_id=mine.session_id, outcome="success"))
    assert ended.value.reason is Reason.session_ended  # a value callers match on, not the wording
    idle = sessions.start(SCOPE, "d", StartSession())
    clock.t += 101
    with pytest.raises(Conflict, match="expired") as expired:
        sessions.end(SCOPE, "d", EndSession(session_id=idle.session_id, outcome="failure"))
    assert expired.value.reason is Reason.session_expired
    with pytest.raises(NotFound, match="this connection"):  # the expired session no longer counts
        sessions.end(SCOPE, "d", EndSession(outcome="failure"))


def test_activity_keeps_a_session_alive_until_the_maximum(sessions: SessionService, clock: Clock) -> None:
    started = sessions.start(SCOPE, "c", StartSession())
    for _ in range(9):  # 9 x 90 s: never idle for 100 s, but 810 s old
        clock.t += 90
        sessions.touch("c", SCOPE)
        assert sessions.sweep() == 0
    assert sessions.resolve(SCOPE, "c", None, required=True) == started.session_id
    clock.t += 200  # now 1010 s old: over the 1000 s maximum, however busy
    sessions.touch("c", SCOPE)
    assert sessions.sweep() == 1
    with pytest.raises(Conflict, match="expired"):
        sessions.resolve(SCOPE, "c", started.session_id, required=True)


def test_sweep_expires_idle_sessions_runs_callbacks_and_keeps_memories_and_checkpoints(
    sessions: SessionService, container: Container, clock: Clock
) -> None:
    closed: list[tuple[str, str, str]] = []
    sessions.on_session_closed.append(lambda scope, sid, reason: closed.append((scope.tenant, sid, reason)))
    sessions.on_session_closed.insert(0, lambda scope, sid, reason: 1 / 0)  # a broken callback stops nobody
    idle = sessions.start(SCOPE, "idle", StartSession(task="a task"))
    busy = sessions.start(SCOPE, "busy", StartSession())
    container.memory.store(SCOPE, StoreMemory(title="Kept lesson", content="Memories outlive sessions."))
    container.checkpoints.save(SCOPE, SaveCheckpoint(summary="Kept checkpoint"), idle.session_id)
    clock.t += 60
    sessions.touch("busy", SCOPE)
    clock.t += 60  # idle: 120 s without a call; busy: 60 s
    assert sessions.sweep() == 1
    assert closed == [("acme", idle.session_id, "expired")]
    assert sessions.active_session("idle") is None
    assert sessions.active_session("busy") == busy.session_id
    assert sessions.counts()["expired"] == 1 and sessions.counts()["active"] == 1
    assert container.memory.counts(SCOPE) == 1
    listed = container.checkpoints.list(SCOPE, ListCheckpoints(session_id=idle.session_id)).checkpoints
    assert [c.summary for c in listed] == ["Kept checkpoint"]
    sessions.end(SCOPE, "busy", EndSession(outcome="success"))
    assert closed[-1] == ("acme", busy.session_id, "ended")
    clock.t += 5001  # past retention: closed session records go, a late call gets NotFound
    sessions.sweep()
    assert sum(sessions.counts().values()) == 0
    with pytest.raises(NotFound):
        sessions.resolve(SCOPE, "idle", idle.session_id, required=True)


def test_the_binding_survives_a_restart_through_the_store(
    sessions: SessionService, container: Container, tmp_path: Path, clock: Clock
) -> None:
    started = sessions.start(SCOPE, "claude-code:abc", StartSession())
    fresh = SessionService(  # a new daemon process: empty connection map, same store
        Backing.of(Stores(container.store), container.embedder, container.scrubber, clock),
        AcrossScopes(container.store), FileJobQueue(tmp_path / "queue", now=clock),
        Injector(container.memory, container.checkpoints, Stores(container.store), WordPieceTokenCounter()),
        SessionPolicy(idle_ttl_s=100, max_ttl_s=1000),
    )
    assert fresh.active_session("claude-code:abc") is None
    assert fresh.resolve(SCOPE, "claude-code:abc", None, required=True) == started.session_id
    again = fresh.start(SCOPE, "claude-code:abc", StartSession(), reuse=True)  # SessionStart on resume
    assert again.session_id == started.session_id
    other = fresh.start(SCOPE, "claude-code:abc", StartSession())  # without reuse: a new session
    assert other.session_id != started.session_id


def test_end_scrubs_what_it_queues(sessions: SessionService, tmp_path: Path) -> None:
    sessions.start(SCOPE, "c", StartSession())
    secret = "ghp_4f9XkQ2mZ8rT1vB7nL3wY6pC0sD5hJ9aE2uK"
    ended = sessions.end(
        SCOPE, "c",
        EndSession(outcome="success", summary=f"Exported GITHUB_TOKEN={secret} to push.",
                   learnings=[{"title": "Token", "content": f"Use {secret} for the push."}]),
    )
    written = (tmp_path / "queue" / "pending" / f"{ended.job_id}.json").read_text()
    assert secret not in written and "[REDACTED:github-token]" in written
