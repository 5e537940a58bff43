"""The CPU (process time) of each step of a daemon's start, in-process, on a kept data directory
(issue 19): the imports ``run_daemon`` makes, then ``container.build`` taken apart (the model,
the scrubber, each collection's ``ensure``, the tool runner). One JSON line per run.

The collector is held off as ``serve`` holds it (contextd_mcp/start_gc.py); ``GC_ON=1`` leaves it
on, as a tree without start_gc runs. Against another tree: ``PYTHONPATH=<tree>/src``.

    HF_HUB_OFFLINE=1 CONTEXTD_INDEX_AFTER_POINTS=0 nice -n 10 .venv/bin/python bench/start_cpu.py DATA_DIR
    GC_ON=1 PYTHONPATH=<base>/src ... bench/start_cpu.py DATA_DIR
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

T = time.process_time
if os.environ.get("GC_ON") != "1":
    gc.disable()
_STARTED = T()

from contextd_mcp import cli, container, daemon  # noqa: F401 - what run_daemon imports
from contextd_mcp.adapters import fastembed_embedder, qdrant_edge_store  # noqa: F401
from contextd_mcp.mcp import server
from contextd_mcp.paths import DataPaths
from contextd_mcp.settings import Settings
from contextd_mcp.transports import socket_server  # noqa: F401

OUT: dict[str, float] = {"imports": T() - _STARTED}


def _timed(owner: Any, name: str, key: str | Callable[..., str]) -> None:
    original = getattr(owner, name)

    def run(*args: Any, **kwargs: Any) -> Any:
        started = T()
        try:
            return original(*args, **kwargs)
        finally:
            label = key(*args) if callable(key) else key
            OUT[label] = OUT.get(label, 0.0) + T() - started

    setattr(owner, name, run)


def main() -> None:
    _timed(container, "make_embedder", "model")
    _timed(container, "make_scrubber", "scrubber")
    _timed(qdrant_edge_store.EdgeStore, "ensure", lambda self, spec: f"ensure {spec.name}")
    _timed(server.ToolRunner, "__init__", "tool_runner")
    started = T()
    built = container.build(DataPaths(Path(sys.argv[1])), Settings())
    built.server()
    OUT["build"] = T() - started
    OUT["total"] = T() - _STARTED
    print(json.dumps({**{k: round(v, 3) for k, v in OUT.items()}, "load": os.getloadavg()[0]}))
    built.close()


if __name__ == "__main__":
    main()
