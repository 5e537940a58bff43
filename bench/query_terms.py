"""What a memory search's function words cost at scale, in-process (issue 19, BENCHMARKS.md "Session 15").

    .venv/bin/python -m bench.query_terms DATA_DIR [--queries 300] [--gaps 0,20]

Opens a data directory that ``bench.bench_scale --keep`` filled (its first project) as the daemon
does (``container.build``), warms it with 300 searches, then, for each query, runs both variants
one after the other (the order flipped every query, so page-cache and load drift reach both):

- ``all_terms``: the query's every term, as before session 15;
- ``no_function_words``: the product's query (``memory_keys.query_sparse``: no
  ``FUNCTION_WORDS``).

Timed for each: the engine's sparse key search alone (``ScopedStore.sparse_search``: the lexical
half of a search) and the whole ``MemoryService.search``, the latter at each idle gap (ms of sleep
before each search: a daemon's searches come after idle time, which costs on this machine, see
the figures). Also reported: how many of the key points hold each of the queries' commonest
terms (their posting lists' lengths), and the top-10 overlap of the two variants' results.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import bench_scale, scale_records
from contextd_mcp.container import build
from contextd_mcp.models.requests import SearchMemories
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.services import error_text
from contextd_mcp.services import memory_keys as mk

VARIANTS = {"all_terms": frozenset[str](), "no_function_words": error_text.FUNCTION_WORDS}


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 2), "p95": round(ordered[int(0.95 * len(ordered))], 2),
            "mean": round(statistics.fmean(ordered), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--gaps", default="0,20", help="idle ms before each whole search")
    args = parser.parse_args()
    gaps = [float(g) for g in args.gaps.split(",")]
    container = build(DataPaths(args.data))
    scope = Scope(tenant=bench_scale.TENANT, project=bench_scale.project_name(0))
    service, store = container.memory, container.memory._stores.of(scope)
    texts = scale_records.queries(300 + args.queries * (1 + len(gaps)), seed=29)
    sparse: dict[str, list[float]] = {v: [] for v in VARIANTS}
    whole: dict[str, dict[str, list[float]]] = {f"gap_{g:g}ms": {v: [] for v in VARIANTS} for g in gaps}
    overlap: list[float] = []
    common: collections.Counter[str] = collections.Counter()
    try:
        for text in texts[:300]:
            service.search(scope, SearchMemories(query=text, limit=5))
        queries = iter(texts[300:])
        for n in range(args.queries):
            text = next(queries)
            for variant in VARIANTS if n % 2 == 0 else list(VARIANTS)[::-1]:
                mk.FUNCTION_WORDS = VARIANTS[variant]
                terms = mk.query_sparse(text)
                started = time.perf_counter_ns()
                store.sparse_search(mk.KEYS, terms, mk.CANDIDATES, fields=("memory_id", "kind"))
                sparse[variant].append((time.perf_counter_ns() - started) / 1e6)
            common.update(w for w in error_text.terms(error_text.normalise(text)) if w in error_text.FUNCTION_WORDS)
        for gap in gaps:
            for n in range(args.queries):
                text, found = next(queries), {}
                for variant in VARIANTS if n % 2 == 0 else list(VARIANTS)[::-1]:
                    mk.FUNCTION_WORDS = VARIANTS[variant]
                    time.sleep(gap / 1000)
                    started = time.perf_counter_ns()
                    hits = service.search(scope, SearchMemories(query=text, limit=10))
                    whole[f"gap_{gap:g}ms"][variant].append((time.perf_counter_ns() - started) / 1e6)
                    found[variant] = {h.id for h in hits}
                overlap.append(len(found["all_terms"] & found["no_function_words"]) / max(1, len(found["all_terms"])))
        postings = {word: len(store.sparse_search(mk.KEYS, mk.key_sparse(word), 10**6, fields=()))
                    for word, _ in common.most_common(8)}
    finally:
        mk.FUNCTION_WORDS = error_text.FUNCTION_WORDS
        container.close()
    print(json.dumps({
        "queries": args.queries, "sparse_search_ms": {v: _figures(t) for v, t in sparse.items()},
        "search_ms": {g: {v: _figures(t) for v, t in per.items()} for g, per in whole.items()},
        "top10_overlap_mean": round(statistics.fmean(overlap), 4),
        "key_points_holding_the_queries_commonest_function_words": postings,
        "load": Path("/proc/loadavg").read_text().split()[:3],
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
