"""How long one step of the re-keying sweep takes on a filled store (issue 19): the daemon runs
``MemoryRekey.step`` every second after each start until it has read every memory once, and a
step holds the store's lock for its reads.

    .venv/bin/python -m bench.rekey_step DATA [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTEXTD_INDEX_AFTER_POINTS", "0")  # no indexing job in the measurement

from bench.bench_scale import _pct
from contextd_mcp.container import build
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
from contextd_mcp.services.memory_rekey import MemoryRekey


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    container = build(DataPaths(args.data))
    try:
        rekey = MemoryRekey(container.memory, Stores(container.store), AcrossScopes(container.store))
        took, keyed = [], 0
        for _ in range(args.steps):
            t0 = time.perf_counter()
            keyed += rekey.step()
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        container.close()
    print(json.dumps({"step_p50_ms": _pct(took, 0.5), "step_max_ms": round(max(took), 1), "keyed": keyed,
                      "load1": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
