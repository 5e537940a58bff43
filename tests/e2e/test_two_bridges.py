"""Two agents on one machine: two stdio bridges, one daemon, no lock error, no lost write."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.e2e.test_stdio import stdio
from tests.helpers import data

pytestmark = pytest.mark.anyio

PER_AGENT = 15


async def test_interleaved_writes_from_two_bridges_are_all_seen(data_dir: Path, project_dir: Path) -> None:
    ids: dict[str, list[str]] = {"a": [], "b": []}
    # Both bridges race to start the daemon (bridge_starts): the start lock lets one win.
    async with stdio(data_dir, project_dir, bridge_starts=True) as first, stdio(data_dir, project_dir, bridge_starts=True) as second:

        async def agent(name: str, client: object) -> None:
            for i in range(PER_AGENT):
                result = await client.call_tool(  # type: ignore[attr-defined]
                    "memory_store",
                    {"title": f"Lesson {i} from agent {name}", "content": f"Agent {name} learned fact number {i}.", "tags": [name]},
                )
                ids[name].append(data(result)["id"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent, "a", first)
            tg.start_soon(agent, "b", second)

        for client, other in ((first, "b"), (second, "a")):
            for mid in ids[other]:
                assert data(await client.call_tool("memory_get", {"memory_id": mid}))["tags"] == [other]
            found = data(
                await client.call_tool("memory_search", {"query": f"agent {other} learned", "tags": [other], "limit": 20})
            )
            assert {m["id"] for m in found["memories"]} == set(ids[other])
    daemon_logs = (data_dir / "daemon.log").read_text()
    assert "already owns" not in daemon_logs and "Traceback" not in daemon_logs
