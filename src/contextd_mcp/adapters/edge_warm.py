"""Read the embedded store's files back into the page cache as the daemon starts (issue 19).

The engine drops its files from the page cache when it closes a collection (measured: 185 MiB
of quantised vectors resident before ``EdgeShard.close``, none after), so every restart found
a cold store: at 100k memories the first search then waited ~1 s on ~10,000 page faults read
from disk. ``warm`` asks the kernel to read the files ahead (``POSIX_FADV_WILLNEED``: the I/O
goes on in the kernel while the interpreter imports the MCP SDK and builds the tools, nothing
is mapped, so no RSS), smallest first (the id trackers, payload indexes and their maps, which
every filtered search reads whole), up to ``budget`` bytes actually on disk (holes in sparse
files cost nothing and are not counted). The write-ahead log is skipped: it is read through
once at open and only appended to after.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from contextd_mcp import limits

_CHUNK = 4 << 20
_SKIPPED_DIRS = frozenset({"wal", ".generations", "temp_segments"})


def _files(store: Path) -> Iterator[tuple[int, Path]]:
    """(bytes on disk, path) of each collection's live files; a collection is a directory or the
    link to its live generation (adapters/edge_generations.py)."""
    for collection in store.iterdir():
        if collection.name in _SKIPPED_DIRS or not collection.is_dir():
            continue
        live = collection.resolve()
        for directory, subdirs, names in os.walk(live):
            subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS]
            for name in names:
                path = Path(directory, name)
                try:
                    yield path.stat().st_blocks * 512, path
                except OSError:  # removed meanwhile (an index swap): nothing to warm
                    continue


def plan(store: Path, budget: int) -> list[Path]:
    """The files to read ahead, smallest first, while their bytes on disk fit ``budget``."""
    chosen: list[Path] = []
    total = 0
    for size, path in sorted(_files(store)):
        if size == 0:
            continue
        if total + size > budget:
            break
        chosen.append(path)
        total += size
    return chosen


def read_ahead(paths: list[Path]) -> int:
    """Starts the kernel's read of each file into the page cache; the bytes asked for."""
    asked = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            # One advice per chunk: the kernel reads at most ~8 MiB of a single one (measured).
            for offset in range(0, size, _CHUNK):
                os.posix_fadvise(fd, offset, min(_CHUNK, size - offset), os.POSIX_FADV_WILLNEED)
            asked += size
        except OSError:  # a filesystem without readahead: the first searches read it themselves
            pass
        finally:
            os.close(fd)
    return asked


def warm(store: Path, budget: int = limits.STORE_WARM_MAX_BYTES) -> threading.Thread | None:
    """``read_ahead(plan(store, budget))`` on a thread, beside the daemon's imports: a 100k store
    is ~560 files to list and ~300 advices, syscalls that release the GIL.
    None when there is no store yet."""
    if budget <= 0 or not store.is_dir():
        return None
    thread = threading.Thread(target=lambda: read_ahead(plan(store, budget)), name="store-warm", daemon=True)
    thread.start()
    return thread
