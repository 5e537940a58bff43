"""Giving back the pages of a store's memory-mapped files that requests do not read (Linux).

qdrant-edge maps each collection's write-ahead log (32 MiB files) and reads every entry of it when
it opens the shard: at 45k memories that left ~110 MiB of WAL pages (memory_keys and memories)
in the daemon's RSS, although nothing reads them again (new entries are appended at the end). The
pages are the kernel's page cache, reclaimable, but counted in RSS (issue 19's 400 MiB goal).
``MADV_PAGEOUT`` asks the kernel to reclaim them from this process now (BENCHMARKS.md, "Session
7: scale").

The payload indexes of a collection's appendable segment are read whole too: each (a keyword or
range index) is a 2 MiB page file and a 1 MiB tracker that the engine reads when it loads the
segment and then keeps on the heap, reading back only the few pages its points' values sit on.
Those pages are ones the next start reads back into the page cache (adapters/edge_warm.py), so
``let_go`` only unmaps them from this process (``MADV_DONTNEED`` on a shared mapping: the page
cache keeps them, a later read is a minor fault) (BENCHMARKS.md, "Session 13").
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path

_MADV_DONTNEED = 4
_MADV_PAGEOUT = 21  # Linux 5.4+, from asm-generic/mman-common.h


def page_out(directory: Path) -> int:
    """Pages out this process's mappings of files under ``directory``; the bytes advised (0 where
    the kernel or libc cannot)."""
    return _advise(directory, _MADV_PAGEOUT, lambda _perms, _path: True)


def let_go(directory: Path, only: Callable[[str], bool]) -> int:
    """Unmaps the resident pages of this process's shared mappings of the files under ``directory``
    that ``only`` accepts, leaving them in the page cache (a private mapping's written pages
    would be lost: those are left alone); the bytes advised."""
    return _advise(directory, _MADV_DONTNEED, lambda perms, path: perms.endswith("s") and only(path))


def _advise(directory: Path, advice: int, which: Callable[[str, str], bool]) -> int:
    try:
        libc, mappings = _libc(), list(_mappings(directory))
    except OSError:
        return 0
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    advised = 0
    for start, end, perms, path in mappings:
        if which(perms, path) and libc.madvise(start, end - start, advice) == 0:
            advised += end - start
    return advised


_MS_SYNC = 4


def write_back(directory: Path) -> int:
    """Writes back this process's dirty shared mappings of files under ``directory`` (msync):
    their pages are clean after, so the kernel marks the next write to any of them in its file's
    mtime (edge_generations.catch_up relies on it). The bytes synced."""
    # No fallback: without it a later write could go unseen (the caller then copies everything).
    libc = _libc()
    libc.msync.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    synced = 0
    for start, end, perms, path in _mappings(directory):
        if "s" not in perms:
            continue
        if libc.msync(start, end - start, _MS_SYNC) != 0:
            raise OSError(ctypes.get_errno(), f"msync of {path} failed")
        synced += end - start
    return synced


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL("libc.so.6", use_errno=True)


def _mappings(directory: Path) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, permissions, path) of this process's mappings of files under ``directory``."""
    prefix = str(directory.resolve()) + "/"
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefix):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        yield start, end, fields[1], fields[5]
