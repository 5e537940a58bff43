"""How many malloc arenas the daemon's threads share (glibc; a no-op elsewhere).

glibc gives a thread that allocates while others hold the arenas an arena of its own, up to
8 per core, and keeps what is freed in each. The daemon answers tool calls on a pool of worker
threads, and every one that ran a search or a store (the engine's buffers, payload dicts) kept
its own few MiB to tens of MiB: RSS grew with each write until every arena held its share
(BENCHMARKS.md, "Session 6: RSS under writes"). Fewer arenas share the freed memory instead.
Must run before the threads start: glibc fixes its arena count once it passes eight.
"""

from __future__ import annotations

import ctypes

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


def limit_arenas(arenas: int) -> bool:
    """Caps the process's malloc arenas at ``arenas``; False where libc is not glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, arenas))


def release_freed() -> None:
    """Gives what the process has freed back to the OS (glibc keeps it in its arenas otherwise);
    a no-op where libc is not glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
