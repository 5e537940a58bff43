"""What each part of a memory search's key batch costs at scale, in-process (issue 19).

    .venv/bin/python -m bench.key_search_parts DATA_DIR [--queries 150] VARIANT[,VARIANT...]

Opens a filled data directory as the daemon does (``container.build``), warms it with 200
searches of the product's batch, then times ``query_batch`` of each variant on distinct queries,
the variants interleaved (order flipped every query) so that page-cache and load drift reach
all alike. Variants (engine calls only, no Python ranking; ``WHERE`` is the scope's filter):

- ``batch``: the product's three searches (dense top 100, learned top 20, sparse top 100) with
  ``memory_id`` and ``kind`` read back; ``nolearned``: without the learned search; ``learned``:
  it alone;
- ``dense`` / ``sparse``: one list alone, payload read; ``denseN``: dense with limit N;
  ``denseefN``: dense with ``hnsw_ef`` N;
- ``dnp_F+G`` / ``snp_F+G``: dense / sparse, no payload, filtered on fields F, G of the scope
  only (``dnp_``: no filter at all): what each filter condition and the payload read cost.

Reported: p50 / p95 / mean ms per variant and the 1-minute load (BENCHMARKS.md, "Session 11: scale").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import qdrant_edge as qe

from bench import bench_scale, scale_records
from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.container import build
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.paths import DataPaths
from contextd_mcp.services import memory_keys as mk

FIELDS = ["memory_id", "kind"]


def requests(variant: str, vector: list[float], sparse: Any, where: dict[str, Any]) -> list[qe.QueryRequest]:
    """The engine requests of one variant (see the module's docstring)."""
    flt = edge._filter(where)
    nearest = qe.Query.Nearest(vector)
    lexical = qe.Query.Nearest(edge._sparse(sparse), using="lexical")
    learned = qe.QueryRequest(limit=mk.LEARNED_NEAREST, query=nearest, filter=edge._filter({**where, "kind": "learned"}),
                              with_payload=FIELDS)
    dense = qe.QueryRequest(limit=mk.CANDIDATES, query=nearest, filter=flt, with_payload=FIELDS)
    lex = qe.QueryRequest(limit=mk.CANDIDATES, query=lexical, filter=flt, with_payload=FIELDS)
    if variant == "batch":
        return [dense, learned, lex]
    if variant == "nolearned":
        return [dense, lex]
    if variant == "learned":
        return [learned]
    if variant == "dense":
        return [dense]
    if variant == "sparse":
        return [lex]
    if variant.startswith("denseef"):
        params = qe.SearchParams(hnsw_ef=int(variant[7:]))
        return [qe.QueryRequest(limit=mk.CANDIDATES, query=nearest, filter=flt, with_payload=FIELDS, params=params)]
    if variant.startswith("dense"):
        return [qe.QueryRequest(limit=int(variant[5:]), query=nearest, filter=flt, with_payload=FIELDS)]
    kind, _, names = variant.partition("_")
    only = edge._filter({k: where[k] for k in names.split("+")}) if names else None
    query = nearest if kind == "dnp" else lexical
    return [qe.QueryRequest(limit=mk.CANDIDATES, query=query, filter=only, with_payload=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("variants")
    parser.add_argument("--queries", type=int, default=150)
    args = parser.parse_args()
    variants = args.variants.split(",")
    container = build(DataPaths(args.data))
    scope = Scope(tenant=bench_scale.TENANT, project=bench_scale.project_name(0))
    store = container.memory._stores.of(scope)
    shard = store._store._shards[mk.KEYS]  # the engine's shard under the scoped view
    where = store.where(ScopeLevel.project, {})
    texts = scale_records.queries(args.queries * len(variants) + 200, seed=23)
    vectors = [container.memory._embedder.embed_query(t) for t in texts]
    sparses = [store._terms(mk.KEYS, mk.query_sparse(t)) for t in texts]

    def run(variant: str, i: int) -> float:
        batch = qe.QueryBatchRequest(requests(variant, vectors[i], sparses[i], where))
        started = time.perf_counter_ns()
        shard.query_batch(batch)
        return (time.perf_counter_ns() - started) / 1e6

    took: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for i in range(200):
            run("batch", i)
        i = 200
        for n in range(args.queries):
            for variant in variants if n % 2 == 0 else variants[::-1]:
                took[variant].append(run(variant, i))
                i += 1
    finally:
        container.close()
    figures = {v: [round(statistics.median(t), 2), round(sorted(t)[int(0.95 * len(t))], 2), round(statistics.fmean(t), 2)]
               for v, t in took.items()}
    print(json.dumps({"p50_p95_mean_ms": figures, "queries": args.queries, "where": {k: str(v) for k, v in where.items()},
                      "load": Path("/proc/loadavg").read_text().split()[:3]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
