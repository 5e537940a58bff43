"""A store of up to 1M memories over many projects, built as a long-lived daemon would have it (issue 19).

    .venv/bin/python -m bench.scale_million DIR --memories 1000000 --projects 1000 [--chunk 100000]
        [--graph-free] [--start N] [--json FILE]

Fills ``DIR`` in-process through ``MemoryService.store_many`` (the product's own records, the
generated lessons and derived vectors of ``bench/scale_records.py``) in batches of ``BATCH``
lessons, batch i to project i mod ``--projects`` (so every project gets memories from every part
of the fill, as a daemon storing for many projects at once would), and runs the engine's
optimizer every ``--chunk`` memories, as the daemon's indexing job would at that many unindexed
points: without it every point stays in the appendable segment, whose id tracker, payload indexes
and sparse index are on the heap (100k memories: a 3 GiB process).

``--graph-free``: the optimizer builds no HNSW graph (``HNSW_M`` 0 in this process only): the
segments are memory-mapped and searched exactly. For measuring what does not depend on the graph
(a project-scoped search whose planner scans the project through its payload index, RSS, disk)
at sizes whose graph would take hours to build here; org- and team-reach searches of such a store
scan every point and say nothing about the product's.

Prints one JSON line per chunk: memories so far, fill and optimize seconds, this process's RSS
(current, peak), disk MiB, segments, the 1-minute load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import bench_scale, scale_records
from bench.driver import rss_mib
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths

BATCH = 500  # 1M memories over 1,000 projects: two batches each, 5,000 keys


def build_store(data_dir: Path, memories: int, projects: int, chunk: int, graph_free: bool, start: int = 0,
                out: Path | None = None) -> list[dict[str, object]]:
    from contextd_mcp.adapters import qdrant_edge_store as edge
    from contextd_mcp.container import build, make_embedder
    from contextd_mcp.settings import EmbeddingSettings

    if graph_free:
        edge.HNSW_M = 0  # _config reads it at every open: this process's segments get no graph
    real = make_embedder(EmbeddingSettings())
    embedder = scale_records.DerivedEmbedder(real, scale_records.load_bank(real, real.model_name))
    container = build(DataPaths(data_dir), embedder=embedder)
    rows: list[dict[str, object]] = []
    try:
        batch: list[scale_records.Lesson] = []
        started = time.perf_counter()
        for index, item in enumerate(scale_records.lessons(memories, 7)):
            if index < start:
                continue
            batch.append(item)
            if len(batch) == BATCH or index == memories - 1:
                scope = Scope(tenant=bench_scale.TENANT, project=bench_scale.project_name((index // BATCH) % projects))
                embedder.expect(batch)
                container.memory.store_many(scope, [b.request for b in batch], situations=[("", b.error) for b in batch])
                batch = []
            done = index + 1
            if done % chunk == 0 or done == memories:
                filled = time.perf_counter() - started
                optimized = container.store.compact()  # type: ignore[attr-defined]
                keys = container.store._shards["memory_keys"].info()  # type: ignore[attr-defined]
                row = {"memories": done, "fill_s": round(filled, 1), "optimize_s": optimized,
                       "rss_mib": [round(x) for x in rss_mib(__import__("os").getpid())],
                       "disk_mib": round(bench_scale.disk_mib(data_dir)), "key_segments": int(keys.segments_count),
                       "key_points": int(keys.points_count), "load": Path("/proc/loadavg").read_text().split()[0]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if out:
                    out.write_text(json.dumps(rows, indent=1))
                started = time.perf_counter()
    finally:
        container.close()
    if embedder.misses:
        print(f"{len(embedder.misses)} texts embedded for real, e.g. {embedder.misses[:3]}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--memories", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--graph-free", action="store_true")
    parser.add_argument("--start", type=int, default=0, help="memories already in the store (a multiple of --chunk)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    build_store(args.data, args.memories, args.projects, args.chunk, args.graph_free, args.start, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
