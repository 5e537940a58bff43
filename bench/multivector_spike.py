"""Feasibility spike (issue 19, RSS): one point per memory holding its keys' dense vectors as a
multivector (MaxSim), instead of one point per key. Not wired into the product.

    .venv/bin/python -m bench.multivector_spike build COPY OUT [--limit N]   # from a 100k store's keys
    .venv/bin/python -m bench.multivector_spike measure COPY OUT [--queries 200]

``build`` reads every key point of COPY's ``memory_keys`` (dense vector, owner fields, memory id),
groups them by memory and writes OUT: one point per memory (the memory's id), its keys' vectors
as one MaxSim multivector (Turbo8, as today), the owner fields pinned as today, the same HNSW and
segment settings; then builds the graph (timed). ``measure`` runs in a fresh process per layout
("keys": today's ``memory_keys``, dense top 100 with the scope filter at ``DENSE_EF``, grouped to
memories; "multivector": the new collection's top 10 at the same ef) on distinct real queries:
latency p50 / p95, RSS of the store's mappings by file kind and anon, and recall@10 of memories
against the exact answer (exact search over every key, grouped by memory: the best key's score,
which is what MaxSim with one query vector computes). Dense only: the lexical (sparse) side of
the key search has no multivector form and is left out of both layouts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import qdrant_edge as qe

from bench import scale_records
from bench.bench_scale import TENANT, _pct, project_name
from bench.rss_floor import smaps_mib
from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.services import memory_keys as mk
from contextd_mcp.services.memory_keys import OWNER
from contextd_mcp.ports.vector_store import CollectionSpec

DIM = 384
EF = 0  # --ef: the searches' hnsw_ef (0: the product's DENSE_EF)
NAME = "memory_mv"


def _keys_config() -> qe.EdgeConfig:
    return edge._config(mk.keys_spec(DIM, "spike"))


def _mv_config() -> qe.EdgeConfig:
    base = edge._config(CollectionSpec(name=NAME, dim=DIM, model="spike"))
    vectors = qe.EdgeVectorParams(
        size=DIM, distance=qe.Distance.Cosine, memory=qe.Memory.Cold, datatype=qe.VectorStorageDatatype.Turbo8,
        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
    )
    return qe.EdgeConfig(
        vectors=vectors, hnsw_config=base.hnsw_config, optimizers=base.optimizers,
        payload_memory=qe.Memory.Cold, id_tracker_memory=qe.Memory.Cold,
    )


def _scope_filter() -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition(key="tenant", match=qe.MatchValue(TENANT)),
                           qe.FieldCondition(key="team", match=qe.MatchValue("default")),
                           qe.FieldCondition(key="project", match=qe.MatchValue(project_name(0)))])


def build(copy: Path, out: Path, limit: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    keys = qe.EdgeShard.load(str(copy / "store" / mk.KEYS), _keys_config())
    by_memory: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    owners: dict[str, dict[str, str]] = {}
    offset = None
    while True:
        records, offset = keys.scroll(qe.ScrollRequest(
            offset=offset, limit=5000, with_payload=["memory_id", *OWNER], with_vector=[""]))
        for r in records:
            payload = r.payload or {}
            memory = str(payload["memory_id"])
            vector = r.vector[""] if isinstance(r.vector, dict) else r.vector
            by_memory[memory].append(np.asarray(vector, dtype=np.float32))
            owners[memory] = {k: payload[k] for k in OWNER}
        if offset is None:
            break
    keys.close()
    read_s = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    shard = qe.EdgeShard.create(str(out / NAME), _mv_config())
    for name in OWNER:
        params = edge._index_params(name, qe.PayloadSchemaType.Keyword, pinned=True)
        shard.update(qe.UpdateOperation.create_field_index(name, params))
    ids = list(by_memory)[:limit] if limit else list(by_memory)
    started = time.perf_counter()
    for i in range(0, len(ids), 1000):
        points = [qe.Point(id=m, vector=[v.tolist() for v in by_memory[m]], payload=owners[m]) for m in ids[i:i + 1000]]
        shard.update(qe.UpdateOperation.upsert_points(points))
    write_s = time.perf_counter() - started
    optimize_s = edge._optimize(shard)
    info = shard.info()
    shard.close()
    return {"memories": len(ids), "keys": sum(len(by_memory[m]) for m in ids), "read_s": round(read_s, 1),
            "write_s": round(write_s, 1), "optimize_s": optimize_s, "points": int(info.points_count),
            "segments": int(info.segments_count) if hasattr(info, "segments_count") else None,
            "load1": os.getloadavg()[0]}


def _queries(n: int, cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache)[:n]
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.settings import EmbeddingSettings

    settings = EmbeddingSettings()
    embedder = FastEmbedEmbedder(settings.model, settings.cache_dir, threads=1)
    vectors = np.array([embedder.embed_query(t) for t in scale_records.queries(n, seed=41)], dtype=np.float32)
    np.save(cache, vectors)
    return vectors


def _exact(copy: Path, vectors: np.ndarray, cache: Path) -> list[list[str]]:
    """The exact top 10 memories per query: every key scored, each memory by its best key."""
    if cache.exists():
        return list(json.loads(cache.read_text()))
    keys = qe.EdgeShard.load(str(copy / "store" / mk.KEYS), _keys_config())
    truth = []
    for v in vectors:
        hits = keys.query(qe.QueryRequest(limit=200, query=qe.Query.Nearest(v.tolist()), filter=_scope_filter(),
                                          with_payload=["memory_id"], params=qe.SearchParams(exact=True)))
        truth.append(list(dict.fromkeys(str(h.payload["memory_id"]) for h in hits))[:10])
    keys.close()
    cache.write_text(json.dumps(truth))
    return truth


def measure_one(layout: str, copy: Path, out: Path, vectors: np.ndarray, truth: list[list[str]]) -> dict[str, Any]:
    """In this (fresh) process: open one layout, search every query, RSS and recall."""
    root = copy / "store" if layout == "keys" else out
    before = smaps_mib(os.getpid(), root)
    if layout == "keys":
        shard = qe.EdgeShard.load(str(root / mk.KEYS), _keys_config())
    else:
        shard = qe.EdgeShard.load(str(root / NAME), _mv_config())
    params = qe.SearchParams(hnsw_ef=EF or edge.DENSE_EF)
    took, found = [], []
    for v in vectors:
        t0 = time.perf_counter_ns()
        if layout == "keys":
            hits = shard.query(qe.QueryRequest(limit=mk.CANDIDATES, query=qe.Query.Nearest(v.tolist()),
                                               filter=_scope_filter(), with_payload=["memory_id"], params=params))
            top = list(dict.fromkeys(str(h.payload["memory_id"]) for h in hits))[:10]
        else:
            hits = shard.query(qe.QueryRequest(limit=20, query=qe.Query.Nearest([v.tolist()]),
                                               filter=_scope_filter(), with_payload=False, params=params))
            top = [str(h.id) for h in hits][:10]
        took.append((time.perf_counter_ns() - t0) / 1e6)
        found.append(top)
    after = smaps_mib(os.getpid(), root)
    shard.close()
    recall = [len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]
    half = len(took) // 2
    return {"layout": layout, "ef": EF or edge.DENSE_EF, "load1": round(os.getloadavg()[0], 2),
            "p50_p95_ms_first_half": [_pct(took[:half], 0.5), _pct(took[:half], 0.95)],
            "p50_p95_ms_second_half": [_pct(took[half:], 0.5), _pct(took[half:], 0.95)],
            "recall_at_10": round(float(np.mean(recall)), 4),
            "anon_mib_before_after": [before.get("anon", 0), after.get("anon", 0)],
            "store_mib": {k: v for k, v in after.items() if k.startswith(("memory_keys", "memory_mv", NAME, "store"))},
            "rss_total_mib": after.get("total")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("build", "measure", "one"))
    parser.add_argument("copy", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--layout", default="keys")
    parser.add_argument("--ef", type=int, default=0)
    parser.add_argument("--layouts", default="keys,multivector,keys,multivector")
    args = parser.parse_args()
    global EF
    EF = args.ef
    if args.step == "build":
        print(json.dumps(build(args.copy, args.out, args.limit)), flush=True)
        return 0
    vectors = _queries(args.queries, args.out / "queries.npy")
    truth = _exact(args.copy, vectors, args.out / "truth.json")
    if args.step == "one":
        print(json.dumps(measure_one(args.layout, args.copy, args.out, vectors, truth)), flush=True)
        return 0
    for layout in args.layouts.split(","):
        subprocess.run([sys.executable, "-m", "bench.multivector_spike", "one", str(args.copy), str(args.out),
                        "--queries", str(args.queries), "--layout", layout, "--ef", str(args.ef)], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
