"""Does the scope-bound store handle cost the hot path anything? memory_search / memory_store
(and memory_feedback, a by-id field update) latency before → after, in the same run.

    python -m bench.bench_scope --before /path/to/old/tree/src [--runs 300] [--memories 2000]

Two trees of the code (``--before``'s src and this one's) take turns on one data directory,
filled once: each round starts a fresh process per tree that times ``MemoryService.search`` and
``.store`` (the service calls behind the tools, with the real model and store; no transport, so
the store layer is not lost in framing noise) over the same queries. Rounds alternate the order,
so drift on a shared machine falls on both alike. A micro-benchmark then times the store layer
alone in this tree: a filtered search through the handle against the same call on the raw store,
and ``set_fields`` through the handle (id + scope filter, in the engine) against the unfiltered
by-id update every adapter made before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
SCOPE = {"tenant": "bench", "team": "core", "project": "api"}


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def fill(data_dir: Path, memories: int) -> None:
    from bench import corpus
    from contextd_mcp.container import build
    from contextd_mcp.models.scope import Scope
    from contextd_mcp.paths import DataPaths

    container = build(DataPaths(data_dir))
    try:
        scope = Scope(**SCOPE)
        batch = list(corpus.memories(memories))
        for start in range(0, len(batch), 256):
            container.memory.store_many(scope, batch[start : start + 256])
        other = Scope(tenant="other", team="core", project="api")  # a second tenant in the collection
        container.memory.store_many(other, list(corpus.memories(memories // 4, seed=3)))
    finally:
        container.close()


def worker(data_dir: Path, runs: int, round_no: int) -> dict[str, list[float]]:
    """Runs in a child process with one tree's src first on sys.path."""
    from bench import corpus
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import MemoryFeedback, SearchMemories, StoreMemory
    from contextd_mcp.models.scope import Scope
    from contextd_mcp.paths import DataPaths

    container = build(DataPaths(data_dir))
    scope = Scope(**SCOPE)
    queries = corpus.queries(runs)
    try:
        for text in queries[:10]:  # warm the model, caches and indexes
            container.memory.search(scope, SearchMemories(query=text))
        search = []
        for text in queries:
            started = time.perf_counter()
            container.memory.search(scope, SearchMemories(query=text))
            search.append((time.perf_counter() - started) * 1000)
        store, ids = [], []
        for index in range(runs):
            request = StoreMemory(title=f"round {round_no} lesson {index}", content=f"{queries[index]} (r{round_no}/{index})")
            started = time.perf_counter()
            ids.append(container.memory.store(scope, request).id)
            store.append((time.perf_counter() - started) * 1000)
        # A by-id field update (set_fields), now filtered by the scope in the engine.
        feedback = []
        for index, memory_id in enumerate(ids):
            started = time.perf_counter()
            container.memory.feedback(scope, MemoryFeedback(memory_id=memory_id, helpful=index % 2 == 0))
            feedback.append((time.perf_counter() - started) * 1000)
    finally:
        container.close()
    return {"search": search, "store": store, "feedback": feedback}


def store_layer(data_dir: Path, runs: int) -> dict[str, Any]:
    """This tree only: the same filtered search, through the handle and on the raw store."""
    from contextd_mcp.container import build
    from contextd_mcp.models.scope import Scope
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.ports.vector_store import Range
    from contextd_mcp.services.memory import COLLECTION, HIT_FIELDS

    container = build(DataPaths(data_dir))
    scope = Scope(**SCOPE)
    vectors = container.embedder.embed_documents([f"query {i}" for i in range(50)])
    stores, raw = Stores(container.store), container.store
    match = {"confidence": Range(gte=0.3)}
    ids = [r.id for r in raw.scan(COLLECTION, scope.fields(), limit=50)]
    # set_fields: by id with no filter (what every adapter did before) against the filtered one.
    unfiltered = _unfiltered_set_fields(raw)
    calls = {
        "search_raw": lambda i: raw.search(COLLECTION, vectors[i % 50], {**scope.fields(), **match}, 50, HIT_FIELDS),
        "search_handle": lambda i: stores.of(scope).search(COLLECTION, vectors[i % 50], 50, match=match, fields=HIT_FIELDS),
        "set_fields_by_id_unfiltered": lambda i: unfiltered(COLLECTION, ids[i % 50], {"bench_n": i}),
        "set_fields_handle": lambda i: stores.of(scope).set_fields(COLLECTION, ids[i % 50], {"bench_n": i}),
    }
    timings: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for i in range(runs * 2):
            for name in calls if i % 2 else reversed(list(calls)):
                started = time.perf_counter()
                calls[name](i)
                timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        container.close()
    return {name: _summary(samples[runs // 5 :]) for name, samples in timings.items()}


def _unfiltered_set_fields(raw: Any) -> Any:
    """The engine call set_fields made before it took a filter (embedded or qdrant-client)."""
    if hasattr(raw, "_shard"):
        import qdrant_edge as qe

        def edge(collection: str, record_id: str, fields: dict[str, Any]) -> None:
            with raw._lock:
                raw._shard(collection).update(qe.UpdateOperation.set_payload([record_id], fields))

        return edge

    def client(collection: str, record_id: str, fields: dict[str, Any]) -> None:
        with raw._lock:
            raw._client.set_payload("contextd_" + collection, payload=fields, points=[record_id], wait=True)

    return client


def _child(src: Path, args: list[str]) -> Any:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_scope", *args], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=1800, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scope")
    parser.add_argument("--before", help="src directory of the tree to compare against")
    parser.add_argument("--runs", type=int, default=300, help="calls of each kind per tree (split over rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--worker", nargs=3, metavar=("DATA", "RUNS", "ROUND"), help=argparse.SUPPRESS)
    parser.add_argument("--fill", nargs=2, metavar=("DATA", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--layer", nargs=2, metavar=("DATA", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), int(args.worker[1]), int(args.worker[2]))))
        return 0
    if args.fill:
        fill(Path(args.fill[0]), int(args.fill[1]))
        print("{}")
        return 0
    if args.layer:
        print(json.dumps(store_layer(Path(args.layer[0]), int(args.layer[1]))))
        return 0
    if not args.before:
        parser.error("--before is required")
    trees = {"before": Path(args.before).resolve(), "after": ROOT / "src"}
    with tempfile.TemporaryDirectory(prefix="bench-scope-") as tmp:
        data = Path(tmp) / "data"
        _child(trees["after"], ["--fill", str(data), str(args.memories)])
        kinds = ("search", "store", "feedback")
        samples: dict[str, dict[str, list[float]]] = {t: {kind: [] for kind in kinds} for t in trees}
        per_round = max(1, args.runs // args.rounds)
        for round_no in range(args.rounds):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for tree in order:
                got = _child(trees[tree], ["--worker", str(data), str(per_round), str(round_no * 2 + (tree == "after"))])
                for kind in kinds:
                    samples[tree][kind] += got[kind]
        layer = _child(trees["after"], ["--layer", str(data), str(args.runs)])
    result = {
        "memories": args.memories,
        "service": {tree: {kind: _summary(v) for kind, v in kinds.items()} for tree, kinds in samples.items()},
        "store_layer_search": layer,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
