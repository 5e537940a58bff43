"""How long the indexing job's copy holds writes back, on a large store (issue 19).

    .venv/bin/python -m bench.index_copy_stall DATA_DIR [--rate 20] [--after-copy 5]

Opens ``DATA_DIR/store``'s ``memory_keys`` in-process with an indexing threshold of one point, so
the first writes start an indexing job (adapters/edge_indexing.py), while a writer upserts one key
point at ``--rate`` a second and times each write. Once the job is past its copy (stage "build")
the writer goes on for ``--after-copy`` seconds, then the store is closed (which kills the child
before it builds anything). Prints the job's own timings (``copy_s``: the part writes wait for;
``precopy_s``: the part they do not, where the tree has one) and the writes' latencies: the
longest is the stall. The writes stay in the store (a few hundred points in project
``stall-bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.memory_keys import KEYS, keys_spec

DIM = 384
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _point(rng: np.random.Generator) -> Record:
    v = rng.standard_normal(DIM).astype(np.float32)
    v /= np.linalg.norm(v)
    payload = {"tenant": "scaleco", "team": "default", "project": "stall-bench", "memory_id": str(uuid.uuid4()),
               "kind": "doc", "outcome": "success", "tags": [], "created_ts": time.time()}
    return Record(str(uuid.uuid4()), payload, v.tolist(), {int(rng.integers(1 << 20)): 1.0})


def measure(data_dir: Path, rate: float, after_copy: float, model: str) -> dict[str, object]:
    store = EdgeStore(data_dir / "store", index_after=1, index_nice=19)
    store.ensure(keys_spec(DIM, model))
    rng = np.random.default_rng(int(time.time()))
    latencies: list[tuple[float, float, str]] = []  # (start, seconds, stage at start)
    stop = threading.Event()

    def stage() -> str:
        return str(store.describe()["indexing"][KEYS].get("job", {}).get("stage", "-"))

    def writer() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            at = stage()
            store.upsert(KEYS, [_point(rng)])
            latencies.append((started, time.perf_counter() - started, at))
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))

    thread = threading.Thread(target=writer, daemon=True)
    began = time.perf_counter()
    thread.start()
    copied_at = None
    while time.perf_counter() - began < 600:
        if stage() in ("build", "replay", "swap", "done", "failed"):
            copied_at = copied_at or time.perf_counter()
            if time.perf_counter() - copied_at >= after_copy:
                break
        time.sleep(0.05)
    stop.set()
    thread.join()
    job = dict(store.describe()["indexing"][KEYS].get("job", {}))
    store.close()
    seconds = [s for _, s, _ in latencies]
    return {
        "job": {k: job.get(k) for k in ("stage", "points", "precopy_s", "copy_s", "caught_up_bytes", "error")},
        "writes": len(seconds),
        "write_ms_p50": round(statistics.median(seconds) * 1000, 2),
        "write_ms_max": round(max(seconds) * 1000, 1),
        "writes_over_1s": sum(s > 1 for s in seconds),
        "write_ms_max_by_stage": {
            at: round(max(s for _, s, a in latencies if a == at) * 1000, 1) for at in dict.fromkeys(a for _, _, a in latencies)
        },
        "load1": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--after-copy", type=float, default=5.0)
    parser.add_argument("--model", default=MODEL, help="the model name the store records (checked at open)")
    args = parser.parse_args()
    print(json.dumps(measure(args.data, args.rate, args.after_copy, args.model)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
