"""A resumed Claude Code session (``claude --resume``: same session id, same transcript file,
appended) through the real hooks and daemon: each end distils only the turns no earlier end
distilled, and an end with nothing new queues nothing (issue 15).

The attack it reproduces: on aa7b155 every SessionEnd re-distilled the whole transcript and
"strengthened" the memories it had made itself (confidence up with every resume, no new
evidence)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_hooks import hook, sample
from tests.e2e.test_stdio import stdio
from tests.e2e.daemons import start_as_bridge
from tests.helpers import data, env_for, run_cli

pytestmark = pytest.mark.anyio
SESSION = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
SAMPLES = Path(__file__).parents[1] / "data" / "hooks"


def _event(kind: str, content: Any, uid: str) -> str:
    role = "user" if kind == "user" else "assistant"
    return json.dumps({"type": kind, "uuid": uid, "sessionId": SESSION, "message": {"role": role, "content": content}})


def resumed_turns() -> str:
    """A second stretch of work: a migration that fails, is explained, fixed and passes."""
    bash = lambda i, cmd: {"type": "tool_use", "id": f"toolu_r{i}", "name": "Bash", "input": {"command": cmd}}  # noqa: E731
    result = lambda i, text, err: {"type": "tool_result", "tool_use_id": f"toolu_r{i}", "content": text, "is_error": err}  # noqa: E731
    error = 'sqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateTable) relation "orders" already exists'
    lines = [
        _event("user", "Now apply the pending database migrations on the staging copy.", "r-1"),
        _event("assistant", [bash(1, "alembic upgrade head")], "r-2"),
        _event("user", [result(1, f"Exit code 1\nINFO  [alembic] Running upgrade\n{error}", True)], "r-3"),
        _event("assistant", [{"type": "text", "text": "The issue is that the orders table was created by hand before "
                              "the migration ran, so I'll stamp the revision instead of creating it again."},
                             bash(2, "alembic stamp 4f2a9c1b7e3d")], "r-4"),
        _event("user", [result(2, "INFO  [alembic] Stamping 4f2a9c1b7e3d", False)], "r-5"),
        _event("assistant", [bash(3, "alembic upgrade head")], "r-6"),
        _event("user", [result(3, "INFO  [alembic] Running upgrade 4f2a9c1b7e3d -> 9b8c7d6e5f4a", False)], "r-7"),
        _event("assistant", [{"type": "text", "text": "Migrations applied: the table was stamped, then upgraded."}], "r-8"),
    ]
    return "\n".join(lines) + "\n"


def jobs(data_dir: Path) -> dict[str, list[str]]:
    root = data_dir / "queue"
    return {state: sorted(p.stem for p in (root / state).glob("*.json")) for state in ("pending", "running", "done", "failed")}


def settle(data_dir: Path, done: int, timeout: float = 120) -> list[str]:
    """Wait until the queue holds nothing to do and ``done`` finished jobs; their ids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = jobs(data_dir)
        if not state["pending"] and not state["running"] and len(state["done"]) + len(state["failed"]) >= done:
            assert not state["failed"], state
            return state["done"]
        time.sleep(0.3)
    raise AssertionError(f"queue did not settle at {done} done jobs: {jobs(data_dir)}")


def end(data_dir: Path, project: Path, transcript: Path) -> None:
    # Its daemon started as the hook would start it (the hooks' own start: test_hooks.py's session).
    start_as_bridge(data_dir, env_for(data_dir))
    for event, name in (("session-start", "session_start"), ("session-end", "session_end")):
        result = hook(data_dir, event, sample(name, project, transcript, SESSION), project)
        assert result.returncode == 0 and result.stderr == b"", result.stderr


async def memories(data_dir: Path, project: Path) -> dict[str, float]:
    """Every memory the distillation jobs made or touched, with its confidence now."""
    ids: set[str] = set()
    async with stdio(data_dir, project) as client:
        for job in jobs(data_dir)["done"]:
            status = data(await client.call_tool("distill_status", {"job_id": job}))
            ids |= set(status["memories_created"]) | set(status["memories_reinforced"])
        found = {}
        for memory_id in sorted(ids):
            found[memory_id] = data(await client.call_tool("memory_get", {"memory_id": memory_id}))["confidence"]
    return found


def stored(data_dir: Path) -> int:
    status = json.loads(run_cli(data_dir, "status", "--json").stdout)
    return int(status["memories"])


async def test_a_resumed_session_learns_only_its_new_turns(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    transcript = tmp_path / "claude" / "projects" / "-home-dev-shop-api" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes((SAMPLES / "transcript.jsonl").read_bytes())

    end(data_dir, project_dir, transcript)  # the first session
    settle(data_dir, done=1)
    first = await memories(data_dir, project_dir)
    count_first = stored(data_dir)
    assert first and count_first == len(first)

    with transcript.open("a") as f:  # claude --resume: same id, same file, new turns appended
        f.write(resumed_turns())
    end(data_dir, project_dir, transcript)
    settle(data_dir, done=2)
    second = await memories(data_dir, project_dir)
    # The lessons of the first stretch were not seen again: no confidence moved.
    assert {k: second[k] for k in first} == first, (first, second)
    new = set(second) - set(first)
    assert new and stored(data_dir) == count_first + len(new)  # the migration lesson, learnt once
    async with stdio(data_dir, project_dir) as client:
        hits = data(await client.call_tool("memory_search", {"query": "alembic relation orders already exists"}))["memories"]
        assert hits and hits[0]["id"] in new

    end(data_dir, project_dir, transcript)  # ended again with nothing new: no job at all
    time.sleep(1.0)
    assert len(jobs(data_dir)["done"]) == 2 and not jobs(data_dir)["pending"], jobs(data_dir)
    assert await memories(data_dir, project_dir) == second
    assert stored(data_dir) == count_first + len(new)


async def test_a_rewritten_transcript_is_read_again_without_relearning_it(
    data_dir: Path, project_dir: Path, tmp_path: Path
) -> None:
    transcript = tmp_path / "claude" / "projects" / "-home-dev-shop-api" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    original = (SAMPLES / "transcript.jsonl").read_bytes()
    transcript.write_bytes(original)
    end(data_dir, project_dir, transcript)
    settle(data_dir, done=1)
    first = await memories(data_dir, project_dir)

    # Rewritten in place under another inode (an editor's save, a compaction): the last two
    # events dropped, new turns written after them. Not skipped: the new lesson is learnt.
    kept = b"\n".join(original.rstrip(b"\n").split(b"\n")[:-2]) + b"\n"
    replacement = transcript.with_suffix(".tmp")
    replacement.write_bytes(kept + resumed_turns().encode())
    os.replace(replacement, transcript)
    end(data_dir, project_dir, transcript)
    settle(data_dir, done=2)
    second = await memories(data_dir, project_dir)
    assert {k: second[k] for k in first} == first, (first, second)  # nor re-learnt wholesale
    assert set(second) - set(first)
    assert stored(data_dir) == len(second)
