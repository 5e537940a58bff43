"""A restarted daemon opens only memory_search's collections before it announces (issue 19); the
others open at their first use. The real daemon, restarted on a store holding every kind of
record, asked for all of them at once from several connections the moment it announces: each
answer is the one the first daemon would have given, and ``status`` counts every collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data, run_cli


async def _fill(socket: Path, cwd: Path) -> dict[str, Any]:
    async with socket_client(socket, cwd) as client:
        for i in range(5):
            stored = await client.call_tool("memory_store", {"title": f"lesson {i}", "content": f"the deploy broke: cause {i}"})
            assert not stored.is_error, str(stored.content[0])
        session = data(await client.call_tool("session_start", {"task": "restart"}))["session_id"]
        saved = data(await client.call_tool("checkpoint_save", {"summary": "half way through the migration"}))
        rule = {"scope": "project", "title": "no force push", "severity": "critical",
                "rule": {"kind": "command_regex", "pattern": "git push --force"}}
        policy = data(await client.call_tool("policy_set", rule))
        skill = {"name": "triage", "description": "triage a failing build", "prompt_template": "Look at {error}"}
        assert not (await client.call_tool("skill_create", skill)).is_error
        fix = {"title": "stale lockfile", "problem": "npm ci fails: lockfile out of date", "solution": "run npm install"}
        assert not (await client.call_tool("remediation_record", fix)).is_error
    return {"session": session, "checkpoint": saved, "policy": policy}


async def _ask_everything(socket: Path, cwd: Path) -> dict[str, Any]:
    """Every kind of record asked for at once, each on its own connection."""
    calls = {
        "memories": ("memory_search", {"query": "why did the deploy break"}),
        "checkpoints": ("checkpoint_list", {}),
        "policies": ("policy_list", {}),
        "skills": ("skill_list", {}),
        "remediations": ("remediation_search", {"error": "npm ci fails: lockfile out of date"}),
        "session": ("session_start", {"task": "after the restart"}),
    }
    answers: dict[str, Any] = {}

    async def ask(key: str, tool: str, arguments: dict[str, Any]) -> None:
        async with socket_client(socket, cwd) as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, (tool, str(result.content[0]))
            answers[key] = data(result)

    async with anyio.create_task_group() as tg:
        for key, (tool, arguments) in calls.items():
            tg.start_soon(ask, key, tool, arguments)
    return answers


def test_a_restart_answers_every_collection_at_once_right(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    daemon = start_daemon(data_dir, cwd)
    try:
        stored = anyio.run(_fill, daemon.socket, cwd)
    finally:
        daemon.stop()
    daemon = start_daemon(data_dir, cwd)
    try:
        answers = anyio.run(_ask_everything, daemon.socket, cwd)
        status = run_cli(data_dir, "status", "--json")
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
    assert len(answers["memories"]["memories"]) == 5
    assert [c["id"] for c in answers["checkpoints"]["checkpoints"]] == [stored["checkpoint"]["checkpoint_id"]]
    assert [p["id"] for p in answers["policies"]["policies"] if p["source"] == "stored"] == [stored["policy"]["id"]]
    assert [s["name"] for s in answers["skills"]["skills"]] == ["triage"]
    assert answers["remediations"]["remediations"][0]["title"] == "stale lockfile"
    # The new session sees the first one's checkpoint (sessions and checkpoints, both deferred).
    assert answers["session"]["latest_checkpoint"]["id"] == stored["checkpoint"]["checkpoint_id"]
    assert status.returncode == 0, status.stderr
    points = json.loads(status.stdout)["store"]["points"]
    # Every collection counted, the deferred ones too (each holds what was written to it).
    assert {"memories", "memory_keys", "sessions", "checkpoints", "policies", "remediations"} <= set(points)
    assert points["checkpoints"] == 1 and points["policies"] >= 1 and points["sessions"] >= 2
