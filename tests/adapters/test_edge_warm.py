"""Reading the embedded store back into the page cache at start (adapters/edge_warm.py, issue 19).

The engine drops a collection's files from the page cache when it closes it, so a restarted
daemon found its store cold and its first search at 100k memories waited ~1 s on page faults
(BENCHMARKS.md, "Session 9: restart"). Residency is read with mincore(2) on a mapping of each
file (mapping does not read it); on a filesystem that keeps every page (tmpfs) nothing is ever
evicted and the tests that need an eviction say so and skip.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from contextd_mcp import limits
from contextd_mcp.adapters import edge_warm
from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports.vector_store import CollectionSpec, Record

DIM = 384  # the shipped model's: the vectors file is large enough to be seen leaving the cache
SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project"),
                      hot_fields=("tenant", "project"), sparse=True)
_PAGE = mmap.PAGESIZE


def resident_pages(path: Path) -> list[int]:
    """Which pages of ``path`` are in the page cache."""
    size = path.stat().st_size
    if size == 0:
        return []
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    flags = ctypes.create_string_buffer((size + _PAGE - 1) // _PAGE)
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        view = ctypes.c_char.from_buffer(mapped)
        assert libc.mincore(ctypes.addressof(view), size, flags) == 0, os.strerror(ctypes.get_errno())
        del view
    return [i for i, flag in enumerate(flags.raw) if flag & 1]


def resident(path: Path) -> int:
    return len(resident_pages(path))


def resident_in(path: Path, offset: int, length: int) -> int:
    """Pages of ``path`` in the page cache within [offset, offset + length)."""
    return sum(1 for page in resident_pages(path) if offset <= page * _PAGE < offset + length)


def store_files(root: Path) -> list[Path]:
    return [p for p in (root / "keys").resolve().rglob("*") if p.is_file() and "wal" not in p.parts]


def evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def filled_store(root: Path, n: int = 3000) -> Path:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = EdgeStore(root)
    store.ensure(SPEC)
    store.upsert("keys", [Record(str(uuid.uuid4()), {"tenant": "t", "project": "p"}, v.tolist(), {i % 50: 1.0})
                          for i, v in enumerate(vectors)])
    store.flush()
    for path in store_files(root):
        with path.open("rb") as f:  # every file in the page cache, as a running daemon's would be
            while f.read(1 << 20):
                pass
    store.close()
    return root


def test_the_engine_drops_the_store_from_the_page_cache_when_it_closes(tmp_path: Path) -> None:
    # Why warming is needed: what a daemon's stop leaves for the next start.
    root = filled_store(tmp_path)
    left = sum(resident(p) for p in store_files(root))
    total = sum((p.stat().st_size + _PAGE - 1) // _PAGE for p in store_files(root))
    if left == total:
        pytest.skip("this filesystem keeps every page (tmpfs): nothing is evicted")
    assert left < total // 2, (left, total)


def test_warming_reads_an_evicted_store_back_into_the_page_cache(tmp_path: Path) -> None:
    root = filled_store(tmp_path)
    (root / edge_warm.RECORD).unlink()  # a store closed by an older version, or killed: whole files
    files = store_files(root)
    evict(files)
    before = sum(resident(p) for p in files)
    total = sum((p.stat().st_size + _PAGE - 1) // _PAGE for p in files)
    if before == total:
        pytest.skip("this filesystem keeps every page (tmpfs): nothing to warm")
    thread = edge_warm.warm(root)
    assert thread is not None
    thread.join(timeout=30)
    # WILLNEED starts the reads; they finish soon after (the pages are then resident).
    after = 0
    for _ in range(50):
        after = sum(resident(p) for p in files)
        if after >= 0.9 * total:
            break
        os.sched_yield()
        __import__("time").sleep(0.1)
    assert before < 0.5 * total and after >= 0.9 * total, (before, after, total)
    # The files are read, not changed: the store opens and answers as before.
    store = EdgeStore(root)
    store.ensure(SPEC)
    assert store.count("keys", {"tenant": "t", "project": "p"}) == 3000
    store.close()


def test_a_closed_store_records_the_pages_it_used_and_the_next_start_reads_exactly_those(tmp_path: Path) -> None:
    root = filled_store(tmp_path)
    recorded = edge_warm.plan(root, 1 << 30)
    assert (root / edge_warm.RECORD).exists() and recorded  # EdgeStore.close recorded its pages
    assert {path.resolve() for path, _, _ in recorded} <= set(store_files(root))
    # Pages 1-2 of one file touched through a mapping, as the engine's searches touch theirs; another
    # file read whole with read(), as a read-ahead would leave it: only the first is the working set.
    big, other = sorted(store_files(root), key=lambda p: p.stat().st_size)[-2:]
    other.read_bytes()
    with big.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped[_PAGE] >= 0 and mapped[2 * _PAGE] >= 0
        recorded_bytes = edge_warm.record(root)
    again = edge_warm.plan(root, 1 << 30)
    # The kernel maps a fault's neighbours too (fault-around, 64 KiB): the record is that window.
    assert {path.resolve() for path, _, _ in again} == {big}, again
    assert any(offset <= _PAGE and offset + length >= 3 * _PAGE for _, offset, length in again), again
    assert 2 * _PAGE <= recorded_bytes == sum(length for _, _, length in again) <= 32 * _PAGE
    # Nothing touched (a command that opened the store and read nothing): the record stays.
    assert edge_warm.record(root) == 0 and edge_warm.plan(root, 1 << 30) == again
    # A record that cannot be read is no plan of its own: whole files, smallest first.
    (root / edge_warm.RECORD).write_text("{not json")
    assert [offset for _, offset, _ in edge_warm.plan(root, 1 << 30) if offset] == []


def test_the_plan_is_smallest_first_within_the_budget_without_the_log_or_holes(tmp_path: Path) -> None:
    live = tmp_path / ".generations" / "1"
    (live / "wal").mkdir(parents=True)
    (live / "segments").mkdir()
    (tmp_path / "coll").symlink_to(live)  # a collection linked to its live generation
    (live / "wal" / "open-1").write_bytes(b"w" * 8192)
    sizes = {"a": 3 * _PAGE, "b": 1 * _PAGE, "c": 2 * _PAGE, "d": 40 * _PAGE}
    for name, size in sizes.items():
        (live / "segments" / name).write_bytes(os.urandom(size))
    with (live / "segments" / "sparse").open("wb") as f:  # a file of holes: nothing on disk to read
        f.truncate(64 * _PAGE)
    (tmp_path / "empty-dir").mkdir()

    names = [path.name for path, _, _ in edge_warm.plan(tmp_path, 6 * _PAGE)]
    assert names == ["b", "c", "a"]  # 1 + 2 + 3 pages fit 6; "d" would not
    assert [path.name for path, _, _ in edge_warm.plan(tmp_path, 1 << 30)] == ["b", "c", "a", "d"]
    assert edge_warm.plan(tmp_path, _PAGE - 1) == []
    assert edge_warm.warm(tmp_path / "no-store") is None and edge_warm.warm(tmp_path, budget=0) is None


def test_the_budget_is_the_documented_limit() -> None:
    import inspect

    assert inspect.signature(edge_warm.warm).parameters["budget"].default == limits.STORE_WARM_MAX_BYTES > 0


def test_a_record_naming_files_outside_the_store_reads_none_of_them(tmp_path: Path) -> None:
    """The record is a file on disk, so hostile input: a name that climbs out of the store
    (``..``, an absolute path, a link planted in the store) is skipped, not read ahead."""
    store = tmp_path / "store"
    (store / "memories").mkdir(parents=True)
    inside = store / "memories" / "vectors.dat"
    inside.write_bytes(b"v" * 8192)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"s" * 8192)
    (store / "memories" / "planted").symlink_to(outside)
    files = {"memories/vectors.dat": [[0, 4096]], "../secret.txt": [[0, 4096]], str(outside): [[0, 4096]],
             "memories/planted": [[0, 4096]]}
    (store / edge_warm.RECORD).write_text(json.dumps({"version": 1, "files": files}))
    assert [path for path, _, _ in edge_warm.plan(store, 1 << 20)] == [inside]
