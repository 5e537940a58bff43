"""Giving back the pages of a store's memory-mapped files that requests do not read (Linux).

qdrant-edge maps each collection's write-ahead log (32 MiB files) and reads every entry of it when
it opens the shard: at 45k memories that left ~110 MiB of WAL pages (memory_keys and memories)
in the daemon's RSS, although nothing reads them again (new entries are appended at the end). The
pages are the kernel's page cache, reclaimable, but counted in RSS (issue 19's 400 MiB goal).
``MADV_PAGEOUT`` asks the kernel to reclaim them from this process now (BENCHMARKS.md, "Session
7: scale").

The same holds for the payload indexes of a collection's appendable segment: each (a keyword or
range index) is a 2 MiB page file and a 1 MiB tracker that the engine reads whole when it loads
the segment and then keeps on the heap, reading back only the few pages its points' values sit on
(BENCHMARKS.md, "Session 13").
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

_MADV_PAGEOUT = 21  # Linux 5.4+, from asm-generic/mman-common.h


def page_out(directory: Path, only: Callable[[str], bool] | None = None) -> int:
    """Pages out this process's mappings of files under ``directory`` (those whose path ``only``
    accepts, when given); the bytes advised (0 where the kernel or libc cannot)."""
    prefix = str(directory.resolve()) + "/"
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return 0
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    advised = 0
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefix) or (only is not None and not only(fields[5])):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if libc.madvise(start, end - start, _MADV_PAGEOUT) == 0:
            advised += end - start
    return advised


_MS_SYNC = 4


def write_back(directory: Path) -> int:
    """Writes back this process's dirty shared mappings of files under ``directory`` (msync):
    their pages are clean after, so the kernel marks the next write to any of them in its file's
    mtime (edge_generations.catch_up relies on it). The bytes synced."""
    prefix = str(directory.resolve()) + "/"
    # No fallback: without it a later write could go unseen (the caller then copies everything).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    maps = Path("/proc/self/maps").read_text()
    libc.msync.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    synced = 0
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefix) or "s" not in fields[1]:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if libc.msync(start, end - start, _MS_SYNC) != 0:
            raise OSError(ctypes.get_errno(), f"msync of {fields[5]} failed")
        synced += end - start
    return synced
