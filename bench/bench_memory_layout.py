"""Memory keys on the embedded engine: one multivector point per memory (MaxSim) or one point
per key grouped by memory (what services/memory_keys.py does). Latency and quality.

    .venv/bin/python -m bench.bench_memory_layout [--sizes 1000,10000] [--keys 3] [--json FILE]

Latency: N memories of ``--keys`` vectors each (random unit vectors: an exact search costs the
same whatever the vectors say), stored both ways in qdrant-edge shards configured as the
product's (Cosine, Turbo8, Cold); 200 queries timed per layout (the engine call only):
  multivector   one point per memory, MaxSim over its vectors, top 10
  grouped       one point per key, top 100 keys (the product's CANDIDATES), best key per memory
Quality (dev split, real embeddings, keys = doc, title, applies_when, task, error): R@1/R@3/MRR
of phrasing B, multivector MaxSim vs the doc key alone vs grouped points scored as
memory_keys.rank scores them (dense part only, no sparse, no confidence).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import qdrant_edge as qe

from bench.quality import score

DIM = 384
QUERIES = 200


def _params(multi: bool) -> Any:
    return qe.EdgeVectorParams(
        size=DIM,
        distance=qe.Distance.Cosine,
        memory=qe.Memory.Cold,
        datatype=qe.VectorStorageDatatype.Turbo8,
        multivector_config=qe.MultiVectorConfig(comparator=qe.MultiVectorComparator.MaxSim) if multi else None,
    )


def _shard(path: Path, multi: bool) -> Any:
    return qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=_params(multi)))


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ids(n: int, salt: int) -> list[str]:
    import uuid

    return [str(uuid.UUID(int=(salt << 64) + i)) for i in range(n)]


def _fill(shard: Any, points: list[Any]) -> None:
    for start in range(0, len(points), 1024):
        shard.update(qe.UpdateOperation.upsert_points(points[start : start + 1024]))
    shard.flush()


def _time(shard: Any, queries: np.ndarray, limit: int) -> dict[str, float]:
    samples = []
    for q in queries:
        request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(q.tolist()), with_payload=["m"])
        started = time.perf_counter()
        shard.query(request)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(0.95 * len(samples))], 2)}


def latency(root: Path, n: int, keys: int) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    vectors = _unit(rng, n * keys).reshape(n, keys, DIM)
    queries = _unit(rng, QUERIES)
    memory_ids = _ids(n, 1)
    multi = _shard(root / f"multi-{n}", True)
    _fill(multi, [qe.Point(id=memory_ids[i], vector=vectors[i].tolist(), payload={"m": i}) for i in range(n)])
    grouped = _shard(root / f"grouped-{n}", False)
    key_ids = _ids(n * keys, 2)
    _fill(grouped, [
        qe.Point(id=key_ids[i * keys + k], vector=vectors[i, k].tolist(), payload={"m": i})
        for i in range(n) for k in range(keys)
    ])
    result = {"multivector": _time(multi, queries, 10), "grouped": _time(grouped, queries, 100)}
    multi.close()
    grouped.close()
    return result


def quality(root: Path) -> dict[str, Any]:
    from bench.bench_memory_learning import load
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.services.memory_keys import KEY_WEIGHT
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    embedder = FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir)
    data = load("dev")
    items = [*data["lessons"], *data["negatives"]]
    texts: list[list[str]] = []
    for item in items:
        doc = f"{item['title']}. {item.get('description') or ''}\n{item['content']}"
        extra = [*item.get("applies_when", []), *(item[k] for k in ("task", "error") if item.get(k))]
        texts.append([doc, item["title"], *extra])
    flat = embedder.embed_documents([t for group in texts for t in group])
    ids = _ids(len(items), 3)
    multi = _shard(root / "quality-multi", True)
    doc_only = _shard(root / "quality-doc", False)
    grouped = _shard(root / "quality-grouped", False)
    points_m, points_d, points_g, at = [], [], [], 0
    key_ids = iter(_ids(len(flat), 4))
    for index, group in enumerate(texts):
        own = flat[at : at + len(group)]
        at += len(group)
        points_m.append(qe.Point(id=ids[index], vector=[list(v) for v in own], payload={"m": index}))
        points_d.append(qe.Point(id=ids[index], vector=list(own[0]), payload={"m": index}))
        for k, vector in enumerate(own):
            points_g.append(qe.Point(id=next(key_ids), vector=list(vector), payload={"m": index, "doc": k == 0}))
    _fill(multi, points_m)
    _fill(doc_only, points_d)
    _fill(grouped, points_g)
    position = {item["key"]: i for i, item in enumerate(items)}
    ranked: dict[str, list[list[int]]] = {"multivector MaxSim": [], "doc key only": [], "grouped, doc-anchored": []}
    relevant = []
    for lesson in data["lessons"]:
        q = list(embedder.embed_query(lesson["phrasing_b"]))
        for name, shard in (("multivector MaxSim", multi), ("doc key only", doc_only)):
            hits = shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(q), with_payload=True))
            ranked[name].append([int(h.payload["m"]) for h in hits])
        hits = grouped.query(qe.QueryRequest(limit=100, query=qe.Query.Nearest(q), with_payload=True))
        doc: dict[int, float] = {}
        other: dict[int, float] = {}
        for h in hits:
            target = doc if h.payload["doc"] else other
            m = int(h.payload["m"])
            target[m] = max(target.get(m, -1.0), float(h.score))
        floor = min(float(h.score) for h in hits)
        scores = {m: doc.get(m, floor) + KEY_WEIGHT * other.get(m, doc.get(m, floor)) for m in doc.keys() | other.keys()}
        ranked["grouped, doc-anchored"].append(sorted(scores, key=lambda m: scores[m], reverse=True)[:10])
        relevant.append({position[lesson["key"]]})
    out = {}
    for name, lists in ranked.items():
        r1, r3, mrr = score([[str(i) for i in r] for r in lists], [{str(i) for i in s} for s in relevant])
        out[name] = {"r1": round(r1, 3), "r3": round(r3, 3), "mrr": round(mrr, 3)}
    for shard in (multi, doc_only, grouped):
        shard.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"keys_per_memory": args.keys, "load": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="contextd-layout-") as tmp:
        root = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            results[str(n)] = latency(root, n, args.keys)
            print(n, results[str(n)], flush=True)
        results["quality_dev"] = quality(root)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
