"""Where writes slow a search down, in-process (issue 19): ``MemoryService.search`` timed in parts
while another thread stores memories at a fixed rate through ``MemoryService.store`` (the
product's path below MCP: scrub, embed five keys, upsert).

    .venv/bin/python -m bench.search_under_writes DATA [--queries 150] [--rates 0,20,0,20]

Per rate, after 20 warming searches: whole search p50 / p95 (ms), the query embedding (wall:
queue + run), the waits for the store's lock (summed per search), and the writer's store p50.
Rates alternate in one process on one store, so rows are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# As bench_scale's daemon: no indexing job (a job's swap leaves the new generation's pages cold,
# which would be counted against the writes).
os.environ.setdefault("CONTEXTD_INDEX_AFTER_POINTS", "0")

from bench import scale_records
from bench.bench_scale import TENANT, _pct, project_name, rss_parts_mib
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths


class _TimedLock:
    """The store's RLock, recording how long the search thread waited for it."""

    def __init__(self, inner: Any, watched: set[int], waits: list[float]) -> None:
        self._inner, self._watched, self._waits = inner, watched, waits

    def __enter__(self) -> bool:
        t0 = time.perf_counter_ns()
        got: bool = self._inner.acquire()
        if threading.get_ident() in self._watched:
            self._waits.append((time.perf_counter_ns() - t0) / 1e6)
        return got

    def __exit__(self, *exc: object) -> None:
        self._inner.release()

    def acquire(self, *a: Any, **k: Any) -> bool:
        return bool(self._inner.acquire(*a, **k))

    def release(self) -> None:
        self._inner.release()


def run(data_dir: Path, queries: int, rates: list[float]) -> list[dict[str, Any]]:
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import SearchMemories

    container = build(DataPaths(data_dir))
    scope = Scope(tenant=TENANT, project=project_name(0))
    service = container.memory
    engine = service._stores.of(scope)._store
    embedder = service._embedder
    waits: list[float] = []
    me = {threading.get_ident()}
    engine._lock = _TimedLock(engine._lock, me, waits)
    texts = scale_records.queries(queries * len(rates) + 20)
    for text in texts[:20]:
        service.search(scope, SearchMemories(query=text, limit=5))
    rows = []
    serial = [0]
    try:
        for i, rate in enumerate(rates):
            stop = threading.Event()
            stores: list[float] = []

            def writer(rate: float = rate, stores: list[float] = stores, stop: threading.Event = stop) -> None:
                rng = random.Random(5 + serial[0])
                while not stop.is_set():
                    serial[0] += 1
                    item = scale_records.lesson(20_000_000 + serial[0], rng)
                    t0 = time.perf_counter()
                    service.store(scope, item.request)
                    stores.append((time.perf_counter() - t0) * 1000)
                    stop.wait(max(0.0, 1 / rate - (time.perf_counter() - t0)))

            thread = threading.Thread(target=writer, daemon=True) if rate > 0 else None
            if thread:
                thread.start()
            whole, embed, lock = [], [], []
            for text in texts[20 + i * queries: 20 + (i + 1) * queries]:
                waits.clear()
                t0 = time.perf_counter_ns()
                embedder.embed_query(text)
                t1 = time.perf_counter_ns()
                service.search(scope, SearchMemories(query=text, limit=5))
                t2 = time.perf_counter_ns()
                embed.append((t1 - t0) / 1e6)
                whole.append((t2 - t1) / 1e6)
                lock.append(sum(waits))
                time.sleep(0.005)  # a client's round trip: searches do not run back to back
            stop.set()
            if thread:
                thread.join()
            rows.append({
                "rate": rate, "load1": round(os.getloadavg()[0], 2),
                "search_p50_p95": [_pct(whole, 0.5), _pct(whole, 0.95)],
                "embed_query_p50_p95": [_pct(embed, 0.5), _pct(embed, 0.95)],
                "lock_wait_p50_p95": [_pct(lock, 0.5), _pct(lock, 0.95)],
                "stores": len(stores), "store_p50": _pct(stores, 0.5),
            })
            print(json.dumps(rows[-1]), flush=True)
        print(json.dumps(rss_parts_mib(os.getpid(), data_dir / "store")), flush=True)
    finally:
        container.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--rates", default="0,20,0,20")
    args = parser.parse_args()
    run(args.data, args.queries, [float(r) for r in args.rates.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
