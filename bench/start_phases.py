"""A daemon start taken apart by phase, for bench/bench_startup.py ``--phases``.

Run in place of ``python -m contextd_mcp serve`` (``python -m bench.start_phases serve ...``):
it wraps the start's steps with timers and appends one JSON line per step to the file named by
``START_PHASES_OUT``, each with its epoch start and end (``time.time()``), so the bench can place
them on its own clock (spawn → interpreter up → imports → model → store → tools → accepting →
first call → query embedded → engine search → answer). The product code is unchanged: this only
wraps functions after importing them, and imports what ``run_daemon`` would import anyway (a few
milliseconds earlier, before the data directory's lock).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_UP = time.time()
_OUT = Path(os.environ["START_PHASES_OUT"])


def _record(phase: str, start: float, end: float, **extra: Any) -> None:
    with _OUT.open("a") as out:
        out.write(json.dumps({"phase": phase, "start": start, "end": end, **extra}) + "\n")


def _timed(owner: Any, name: str, phase: str, first_only: bool = False, label: Callable[..., str] | None = None) -> None:
    original = getattr(owner, name)
    seen = [0]

    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            seen[0] += 1
            if not first_only or seen[0] == 1:
                _record(label(*args, **kwargs) if label else phase, start, time.time())

    async def arun(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return await original(*args, **kwargs)
        finally:
            seen[0] += 1
            if not first_only or seen[0] == 1:
                _record(phase, start, time.time())

    import inspect

    setattr(owner, name, functools.wraps(original)(arun if inspect.iscoroutinefunction(original) else run))


def main() -> None:
    _record("interpreter", _UP, _UP)
    try:  # what cmd_serve does first (a tree without it: nothing)
        from contextd_mcp import start_gc

        start_gc.pause()
    except ImportError:
        pass
    start = time.time()
    from contextd_mcp import cli, container, daemon  # what run_daemon imports
    from contextd_mcp.adapters import fastembed_embedder, qdrant_edge_store
    from contextd_mcp.mcp import server
    from contextd_mcp.transports import socket_server  # noqa: F401

    _record("imports", start, time.time(), modules=len(sys.modules))
    _timed(container, "build", "build")
    _timed(container, "make_embedder", "model")
    _timed(container, "make_scrubber", "scrubber")
    _timed(container, "make_store", "store_object")
    _timed(qdrant_edge_store.EdgeStore, "ensure", "", label=lambda self, spec: f"open {spec.name}")
    _timed(server.ToolRunner, "__init__", "tool_runner")
    _timed(daemon, "_announce", "accepting")
    _timed(server.ToolRunner, "call", "first_call", first_only=True)
    _timed(fastembed_embedder.FastEmbedEmbedder, "embed_query", "first_embed", first_only=True)
    for name in ("search", "hybrid_search", "dense_and_sparse", "sparse_search"):
        _timed(qdrant_edge_store.EdgeStore, name, f"engine {name}", first_only=True)
    sys.argv = ["contextd-mcp", *sys.argv[1:]]
    raise SystemExit(cli.main())


if __name__ == "__main__":
    main()
