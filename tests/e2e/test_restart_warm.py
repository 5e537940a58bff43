"""A restarted daemon reads its store back into the page cache before its first search (issue 19).

The engine evicts a collection's files when it closes them, so each start found a cold store
(BENCHMARKS.md, "Session 9: restart"). The real daemon, stopped and started again with no
request made: its store's files are resident once it announces.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from tests.adapters.test_edge_warm import evict, resident
from tests.e2e.daemons import socket_client, start_daemon


def _files(data_dir: Path) -> list[Path]:
    live = (data_dir / "store" / "memory_keys").resolve()
    return [p for p in live.rglob("*") if p.is_file() and "wal" not in p.parts and p.stat().st_blocks > 0]


def test_a_restarted_daemon_has_its_store_read_back_before_the_first_search(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    daemon = start_daemon(data_dir, cwd)

    async def store() -> None:
        async with socket_client(daemon.socket, cwd) as client:
            for i in range(20):
                done = await client.call_tool("memory_store", {"title": f"lesson {i}", "content": f"the build broke because of {i}"})
                assert not done.is_error, str(done.content[0])

    try:
        anyio.run(store)
    finally:
        daemon.stop()
    files = _files(data_dir)
    evict(files)  # what the engine's close does on a disk; made certain here
    pages = sum((p.stat().st_size + 4095) // 4096 for p in files)
    if sum(resident(p) for p in files) == pages:
        pytest.skip("this filesystem keeps every page (tmpfs): nothing to read back")

    daemon = start_daemon(data_dir, cwd)
    try:
        warmed = pages = 0
        for _ in range(50):  # the kernel's reads finish soon after the advice
            # Listed again: the open may fold a journal into its file.
            files = _files(data_dir)
            pages = sum((p.stat().st_size + 4095) // 4096 for p in files)
            warmed = sum(resident(p) for p in files)
            if warmed >= 0.9 * pages:
                break
            time.sleep(0.1)
        assert warmed >= 0.9 * pages, (warmed, pages)
    finally:
        daemon.stop()
