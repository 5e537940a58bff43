"""The daemon indexes its store in a child process while it serves (issue 19): memories stored
through the MCP tool trigger a build, searches and stores go on, the new generation is swapped in,
and ``contextd-mcp status`` says where indexing stands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data, run_cli

pytestmark = pytest.mark.anyio


def _keys_job(data_dir: Path) -> dict[str, object]:
    shown = run_cli(data_dir, "status", "--json")
    return json.loads(shown.stdout)["store"]["indexing"]["memory_keys"].get("job") or {}


async def test_the_daemon_swaps_in_an_indexed_generation_and_status_shows_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Threshold 1: the first look (every 64 key points written) starts a job on memory_keys.
    daemon = start_daemon(data_dir, tmp_path, CONTEXTD_INDEX_AFTER_POINTS="1", CONTEXTD_INDEX_NICE="0")
    try:
        async with socket_client(daemon.socket, tmp_path) as client:
            stored = []
            for i in range(40):
                lesson = {"title": f"Lesson {i}: pin the {i}th dependency", "content": f"Dependency {i} broke the build.",
                          "applies_when": [f"upgrading dependency {i}"]}
                stored.append(data(await client.call_tool("memory_store", lesson))["id"])
            deadline = time.monotonic() + 120
            while _keys_job(data_dir).get("stage") not in ("done", "failed") and time.monotonic() < deadline:
                found = data(await client.call_tool("memory_search", {"query": "pin the 3th dependency"}))
                assert found["memories"], "a search during indexing came back empty"
                time.sleep(0.2)
            job = _keys_job(data_dir)
            assert job.get("stage") == "done", job
            assert {"copy_s", "build_s", "open_s", "replay_s", "swap_s"} <= set(job)
            text = run_cli(data_dir, "status").stdout
            assert "indexing memory_keys:" in text and "done (copy_s" in text, text
            # Everything stored before and during the build is there after the swap.
            for i in (0, 17, 39):
                found = data(await client.call_tool("memory_search", {"query": f"pin the {i}th dependency", "limit": 3}))
                assert stored[i] in [m["id"] for m in found["memories"]]
        assert (data_dir / "store" / "memory_keys").is_symlink()
    finally:
        daemon.stop()
