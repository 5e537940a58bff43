"""Tenants are who they are: checkouts of different hosts or groups never share memories.

Issue 14 part 4, on the real daemon through its socket (what every bridge uses): the tenant
was the owner part of the remote without its host, so ``gitlab.com/orgA/backend/api`` and
``gitlab.com/orgB/backend/api`` were one tenant, and orgB's ``session_start`` injected orgA's
memory.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemons import Daemon, socket_client, start_daemon
from tests.helpers import data, run_cli

pytestmark = pytest.mark.anyio

LESSON = {
    "title": "Run the payment migrations with lock_timeout 5s",
    "content": "The payments table is hot; a migration without lock_timeout stalls every checkout.",
}
TASK = "write a migration for the payments table"


def checkout(path: Path, remote: str) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", remote], check=True)
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module: each case's checkouts are tenants of their own (new remotes),
    so the cases share no data; what is tested is the scope a checkout resolves to, not the
    daemon's lifecycle."""
    root = tmp_path_factory.mktemp("tenants")
    daemon = start_daemon(root / "data", root)
    yield daemon
    daemon.stop()


@pytest.mark.parametrize(
    ("owner", "intruder"),
    [
        ("https://gitlab.com/orgA/backend/api.git", "git@gitlab.com:orgB/backend/api.git"),
        ("git@github.com:acme/app.git", "https://git.client-corp.example.net/acme/app"),
    ],
)
async def test_another_host_or_group_never_gets_the_memories(
    daemon: Daemon, tmp_path: Path, owner: str, intruder: str
) -> None:
    mine, theirs = checkout(tmp_path / "mine", owner), checkout(tmp_path / "theirs", intruder)
    async with socket_client(daemon.socket, mine) as client:
        stored = data(await client.call_tool("memory_store", LESSON))
        again = data(await client.call_tool("session_start", {"task": TASK}))
        assert stored["id"] in [m["id"] for m in again["memories"]]  # the lesson is injectable
    async with socket_client(daemon.socket, theirs) as client:
        started = data(await client.call_tool("session_start", {"task": TASK}))
        assert started["memories"] == [] and "lock_timeout" not in started["injected_context"]
        found = data(await client.call_tool("memory_search", {"query": TASK, "scope": "org"}))
        assert found["memories"] == []


def test_status_shows_the_scope_and_where_each_part_came_from(tmp_path: Path) -> None:
    repo = checkout(tmp_path / "r", "https://ci:glpat-secret@gitlab.com/orgA/backend/api.git")
    shown = run_cli(tmp_path / "data", "status", "--json", "--path", str(repo), CONTEXTD_TEAM="payments")
    scope = json.loads(shown.stdout)["scope"]
    assert scope["tenant"].startswith("gitlab.com_orga_backend-") and scope["project"] == "api"
    assert scope["team"] == "payments" and scope["sources"]["team"] == "CONTEXTD_TEAM"
    assert "owner gitlab.com/orga/backend" in scope["sources"]["tenant"]
    assert "glpat-secret" not in shown.stdout
    text = run_cli(tmp_path / "data", "status", "--path", str(repo)).stdout
    assert f"tenant: {scope['tenant']}" in text and "not running" in text




async def test_a_newcomer_tenants_first_memory_is_never_listed_to_the_first_tenant(tmp_path: Path) -> None:
    """A collection that has held one owner only is read without that owner's filter in the
    engine (adapters/uniform_fields.py); another tenant's first write must put the filter back
    before anyone reads again. ``memories list`` through the daemon reads the memories with no
    second check (memory_search re-reads what it found by id, under the scope)."""
    mine, theirs = checkout(tmp_path / "mine", "git@github.com:acme/app.git"), checkout(
        tmp_path / "theirs", "git@github.com:intruder/app.git"
    )
    daemon = start_daemon(tmp_path / "data", tmp_path)
    try:
        async with socket_client(daemon.socket, mine) as client:
            for i in range(3):
                lesson = {"title": f"Acme lesson {i}", "content": f"Clear the acme build cache, step {i}"}
                assert not (await client.call_tool("memory_store", lesson)).is_error
        shared = json.loads(run_cli(tmp_path / "data", "status", "--json").stdout)["store"]["shared_by_every_point"]
        assert "tenant" in shared["memories"] and "tenant" in shared["memory_keys"], shared
        async with socket_client(daemon.socket, theirs) as client:
            plan = {"title": "Intruder payroll plan", "content": "Rotate the payroll export key every Friday"}
            theirs_id = data(await client.call_tool("memory_store", plan))["id"]
        status = json.loads(run_cli(tmp_path / "data", "status", "--json", "--path", str(mine)).stdout)["scope"]
        flags = ["--tenant", status["tenant"], "--team", status["team"], "--project", status["project"]]
        listed = run_cli(tmp_path / "data", "memories", "list", *flags, "--json")
        assert listed.returncode == 0, listed.stderr
        titles = sorted(m["title"] for m in json.loads(listed.stdout))
        assert titles == [f"Acme lesson {i}" for i in range(3)] and theirs_id not in listed.stdout, titles
        shown = run_cli(tmp_path / "data", "status").stdout.splitlines()
        line = next(text for text in shown if "memory_keys: every point shares" in text)
        assert "tenant" not in line, line  # the newcomer's first write ended it
    finally:
        daemon.stop()
