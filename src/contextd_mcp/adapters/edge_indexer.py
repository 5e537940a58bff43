"""The indexer process: opens a copy of a shard, runs the engine's optimizer on it, exits.

qdrant-edge's optimizer holds the GIL and its shard for minutes (HNSW build), so it never runs in
the daemon: the daemon copies the shard, starts this child on the copy and keeps serving from the
original (adapters/edge_indexing.py). The child runs at nice 19 with one indexing thread, and dies
with the thread that started it (PR_SET_PDEATHSIG), so a daemon killed with -9 leaves no indexer.

    python -m contextd_mcp.adapters.edge_indexer <shard directory> <parent pid> <nice> <pinned fields, JSON>

Before the build it places the copy's payload indexes as the daemon's store now calls for
(``EdgeStore.pinned``): a store that gained a second owner since its open gets its owner indexes
back on the heap with the new generation, off the request path.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# The engine's and BLAS's pools: one thread, the daemon keeps the other core.
_ONE_THREAD = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def spawn(shard: Path, log: Path, nice: int = 19, pinned: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Starts the indexer on ``shard`` at ``nice``, its ``pinned`` fields' indexes to go on the
    heap (the others memory-mapped); its output goes to ``log``."""
    env = {**os.environ, **_ONE_THREAD}
    with log.open("wb") as out:
        return subprocess.Popen(  # our own module, argv not from input
            [sys.executable, "-m", "contextd_mcp.adapters.edge_indexer", str(shard), str(os.getpid()), str(nice),
             json.dumps(list(pinned))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, close_fds=True,
        )


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(3)


def main(argv: list[str]) -> int:
    shard_dir, parent = Path(argv[0]), int(argv[1])
    _die_with_parent(parent)
    os.nice(int(argv[2]))
    import qdrant_edge as qe

    from contextd_mcp.adapters.qdrant_edge_store import placement_moves

    started = time.perf_counter()
    shard = qe.EdgeShard.load(str(shard_dir))  # the config the daemon last opened it with
    try:
        moves = placement_moves(shard, json.loads(argv[3]) if len(argv) > 3 else [])
        for op in moves:
            shard.update(op)
        if moves:
            print(f"placed {len(moves)} payload indexes", flush=True)
        shard.optimize()
        shard.flush()
        points = int(shard.info().points_count)
    finally:
        shard.close()
    print(f"indexed {points} points in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
