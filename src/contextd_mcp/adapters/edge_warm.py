"""Read the embedded store's files back into the page cache as the daemon starts (issue 19).

The engine drops its files from the page cache when it closes a collection (measured: 185 MiB
of quantised vectors resident before ``EdgeShard.close``, none after), so every restart found
a cold store: at 100k memories the first search then waited ~1 s on ~13,000 page faults read
from disk. So the store, as it closes, ``record``s which pages of its files the process had
touched through its mappings (the working set its searches used), and the next start has the
kernel read those back (``POSIX_FADV_WILLNEED``: the I/O goes on in the
kernel while the interpreter imports the MCP SDK and builds the tools; nothing is mapped, so no
RSS), up to ``budget`` bytes. A store with no record (never closed by this version, or killed)
gets its files smallest first instead: the id trackers, payload indexes and their maps, which
every filtered search reads whole. The write-ahead log is skipped: it is read through once at
open and only appended to after.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from contextd_mcp import limits
from contextd_mcp.adapters.thread_priority import LOWEST, lower_this_thread

RECORD = ".warm.json"  # in the store's root
_CHUNK = 4 << 20  # one advice per chunk: the kernel reads at most ~8 MiB of a single one (measured)
_SKIPPED_DIRS = frozenset({"wal", ".generations", "temp_segments"})
_PAGE = mmap.PAGESIZE
Range = tuple[Path, int, int]  # file, offset, length


def _files(store: Path) -> Iterator[tuple[int, str, Path]]:
    """(bytes on disk, name under the store, path) of each collection's live files; a collection
    is a directory or the link to its live generation (adapters/edge_generations.py), and the name
    goes through the link, so a record outlives an index swap for the files that did."""
    for collection in store.iterdir():
        if collection.name in _SKIPPED_DIRS or not collection.is_dir():
            continue
        live = collection.resolve()
        for directory, subdirs, names in os.walk(live):
            subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS]
            for name in names:
                path = Path(directory, name)
                try:
                    yield path.stat().st_blocks * 512, f"{collection.name}/{path.relative_to(live)}", path
                except OSError:  # removed meanwhile (an index swap): nothing to warm
                    continue


def _runs(pages: list[int]) -> list[tuple[int, int]]:
    """Sorted page numbers as (offset, length) runs, in bytes."""
    runs: list[tuple[int, int]] = []
    for page in sorted(set(pages)):
        if runs and runs[-1][0] + runs[-1][1] == page * _PAGE:
            runs[-1] = (runs[-1][0], runs[-1][1] + _PAGE)
        else:
            runs.append((page * _PAGE, _PAGE))
    return runs


def touched_pages(store: Path) -> dict[str, list[tuple[int, int]]]:
    """The pages of the store's files this process has mapped and touched (present in its page
    tables: /proc/self/pagemap's bit 63), by name under the store: what its searches used, and
    not what a read-ahead merely put in the page cache, which would be recorded forever after."""
    names = {str(path): name for _, name, path in _files(store)}
    touched: dict[str, list[int]] = {}
    with open("/proc/self/pagemap", "rb") as pagemap:
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)
            name = names.get(fields[5]) if len(fields) == 6 else None
            if name is None:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            first_page = int(fields[2], 16) // _PAGE
            pagemap.seek(start // _PAGE * 8)
            entries = pagemap.read((end - start) // _PAGE * 8)
            present = [
                first_page + i
                for i in range(len(entries) // 8)
                if entries[i * 8 + 7] & 0x80  # bit 63, little-endian
            ]
            if present:
                touched.setdefault(name, []).extend(present)
    return {name: _runs(pages) for name, pages in touched.items()}


def record(store: Path) -> int:
    """Writes which pages of the store's files this process used (called before the engine
    closes them); the bytes recorded. Nothing used (a command that opened the store and read
    nothing) leaves the last record as it was; a failure leaves no new one."""
    files = touched_pages(store)
    total = sum(length for runs in files.values() for _, length in runs)
    if total == 0:
        return 0
    target = store / RECORD
    partial = target.with_name(RECORD + ".tmp")
    partial.write_text(json.dumps({"version": 1, "files": files}))
    partial.replace(target)
    return total


def _recorded(store: Path) -> Iterator[Range]:
    try:
        files = json.loads((store / RECORD).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    root = store.resolve()
    for name, runs in files.items():
        # Only the store's own files: the record is read from disk, and a name that climbs out
        # (``..``, an absolute path, a planted link) must not make the daemon open anything else.
        path = (store / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        for offset, length in runs:
            yield path, int(offset), int(length)


def plan(store: Path, budget: int) -> list[Range]:
    """What to read ahead, within ``budget`` bytes: the recorded pages in the order they were
    recorded, else whole files, smallest first (bytes on disk: holes in sparse files cost
    nothing and are not counted)."""
    chosen: list[Range] = []
    total = 0
    recorded = list(_recorded(store))
    if recorded:
        for path, offset, length in recorded:
            if total + length > budget:
                break
            chosen.append((path, offset, length))
            total += length
        return chosen
    for size, _, path in sorted(_files(store), key=lambda f: (f[0], f[1])):
        if size == 0:
            continue
        if total + size > budget:
            break
        chosen.append((path, 0, path.stat().st_size))
        total += size
    return chosen


def read_ahead(ranges: list[Range]) -> int:
    """Starts the kernel's read of each range into the page cache; the bytes asked for."""
    asked = 0
    for path, offset, length in ranges:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone since recorded (an index swap): nothing to read
            continue
        try:
            for start in range(offset, offset + length, _CHUNK):
                os.posix_fadvise(fd, start, min(_CHUNK, offset + length - start), os.POSIX_FADV_WILLNEED)
            asked += length
        except OSError:  # a filesystem without readahead: the first searches read it themselves
            pass
        finally:
            os.close(fd)
    return asked


def warm(store: Path, budget: int = limits.STORE_WARM_MAX_BYTES) -> threading.Thread | None:
    """``read_ahead(plan(store, budget))`` on a thread, beside the daemon's imports (the
    advices are syscalls that release the GIL). None when there is no store yet."""
    if budget <= 0 or not store.is_dir():
        return None
    def run() -> None:
        # Niced, this thread alone: the kernel's share of the reading is charged to it, and must
        # not slow the imports beside it.
        lower_this_thread(LOWEST)
        read_ahead(plan(store, budget))

    thread = threading.Thread(target=run, name="store-warm", daemon=True)
    thread.start()
    return thread
