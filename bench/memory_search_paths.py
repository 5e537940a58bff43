"""memory_search's paths interleaved in one process, on one store, under one load.

    .venv/bin/python -m bench.memory_search_paths --fill 10000 [--learned 1000] [--queries 300] [--json FILE]

Fills a store with ``bench_memory_learning``'s synthetic corpus (text-seeded vectors, cached on
disk) and gives ``--learned`` of its memories one learned key each (a rated query: the real
model's vector of a corpus-style query), then runs each query, in rotating order, through: the
pre-keys search (aa7b155's ``MemoryService.search``, reproduced below: one dense search of the
memories), this tree's ``search_logged`` (one batch of the dense, sparse and learned-key searches,
then the memories, then the second stage), session 9's search (the batch without the learned-key
search and no second stage) and session 10's (this tree without the second stage). All of them
embed the query with the real model. On a loaded machine (2 cores shared with other work) the
daemon's figures swing 2-4x between runs of one tree; interleaved query by query, the paths see
the same load. BENCHMARKS.md, "Session 8: memory (issue 15)", "Session 10: memory" and
"Session 11: memory".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import corpus
from bench.bench_memory_learning import _fill
from contextd_mcp import limits
from contextd_mcp.container import Container, build
from contextd_mcp.models.confidence import rank_score
from contextd_mcp.models.memory import MemoryHit, Outcome
from contextd_mcp.models.requests import SearchMemories
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.vector_store import Range
from contextd_mcp.scope_resolver import resolve_scope
from contextd_mcp.services import memory_keys as keys
from contextd_mcp.services.memory import COLLECTION, HIT_FIELDS, _with_preferences
from contextd_mcp.services.record_fields import relative_level

Search = Callable[[str], list[MemoryHit]]


def _hit(scope: Scope, memory_id: str, p: dict[str, Any], relevance: float, fused: float) -> MemoryHit:
    confidence = float(p["confidence"])
    return MemoryHit(
        id=memory_id, title=p["title"], description=p["description"], outcome=Outcome(p["outcome"]),
        confidence=round(confidence, 4), relevance=round(relevance, 4), score=round(rank_score(fused, confidence), 4),
        tags=list(p.get("tags", [])), scope=relative_level(p, scope),
    )


def paths(container: Container, scope: Scope) -> dict[str, Search]:
    svc = container.memory
    embed = svc._embedder.embed_query
    store = svc._stores.of(scope)

    def pre_keys(query: str) -> list[MemoryHit]:
        req = SearchMemories(query=query)
        where = {"confidence": Range(gte=req.min_confidence)}
        found = store.search(COLLECTION, embed(query), req.limit * limits.RERANK_FACTOR, req.scope, where, fields=HIT_FIELDS)
        hits = [_hit(scope, h.id, h.payload, max(0.0, min(1.0, h.score)), max(0.0, min(1.0, h.score))) for h in found]
        return sorted(hits, key=lambda h: h.score, reverse=True)[: req.limit]

    def two_searches(query: str) -> list[MemoryHit]:
        """Session 9's search: the batch of the dense and sparse key searches, no learned-key search."""
        req = SearchMemories(query=query)
        vector = embed(query)
        sparse = keys.query_sparse(query)
        dense, lexical = store.dense_and_sparse(keys.KEYS, vector, sparse, keys.CANDIDATES, req.scope, {}, ("memory_id", "kind"))
        ranked = keys.rank(dense, lexical, svc.flags)[: req.limit * limits.RERANK_FACTOR]
        where = {"confidence": Range(gte=req.min_confidence)}
        found = {r.id: r.payload for r in store.get(COLLECTION, [r.memory_id for r in ranked], req.scope, where, fields=HIT_FIELDS)}
        hits = [_hit(scope, r.memory_id, found[r.memory_id], r.relevance, r.fused) for r in ranked if r.memory_id in found]
        hits = sorted(_with_preferences(hits, found), key=lambda h: h.score, reverse=True)[: req.limit]
        svc.searches.add(scope, "", query, vector, [h.id for h in hits])
        return hits

    def this_tree(query: str) -> list[MemoryHit]:
        return svc.search_logged(scope, SearchMemories(query=query))[1]

    def no_rerank(query: str) -> list[MemoryHit]:
        """Session 10's search: this tree without the second stage (services/memory_rerank.py)."""
        flags, svc.flags = svc.flags, dataclasses.replace(svc.flags, rerank=False)
        try:
            return svc.search_logged(scope, SearchMemories(query=query))[1]
        finally:
            svc.flags = flags

    return {
        "pre-keys (aa7b155 path)": pre_keys, "this tree": this_tree, "session 9 (no learned-key search)": two_searches,
        "session 10 (no rerank)": no_rerank,
    }


def measure(container: Container, scope: Scope, queries: list[str]) -> dict[str, Any]:
    runs = paths(container, scope)
    names = list(runs)
    for query in queries[:20]:  # warm the model, the store's pages and the thread pools
        for run in runs.values():
            run(query)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, query in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter_ns()
            runs[name](query)
            times[name].append((time.perf_counter_ns() - started) / 1e6)
    out: dict[str, Any] = {"load": os.getloadavg(), "queries": len(queries)}
    for name, values in times.items():
        values.sort()
        out[name] = {q: round(values[int(len(values) * f)], 2) for q, f in (("p25", 0.25), ("p50", 0.5), ("p90", 0.9))}
    reference = out[names[0]]["p50"]
    for name in names:
        out[name]["p50_over_pre_keys"] = round(out[name]["p50"] / reference, 2)
    out["engine call alone"] = engine_calls(container, scope, queries)
    return out


def engine_calls(container: Container, scope: Scope, queries: list[str]) -> dict[str, Any]:
    """The key search's engine call with and without the learned-key search, interleaved, on
    vectors embedded beforehand: what the third search adds, without the model's time around it."""
    store = container.memory._stores.of(scope)
    embedded = [(container.memory._embedder.embed_query(q), keys.query_sparse(q)) for q in queries]
    fields = ("memory_id", "kind")
    calls: dict[str, Callable[[list[float], Any], Any]] = {
        "two searches (session 9)": lambda v, s: store.dense_and_sparse(keys.KEYS, v, s, keys.CANDIDATES, fields=fields),
        "three searches (this tree)": lambda v, s: store.dense_sparse_narrowed(
            keys.KEYS, v, s, keys.CANDIDATES, {"kind": keys.KeyKind.learned.value}, keys.LEARNED_NEAREST, fields=fields
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i, (vector, sparse) in enumerate(embedded * 2):
        for name in list(calls)[i % 2 :] + list(calls)[: i % 2]:
            started = time.perf_counter_ns()
            calls[name](vector, sparse)
            times[name].append((time.perf_counter_ns() - started) / 1e6)
    return {name: {"p25": round(sorted(v)[len(v) // 4], 2), "p50": round(sorted(v)[len(v) // 2], 2)} for name, v in times.items()}


def add_learned(container: Container, scope: Scope, n: int, seed: int = 5) -> None:
    """One learned key each for ``n`` memories: what ratings leave behind (a corpus-style query)."""
    rng = random.Random(seed)
    store = container.memory._stores.of(scope)
    found = store.scan(COLLECTION, n * 3)
    chosen = rng.sample(found, min(n, len(found)))
    texts = [f"{q} (rated {i})" for i, q in enumerate(corpus.queries(len(chosen), seed=seed))]
    vectors = container.memory._embedder.embed_documents(texts)
    now = time.time()
    points = []
    for memory, text, vector in zip(chosen, texts, vectors, strict=True):
        points += keys.key_records(memory.payload, memory.id, [(keys.KeyKind.learned, text)], [vector], now)
    for start in range(0, len(points), 256):
        store.upsert(keys.KEYS, points[start : start + 256])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fill", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--learned", type=int, default=1000, help="memories given one learned key each")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "contextd-bench-doc-vectors.pickle"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-search-paths-") as tmp:
        data, project = Path(tmp) / "data", Path(tmp) / "project"
        project.mkdir()
        _fill(data, project, args.fill, Path(args.cache), synthetic=True)
        container = build(DataPaths(data))
        scope = resolve_scope(project, {})
        try:
            add_learned(container, scope, args.learned)
            out = {"memories": args.fill, "learned_keys": args.learned, **measure(container, scope, corpus.queries(args.queries))}
        finally:
            container.close()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
