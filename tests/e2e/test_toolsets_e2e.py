"""Toolsets through the real commands: the stdio bridge, the daemon's flag, the HTTP header, the hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.e2e.daemons import http_client, serving_http, start_as_bridge, start_daemon
from tests.e2e.test_hooks import hook, sample
from tests.helpers import CLI, data, env_for, error_text, run_cli

pytestmark = pytest.mark.anyio

DEFAULT = {"memory_store", "memory_search", "memory_get", "memory_feedback", "memory_outcome", "session_start",
           "session_end", "distill_status", "checkpoint_save", "checkpoint_list", "checkpoint_resume", "bash",
           "toolsets"}
POLICY = {"policy_set", "policy_get", "policy_list", "policy_delete", "policy_check", "policy_pack_enable"}
RULE = {"title": "No force-push", "severity": "critical", "scope": "project",
        "rule": {"kind": "command_regex", "pattern": "git push .*--force"}}


def stdio(data_dir: Path, cwd: Path, *args: str, heard: list[Any] | None = None, **env: str) -> Client:
    start_as_bridge(data_dir, env_for(data_dir, **env))  # its daemon, as the bridge would start it
    params = StdioServerParameters(
        command=CLI[0], args=[*CLI[1:], "stdio", *args], env=env_for(data_dir, **env), cwd=str(cwd)
    )

    async def on_message(message: Any) -> None:
        if heard is not None:
            heard.append(message)

    return Client(params, read_timeout_seconds=60, message_handler=on_message)


async def names(client: Any) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def test_a_bridge_starts_with_the_default_set_and_enables_policy_in_one_call(shared_data_dir: Path, project_dir: Path) -> None:
    heard: list[Any] = []
    async with stdio(shared_data_dir, project_dir, heard=heard, CONTEXTD_TOOLSETS="default") as agent, \
            stdio(shared_data_dir, project_dir, CONTEXTD_TOOLSETS="default") as other:
        assert await names(agent) == DEFAULT
        refused = await agent.call_tool("policy_set", RULE)
        assert refused.is_error and error_text(refused).startswith("not_found: policy_set is in toolset 'policy'")

        added = data(await agent.call_tool("toolsets", {"enable": ["policy"]}))["added_tools"]
        assert set(added) == POLICY
        if agent.protocol_version == "2026-07-28":  # notices ride a listen stream in this era
            assert agent.server_capabilities.tools.list_changed is True
        else:
            with anyio.fail_after(10):
                while not any(isinstance(m, types.ToolListChangedNotification) for m in heard):
                    await anyio.sleep(0.02)
        assert await names(agent) == DEFAULT | POLICY
        assert data(await agent.call_tool("policy_set", RULE))["id"]
        # Another agent of the same daemon still has the default set, and its refusal.
        assert await names(other) == DEFAULT
        assert (await other.call_tool("policy_list", {})).is_error


async def test_the_flag_and_the_variable_choose_a_bridges_toolsets(shared_data_dir: Path, project_dir: Path) -> None:
    async with stdio(shared_data_dir, project_dir, "--toolsets", "memory,policy", CONTEXTD_TOOLSETS="all") as client:
        listed = await names(client)
    assert listed == {n for n in DEFAULT if n.startswith("memory_")} | POLICY | {"toolsets"}
    async with stdio(shared_data_dir, project_dir, CONTEXTD_TOOLSETS="folding") as client:
        assert await names(client) == {"branch_create", "branch_return", "branch_status", "toolsets"}

    bad = run_cli(shared_data_dir, "stdio", "--toolsets", "memory,nope", timeout=60)
    assert bad.returncode != 0
    assert "unknown toolset 'nope'" in bad.stderr and "policy" in bad.stderr


async def test_the_daemon_flag_sets_the_default_and_the_hooks_still_work(tmp_path: Path, project_dir: Path) -> None:
    data_dir = tmp_path / "data"
    bad = run_cli(data_dir, "serve", "--toolsets", "nope", timeout=60)
    assert bad.returncode == 2 and "--toolsets / CONTEXTD_TOOLSETS: unknown toolset 'nope'" in bad.stderr

    daemon = start_daemon(data_dir, project_dir, "--toolsets", "memory")
    try:
        # The bridge sends no choice of its own: the daemon's flag decides.
        env = {k: v for k, v in env_for(data_dir).items() if k != "CONTEXTD_TOOLSETS"}
        params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "stdio"], env=env, cwd=str(project_dir))
        async with Client(params, read_timeout_seconds=60) as client:
            assert await names(client) == {n for n in DEFAULT if n.startswith("memory_")} | {"toolsets"}
        # The hooks call session_start / checkpoint_save / session_end, outside that set.
        started = hook(data_dir, "session-start", sample("session_start", project_dir, None), project_dir,
                       CONTEXTD_TOOLSETS="memory")
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["hookSpecificOutput"]["hookEventName"] == "SessionStart"
        log = [json.loads(line) for line in (data_dir / "audit.log").read_text().splitlines()]
        assert [e["outcome"] for e in log if e.get("tool") == "session_start"] == ["ok"]
    finally:
        daemon.stop()


async def test_an_http_client_chooses_its_toolsets_by_header(tmp_path: Path) -> None:
    with serving_http(tmp_path, "--tenant", "acme", CONTEXTD_TOOLSETS="default") as (daemon, token, _):
        assert daemon.base is not None
        async with http_client(daemon.base, token) as client:
            assert await names(client) == DEFAULT
        async with http_client(daemon.base, token, **{"X-Contextd-Toolsets": "policy"}) as client:
            assert await names(client) == POLICY | {"toolsets"}
            assert data(await client.call_tool("policy_list", {}))["policies"] == []
            refused = await client.call_tool("memory_search", {"query": "x"})
            assert error_text(refused).startswith("not_found: memory_search is in toolset 'memory'")
        async with http_client(daemon.base, token, **{"X-Contextd-Toolsets": "nope"}) as client:
            text = error_text(await client.call_tool("memory_search", {"query": "x"}))
            assert text.startswith("invalid_input: toolsets") and "'nope'" in text
