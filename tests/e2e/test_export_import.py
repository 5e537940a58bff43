"""Export → import → the same answers over MCP, with the real CLI, daemon and SDK client.

The CLI's commands run in the daemon when one holds the data directory (over its socket, op
``admin``) and in-process under the directory's lock when none does; both paths are used here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import zygote as forks
from tests.e2e.test_stdio import stdio
from tests.e2e.daemons import audit_events
from tests.helpers import CLI, data, env_for, run_cli, stop_daemon
from tests.transfer.test_transfer import LESSONS, QUERIES

pytestmark = pytest.mark.anyio

# The same lessons and queries as the in-process transfer tests.


async def answers(client: object) -> list[tuple[str, set[str]]]:
    found = [data(await client.call_tool("memory_search", {"query": q, "limit": 3}))["memories"] for q in QUERIES]  # type: ignore[attr-defined]
    return [(hits[0]["id"], {h["id"] for h in hits}) for hits in found]


def scope_flags(data_dir: Path, project_dir: Path) -> list[str]:
    scope = json.loads(run_cli(data_dir, "status", "--json", "--path", str(project_dir)).stdout)["scope"]
    return ["--tenant", scope["tenant"], "--team", scope["team"], "--project", scope["project"]]


async def test_export_import_same_answers_then_nothing_changes(tmp_path: Path, project_dir: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    try:
        async with stdio(one, project_dir) as client:
            for title, content, applies in LESSONS:
                await client.call_tool("memory_store", {"title": title, "content": content, "applies_when": applies})
            search = data(await client.call_tool("memory_search", {"query": "pytest cache read-only"}))
            await client.call_tool("memory_feedback", {"memory_id": search["memories"][0]["id"], "helpful": True})
            before = await answers(client)
            flags = scope_flags(one, project_dir)
            # The daemon holds `one`: the export runs in it, over its socket.
            exported = run_cli(one, "export", *flags[:2])
            assert exported.returncode == 0, exported.stderr
            markdown = run_cli(one, "export", *flags[:2], "--format", "markdown")
        assert any(e.get("event") == "admin" and e.get("command") == "export" for e in audit_events(one))
        lines = exported.stdout.splitlines()
        assert json.loads(lines[0])["counts"]["memory"] == len(LESSONS)
        assert "## Memories" in markdown.stdout and LESSONS[0][0] in markdown.stdout
        dump = tmp_path / "export.jsonl"
        dump.write_text(exported.stdout)

        # No daemon holds `two`: the import runs here, under the data directory's lock.
        first = run_cli(two, "import", str(dump), timeout=120)
        assert first.returncode == 0 and first.stdout.startswith(f"{len(LESSONS)} added, 0 changed"), first
        async with stdio(two, project_dir) as client:
            assert await answers(client) == before
            again = run_cli(two, "import", str(dump))  # through the daemon now
            assert again.stdout.startswith("0 added, 0 changed"), again
            assert run_cli(two, "export", *flags[:2]).stdout.splitlines()[1:] == lines[1:]
    finally:
        stop_daemon(one)
        stop_daemon(two)


async def test_memories_cli_through_the_daemon_and_without(tmp_path: Path, project_dir: Path) -> None:
    where = tmp_path / "data"
    try:
        async with stdio(where, project_dir) as client:
            for title, content, applies in LESSONS:
                await client.call_tool("memory_store", {"title": title, "content": content, "applies_when": applies})
            flags = scope_flags(where, project_dir)
            listed = json.loads(run_cli(where, "memories", "list", *flags, "--json").stdout)
            assert {m["title"] for m in listed} == {t for t, _, _ in LESSONS}
            hits = json.loads(run_cli(where, "memories", "search", "docker pyc", *flags, "--json").stdout)
            target = hits[0]["id"]
            assert hits[0]["title"] == LESSONS[4][0]
            shown = run_cli(where, "memories", "show", target, *flags)
            assert "applies when: pyc in docker image" in shown.stdout
            refused = forks.run([*CLI, "memories", "rm", target, *flags], input="n\n", text=True,
                                     capture_output=True, env=env_for(where), timeout=60)
            assert refused.returncode == 1 and "nothing deleted" in refused.stdout
            assert json.loads(run_cli(where, "memories", "show", target, *flags, "--json").stdout)["id"] == target
            removed = run_cli(where, "memories", "rm", target, *flags, "--yes")
            assert removed.returncode == 0 and target in removed.stdout
            after = data(await client.call_tool("memory_search", {"query": "docker pyc"}))["memories"]
            assert target not in [m["id"] for m in after]
            missing = run_cli(where, "memories", "show", target, *flags)
            assert missing.returncode == 1 and "not found" in missing.stderr
        stop_daemon(where)
        offline = json.loads(run_cli(where, "memories", "list", *flags, "--json", timeout=120).stdout)
        assert len(offline) == len(LESSONS) - 1
    finally:
        stop_daemon(where)


def test_import_of_a_bad_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a header\n")
    result = run_cli(tmp_path / "data", "import", str(bad), timeout=120)
    assert result.returncode == 1 and "header: not a contextd export header" in result.stderr
