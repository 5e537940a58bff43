"""A token's agent is the one fixed when the token was made; a read-only token writes nothing.

Both attacks of issue 14 part 5, on the real daemon through the real HTTP client:
- a token bound to a restricted ``reviewer`` sent ``X-Contextd-Project`` naming a project
  where someone had made a full-access ``reviewer``, and wrote memories as that one;
- a read-only token's ``skill_get`` and ``prompts/get`` incremented ``use_count``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemons import Daemon, create_token, http_client, serving_http, start_daemon
from tests.helpers import data, error_text, free_port, run_cli

pytestmark = pytest.mark.anyio

RESTRICTED = {"memories": "read", "skills": "read", "sessions": "read", "checkpoints": "read"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serving_http(tmp_path_factory.mktemp("identity"), "--tenant", "acme", "--name", "admin") as (daemon, admin, cwd):
        yield {"daemon": daemon, "data_dir": daemon.data_dir, "cwd": cwd, "admin": admin}


async def _agent(base: str, admin: str, project: str, **fields: Any) -> str:
    async with http_client(base, admin, **{"X-Contextd-Project": project}) as client:
        made = data(await client.call_tool("agent_create", {"description": "Reviews.", "system_prompt": "Review.", **fields}))
    return str(made["id"])


async def test_a_token_agent_is_not_looked_up_in_a_project_the_client_picks(world: dict[str, Any]) -> None:
    base, admin = world["daemon"].base, world["admin"]
    # The restricted reviewer applies across the tenant (org level); in project "open" someone
    # made a full-access reviewer, which wins a lookup by name made from that project.
    await _agent(base, admin, "home", name="reviewer", collections_access=RESTRICTED, scope="org")
    await _agent(base, admin, "open", name="reviewer")
    token = create_token(world["data_dir"], "--tenant", "acme", "--agent", "reviewer", "--name", "reviewer")

    for project in ("home", "open", "anywhere"):
        async with http_client(base, token, **{"X-Contextd-Project": project}) as client:
            refused = error_text(await client.call_tool("memory_store", {"title": "Injected", "content": "By the reviewer."}))
            assert refused.startswith("denied") and "reviewer" in refused and "write memories" in refused
            assert "memories" in data(await client.call_tool("memory_search", {"query": "anything"}))


async def test_a_token_agent_must_exist_when_the_token_is_made(world: dict[str, Any]) -> None:
    made = run_cli(world["data_dir"], "token", "create", "--tenant", "acme", "--agent", "ghost")
    assert made.returncode != 0 and "ghost" in made.stderr and "agent_create" in made.stderr
    assert "ctxd_" not in made.stdout


async def test_a_deleted_agent_makes_its_token_fail_clearly(world: dict[str, Any]) -> None:
    base, admin = world["daemon"].base, world["admin"]
    agent_id = await _agent(base, admin, "temp", name="short-lived", collections_access=RESTRICTED)
    token = create_token(world["data_dir"], "--tenant", "acme", "--project", "temp", "--agent", "short-lived")
    async with http_client(base, token) as client:
        assert "memories" in data(await client.call_tool("memory_search", {"query": "anything"}))
    async with http_client(base, admin, **{"X-Contextd-Project": "temp"}) as client:
        data(await client.call_tool("agent_delete", {"agent_id": agent_id}))
    # A new agent of the same name is another identity: the token does not pick it up.
    await _agent(base, admin, "temp", name="short-lived")
    async with http_client(base, token) as client:
        refused = error_text(await client.call_tool("memory_search", {"query": "anything"}))
    assert refused.startswith("denied") and "short-lived" in refused and "no longer exists" in refused


def _snapshot(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record's payload in every collection of the stopped daemon's store."""
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.tenant_migration import existing_collections

    store = EdgeStore(data_dir / "store")
    try:
        snapshot: dict[str, dict[str, Any]] = {}
        for spec in existing_collections(data_dir / "store"):
            store.ensure(spec)
            for record in store.scan(spec.name, {}, limit=100_000):
                snapshot[f"{spec.name}/{record.id}"] = record.payload
        return snapshot
    finally:
        store.close()


async def test_a_read_only_token_writes_nothing_at_all(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    writer = create_token(data_dir, "--tenant", "acme", "--project", "api", "--name", "writer")
    reader = create_token(data_dir, "--tenant", "acme", "--project", "api", "--read-only", "--name", "reader")
    daemon: Daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}")
    try:
        async with http_client(daemon.base, writer) as client:
            skill = data(await client.call_tool("skill_create", {
                "name": "review", "description": "Review a diff.", "prompt_template": "Review {{file}}."}))
            agent = data(await client.call_tool("agent_create", {
                "name": "helper", "description": "Helps.", "system_prompt": "Help.", "skills": ["review"]}))
            memory = data(await client.call_tool("memory_store", {"title": "Pin boto3", "content": "Pin boto3 below 1.36."}))
            remedy = data(await client.call_tool("remediation_record", {
                "title": "ModuleNotFoundError: No module named 'yaml'", "problem": "No module named 'yaml'",
                "solution": "pip install PyYAML"}))
            policy = data(await client.call_tool("policy_set", {
                "title": "No force push", "rule": {"kind": "command_regex", "pattern": "git push --force"},
                "severity": "critical", "scope": "project"}))
            started = data(await client.call_tool("session_start", {"task": "upgrade boto3"}))
            data(await client.call_tool("checkpoint_save", {"summary": "Halfway."}))
    finally:
        daemon.stop()
    before = _snapshot(data_dir)
    assert any(key.startswith("skills/") for key in before) and any(key.startswith("memories/") for key in before)

    daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}")
    try:
        async with http_client(daemon.base, reader) as client:
            for _ in range(2):
                data(await client.call_tool("skill_get", {"skill_id": skill["id"]}))
                data(await client.call_tool("skill_get", {"name": "review"}))
                data(await client.call_tool("skill_list", {"query": "review"}))
                assert [p.name for p in (await client.list_prompts()).prompts] == ["review"]
                await client.get_prompt("review", {"file": "a.py"})
                data(await client.call_tool("agent_get", {"agent_id": agent["id"]}))
                data(await client.call_tool("agent_list", {}))
                data(await client.call_tool("memory_get", {"memory_id": memory["id"]}))
                data(await client.call_tool("memory_search", {"query": "boto3"}))
                data(await client.call_tool("remediation_search", {"error": "No module named 'yaml'"}))
                data(await client.call_tool("remediation_get", {"remediation_id": remedy["id"]}))
                data(await client.call_tool("policy_get", {"policy_id": policy["id"]}))
                data(await client.call_tool("policy_list", {}))
                data(await client.call_tool("policy_check", {"action": "git push --force origin main"}))
                data(await client.call_tool("checkpoint_list", {"session_id": started["session_id"]}))
    finally:
        daemon.stop()
    after = _snapshot(data_dir)
    changed = sorted(
        f"{key}: {field}"
        for key in before.keys() | after.keys()
        for field in (before.get(key) or {}).keys() | (after.get(key) or {}).keys()
        if (before.get(key) or {}).get(field) != (after.get(key) or {}).get(field)
    )
    assert changed == []
