"""Branches survive a daemon restart: state, budget spent and nesting, through the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_stdio import stdio
from tests.helpers import data, run_cli

pytestmark = pytest.mark.anyio


async def test_restart_mid_branch(data_dir: Path, project_dir: Path) -> None:
    async with stdio(data_dir, project_dir) as client:
        session = data(await client.call_tool("session_start", {"task": "long investigation"}))["session_id"]
        outer = data(await client.call_tool("branch_create", {"description": "outer", "budget": 4096}))
        inner = data(await client.call_tool("branch_create", {"description": "inner", "budget": 2048}))
        await client.call_tool("memory_store", {"title": "Work in the inner branch", "content": "Costs tokens."})
        before = data(await client.call_tool("branch_status", {"branch_id": inner["branch_id"]}))["branch"]
    assert run_cli(data_dir, "stop").returncode == 0

    async with stdio(data_dir, project_dir) as client:  # a new daemon, a new connection
        after = data(await client.call_tool("branch_status", {"branch_id": inner["branch_id"], "session_id": session}))
        assert after["active"] == inner["branch_id"]
        assert after["branch"]["status"] == "active" and after["branch"]["depth"] == 2
        assert after["branch"]["budget"]["used"] >= before["budget"]["used"]
        returned = data(
            await client.call_tool(
                "branch_return", {"branch_id": outer["branch_id"], "message": "done", "session_id": session}
            )
        )
        assert returned["closed_children"] == [inner["branch_id"]] and returned["active"] == "session"
