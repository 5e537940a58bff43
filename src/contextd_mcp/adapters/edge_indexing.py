"""Indexing a live collection off the request path: copy, build in a child, replay, swap.

One ``IndexJob`` (a thread of the daemon) per collection at a time:

1. **copy** — the shard's files are copied into a new generation directory while writes go on
   (a pre-copy: at 1M memories 6.9 GiB, ~19 s); then writes to the collection wait (searches do
   not) while the shard is flushed and the files changed since are copied again (the catch-up);
   from that flush on, every write the store applies is also appended to an in-memory operations
   log.
2. **build** — ``edge_indexer`` (a child process, nice 19, one thread) runs the optimizer on the
   copy. The daemon serves from the live shard meanwhile, exactly as before.
3. **replay** — the daemon opens the built copy and applies the log to it, in rounds, without
   holding the store's lock (the copy is not shared yet).
4. **swap** — under the lock, the last few logged writes are applied, the copy is flushed and
   marked complete, and the link ``<root>/<collection>`` is renamed onto it (edge_generations.py).
   The old generation is deleted after.

Every logged operation is an upsert, a payload update by id or a delete by id: applying one twice
gives what applying it once does, so a replay needs no bookkeeping beyond the order. The log is
bounded (``limits.INDEX_OPLOG_MAX_POINTS``): past it the job gives up, and the live shard, which got
every write, stays. Until the rename the live generation is authoritative, so a crash at any step
loses nothing acknowledged; ``edge_generations.recover`` deletes the leftovers at the next open.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import qdrant_edge as qe

from contextd_mcp import limits
from contextd_mcp.adapters import edge_generations as gen
from contextd_mcp.adapters.edge_indexer import spawn
from contextd_mcp.adapters.mapped_files import write_back

# Called at each step with (collection, stage): "copy", "catch_up", "build", "swap", "swapped". Tests stop a
# store process there to kill it; the daemon passes nothing.
StageHook = Callable[[str, str], None]
_POLL_S = 0.5


class IndexingAborted(Exception):
    """The job stopped before its swap; the live generation is unchanged."""


class IndexHost(Protocol):
    """What a job needs of the store that owns the collection (adapters/qdrant_edge_store.py)."""

    root: Path
    write_gate: threading.RLock

    def flush(self) -> None: ...
    def begin_log(self, name: str) -> int: ...
    def logged(self, name: str, start: int) -> list[qe.UpdateOperation] | None: ...
    def end_log(self, name: str) -> None: ...
    def open_generation(self, name: str, path: Path) -> qe.EdgeShard: ...
    def pinned(self, name: str) -> tuple[str, ...]: ...
    def swap_in(self, name: str, shard: qe.EdgeShard, path: Path, replayed: int, record: dict[str, Any]) -> Path: ...


class IndexJob(threading.Thread):
    def __init__(self, host: IndexHost, name: str, on_stage: StageHook | None = None, nice: int = 19) -> None:
        super().__init__(name=f"index-{name}", daemon=True)
        self._host = host
        self.collection = name
        self._on_stage = on_stage
        self._nice = nice
        self._stop_requested = threading.Event()
        self._child: Any = None
        self._swapped = False  # from here on the new generation is live: nothing may undo it
        self.state: dict[str, Any] = {"stage": "starting", "started_at": time.time()}

    def stop(self) -> None:
        """Kills the child, if any, and makes the job give up at its next step (before the swap)."""
        self._stop_requested.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def run(self) -> None:
        target: Path | None = None
        try:
            target = gen.next_generation(self._host.root, self.collection)
            self._copy(target)
            self._build(target)
            self._swap(target)
        except Exception as exc:  # noqa: BLE001  # any failure leaves the live shard as it was
            self._host.end_log(self.collection)
            if target is not None and not self._swapped:
                gen.remove(target)
                gen.remove(target.with_suffix(".log"))
            self.state.update(stage="failed", error=f"{type(exc).__name__}: {exc}"[:300], ended_at=time.time())

    def _stage(self, stage: str) -> None:
        if self._stop_requested.is_set() and not self._swapped:
            raise IndexingAborted("daemon stopping")
        self.state["stage"] = stage
        if self._on_stage is not None:
            self._on_stage(self.collection, stage)

    def _copy(self, target: Path) -> None:
        self._stage("copy")
        live = gen.collection_path(self._host.root, self.collection)
        need = int(gen.disk_bytes(live) * limits.INDEX_DISK_FACTOR) + limits.INDEX_DISK_SPARE_BYTES
        free = shutil.disk_usage(self._host.root).free
        if free < need:
            raise IndexingAborted(f"{free} bytes free, the copy needs {need}")
        with self._host.write_gate:  # a moment: every page clean, so a later write shows in its file's mtime
            self._host.flush()
            since = time.time_ns()
            write_back(live)
        before = gen.stamp(live)
        self.state["precopy_s"] = round(gen.copy_shard(live, target), 3)  # writes go on
        self._stage("catch_up")
        with self._host.write_gate:  # writes wait; searches go on (they only read the files)
            self.state["points"] = self._host.begin_log(self.collection)
            write_back(live)
            copy_s, copied = gen.catch_up(live, target, before, since)
            self.state.update(copy_s=round(copy_s, 3), caught_up_bytes=copied)

    def _build(self, target: Path) -> None:
        started = time.perf_counter()
        self._child = spawn(target, target.with_suffix(".log"), self._nice, self._host.pinned(self.collection))
        self.state["child_pid"] = self._child.pid
        self._stage("build")
        while self._child.poll() is None:
            if self._stop_requested.wait(_POLL_S) or self._host.logged(self.collection, 0) is None:
                self._child.kill()
                self._child.wait()
                raise IndexingAborted("stopped" if self._stop_requested.is_set() else "operations log overflowed")
        self.state["build_s"] = round(time.perf_counter() - started, 2)
        self.state.pop("child_pid", None)
        if self._child.returncode != 0:
            tail = target.with_suffix(".log").read_text(errors="replace")[-300:]
            raise IndexingAborted(f"indexer exited {self._child.returncode}: {tail}")

    def _swap(self, target: Path) -> None:
        self._stage("replay")
        started = time.perf_counter()
        shard = self._host.open_generation(self.collection, target)  # holds the GIL throughout (the engine's)
        self.state["open_s"] = round(time.perf_counter() - started, 3)
        replayed = 0
        try:
            started = time.perf_counter()
            # Rounds outside the lock until what is left is a handful, applied under it.
            while True:
                ops = self._host.logged(self.collection, replayed)
                if ops is None:
                    raise IndexingAborted("operations log overflowed")
                if len(ops) < limits.INDEX_SWAP_TAIL_OPS:
                    break
                for op in ops:
                    shard.update(op)
                replayed += len(ops)
            self.state.update(replayed_ops=replayed, replay_s=round(time.perf_counter() - started, 3))
            shard.flush()  # so that the flush under the lock writes only the last few
            self._stage("swap")
            started = time.perf_counter()
            record = {"indexed_points": self.state.get("points", 0), "built_at": time.time()}
            old = self._host.swap_in(self.collection, shard, target, replayed, record)
            self._swapped = True
        except BaseException:
            shard.close()
            raise
        self.state["swap_s"] = round(time.perf_counter() - started, 4)
        self._stage("swapped")
        gen.remove(old)
        gen.remove(target.with_suffix(".log"))
        self.state.update(stage="done", ended_at=time.time())
