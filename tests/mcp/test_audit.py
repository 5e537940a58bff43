"""The audit log: one JSON line per tool call, what happened and never what was said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from contextd_mcp.adapters.audit_file import JsonlAuditLog
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.mcp.redactions import CountingScrubber
from contextd_mcp.mcp.registry import ToolDef
from contextd_mcp.mcp.server import ToolRunner, build_server
from contextd_mcp.models.scope import Scope
from tests.helpers import data, error_text, run_cli

pytestmark = pytest.mark.anyio

# Distinctive strings in every argument; none may reach the audit file.
CANARY = "zebra-quokka-7741"
FIELDS = {"ts", "tenant", "team", "project", "transport", "tool", "outcome", "duration_ms", "input_bytes", "redactions"}


def events(container: Container) -> list[dict[str, Any]]:
    return [json.loads(line) for line in container.paths.audit.read_text().splitlines()]


async def test_success_and_error_calls_are_logged_without_content(client: Any, container: Container) -> None:
    mid = data(
        await client.call_tool(
            "memory_store",
            {"title": f"Title {CANARY}", "content": f"Content {CANARY} with AKIAQWERTYUIOPASDFGH inside", "tags": [CANARY]},
        )
    )["id"]
    data(await client.call_tool("memory_search", {"query": f"query {CANARY}"}))
    error_text(await client.call_tool("memory_store", {"title": CANARY}))  # content missing
    error_text(await client.call_tool("memory_get", {"memory_id": f"{CANARY}-id"}))
    error_text(await client.call_tool("memory_feedback", {"memory_id": mid, "helpful": CANARY}))
    error_text(await client.call_tool(f"no_such_tool_{CANARY}", {"x": CANARY}))

    text = container.paths.audit.read_text()
    assert CANARY not in text and "AKIAQWERTYUIOPASDFGH" not in text and "quokka" not in text
    lines = events(container)
    assert [(e["tool"], e["outcome"]) for e in lines] == [
        ("memory_store", "ok"),
        ("memory_search", "ok"),
        ("memory_store", "error:invalid_input"),
        ("memory_get", "error:not_found"),
        ("memory_feedback", "error:invalid_input"),
        ("(unknown)", "error:not_found"),
    ]
    stored = lines[0]
    assert FIELDS | {"output_bytes", "redactions_in", "redactions_out", "connection"} <= stored.keys()
    assert (stored["tenant"], stored["team"], stored["project"], stored["transport"]) == ("acme", "core", "api", "memory")
    assert stored["redactions_in"] == 1 and stored["redactions"] == 1  # the AWS key, scrubbed before storing
    assert stored["input_bytes"] > 100 and stored["output_bytes"] > 20 and stored["duration_ms"] > 0
    for line in lines[1:5]:
        assert line.keys() >= FIELDS, line
    assert lines[-1]["tool"] == "(unknown)" and "tenant" not in lines[-1]  # refused before any caller lookup


async def test_a_read_only_caller_refused_is_logged(container: Container) -> None:
    from mcp import Client

    token = CURRENT_CALLER.set(Caller(scope=Scope(tenant="acme", project="api"), transport="http", read_only=True,
                                      extra={"token": "tok123"}, agent="reviewer"))
    try:
        async with Client(container.server()) as client:
            error_text(await client.call_tool("memory_store", {"title": CANARY, "content": CANARY}))
    finally:
        CURRENT_CALLER.reset(token)
    [line] = events(container)
    assert line["outcome"] == "error:denied" and line["token"] == "tok123" and line["agent"] == "reviewer"
    assert CANARY not in container.paths.audit.read_text()


class _WithSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str
    note: str


class _Done(BaseModel):
    ok: bool


async def test_the_session_id_is_logged_only_when_it_is_an_id(tmp_path: Path) -> None:
    from mcp import Client

    audit = JsonlAuditLog(tmp_path / "audit.log")
    tool = ToolDef("touch", "Touch a session.", _WithSession, _Done, handler=lambda caller, req: _Done(ok=True))
    from contextd_mcp.adapters.secret_scrubber import RegexScrubber

    runner = ToolRunner([tool], CountingScrubber(RegexScrubber()), WordPieceTokenCounter(), audit, 1000)
    session = "0d5e7c3a-8b14-4f6e-a2c9-71b3e5d0f842"
    token = CURRENT_CALLER.set(Caller(scope=Scope(tenant="acme", project="api"), transport="memory"))
    try:
        async with Client(build_server(runner)) as client:
            data(await client.call_tool("touch", {"session_id": session, "note": CANARY}))
            data(await client.call_tool("touch", {"session_id": f"not an id {CANARY}", "note": "x"}))
    finally:
        CURRENT_CALLER.reset(token)
    audit.close()
    first, second = (json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines())
    assert first["session"] == session and "session" not in second
    assert CANARY not in (tmp_path / "audit.log").read_text()


def test_each_record_is_flushed_and_the_log_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = JsonlAuditLog(path, max_bytes=2000, keep=3)
    try:
        for i in range(200):
            log.record({"tool": "memory_store", "outcome": "ok", "seq": i})
            if i == 0:
                assert json.loads(path.read_text())["seq"] == 0  # visible before close: flushed
    finally:
        log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    for name in files[1:]:
        assert 2000 <= (tmp_path / name).stat().st_size < 2100
    assert (path.stat().st_mode & 0o777) == 0o600
    kept = [json.loads(line)["seq"] for name in reversed(files[1:]) for line in (tmp_path / name).read_text().splitlines()]
    kept += [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert kept == list(range(kept[0], 200))  # the newest records, in order, none lost across rotations


def test_audit_tail_prints_readable_lines(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log = JsonlAuditLog(data_dir / "audit.log")
    log.record({"tenant": "acme", "team": "core", "project": "api", "transport": "http", "tool": "memory_store",
                "outcome": "ok", "duration_ms": 12.5, "input_bytes": 120, "output_bytes": 80, "redactions": 2,
                "token": "a1b2c3"})
    log.record({"tenant": "acme", "team": "core", "project": "api", "transport": "socket", "tool": "memory_get",
                "outcome": "error:not_found", "duration_ms": 1.25, "input_bytes": 30})
    log.close()
    shown = run_cli(data_dir, "audit", "tail", "-n", "1")
    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.splitlines()
    assert "memory_get" in line and "error:not_found" in line and "acme/core/api" in line and "1.2ms" in line
    both = run_cli(data_dir, "audit", "tail").stdout.splitlines()
    assert len(both) == 2 and "redacted=2" in both[0] and "token=a1b2c3" in both[0] and "12.5ms" in both[0]
    raw = run_cli(data_dir, "audit", "tail", "--json", "-n", "5").stdout.splitlines()
    assert [json.loads(x)["tool"] for x in raw] == ["memory_store", "memory_get"]


def test_audit_tail_follow_prints_new_calls_across_a_rotation(tmp_path: Path) -> None:
    import subprocess
    import time

    from tests.helpers import CLI, env_for

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log = JsonlAuditLog(data_dir / "audit.log", max_bytes=400, keep=2)
    log.record({"tool": "memory_get", "outcome": "ok", "seq": 0})
    follower = subprocess.Popen([*CLI, "audit", "tail", "-n", "0", "--follow", "--json"], env=env_for(data_dir),
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # let it open the file and seek to its end
        for i in range(1, 13):  # ~60 bytes a line: rotates at least once
            log.record({"tool": "memory_store", "outcome": "ok", "seq": i})
            time.sleep(0.05)
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < 12 and time.monotonic() < deadline:
            line = follower.stdout.readline()  # type: ignore[union-attr]
            if line:
                seen.append(json.loads(line)["seq"])
        assert seen == list(range(1, 13))
        assert (data_dir / "audit.log.1").exists()
    finally:
        follower.kill()
        follower.wait(timeout=10)
        log.close()
