"""A restarted daemon reads its store back into the page cache before its first search (issue 19).

The engine evicts a collection's files when it closes them, so each start found a cold store
(BENCHMARKS.md, "Session 9: restart"). The real daemon, stopped (which records the pages its
store had in the page cache) and started again with no request made: those pages are resident
soon after it announces.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from contextd_mcp.adapters import edge_warm
from tests.adapters.test_edge_warm import evict, resident_in
from tests.e2e.daemons import socket_client, start_daemon


def _files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "store").resolve().rglob("*") if p.is_file()]


def test_a_restarted_daemon_has_its_store_read_back_before_the_first_search(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    # Real starts (zygote=False): the test is about a restart's own start (the store read back
    # while it imports and loads), as a user's restart runs it.
    daemon = start_daemon(data_dir, cwd, zygote=False)

    async def store() -> None:
        async with socket_client(daemon.socket, cwd) as client:
            for i in range(20):
                done = await client.call_tool("memory_store", {"title": f"lesson {i}", "content": f"the build broke because of {i}"})
                assert not done.is_error, str(done.content[0])

    try:
        anyio.run(store)
    finally:
        daemon.stop()
    assert (data_dir / "store" / edge_warm.RECORD).exists()  # the stop recorded its working set
    files = _files(data_dir)
    # A working set as a long-running daemon's: every data file read whole, recorded as its stop
    # would. (The small metadata files are left out: the engine writes them anew at each open.)
    data = [p for p in _files(data_dir) if p.stat().st_size >= 64 << 10 and "wal" not in p.parts]
    for path in data:
        path.read_bytes()
    edge_warm.record(data_dir / "store")
    recorded = [r for r in edge_warm.plan(data_dir / "store", 1 << 30) if r[0].resolve() in set(data)]
    evict(files)  # what the engine's close does to its files; the whole store, to be certain
    wanted = sum(length for _, _, length in recorded) // 4096
    assert recorded and wanted > 0

    def resident_recorded() -> int:
        return sum(resident_in(path, offset, length) for path, offset, length in recorded if path.exists())

    if resident_recorded() == wanted:
        pytest.skip("this filesystem keeps every page (tmpfs): nothing to read back")

    daemon = start_daemon(data_dir, cwd, zygote=False)
    try:
        warmed = 0
        for _ in range(50):  # the kernel's reads finish soon after the advice
            warmed = resident_recorded()
            if warmed >= 0.9 * wanted:
                break
            time.sleep(0.1)
        assert warmed >= 0.9 * wanted, (warmed, wanted)
    finally:
        daemon.stop()
