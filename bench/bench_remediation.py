"""remediation_search: retrieval quality on the labelled set, and latency at N records.

    .venv/bin/python -m bench.bench_remediation [--records 10000] [--queries 200] [--skip-quality] [--json FILE]
    .venv/bin/python -m bench.bench_remediation --eval dev[,heldout] [--variants shipped,...|all] [--json FILE]

--eval: the near-miss sets (bench/data/remediation_eval/, bench/remediation_eval.py) through the
real daemon and MCP client over stdio, beside naive dense cosine, one row per ranking variant
(the ablation: each a daemon started with other CONTEXTD_REMEDIATION_* settings).

Quality (tests/data/remediation_errors.json: 258 fixes, 598 reworded occurrences of their errors),
recall@1, recall@3, MRR over the top 10:
  dense-raw   what plain semantic search does: raw title + error embedded, raw error as the query
  dense       the dense list alone, on normalised text (remediation_search with sparse weight 0)
  sparse      the sparse (lexical, IDF) list alone
  hybrid      remediation_search as shipped: both lists fused by weighted reciprocal rank
The same four on "described" queries: each fix's root-cause prose as the query (how well a
description in words, not an error paste, finds the fix).

Latency: N records in one project (the 258 fixes, then generated variants of them with other
paths, names and services, each embedded for real), then the set's error queries timed through
the service (normalise + embed + hybrid search + re-rank) and through the MCP tool in-process
(adds validation, JSON, scrubbing, the token cap). Wall-clock on this machine, shared with
other work: see the load average printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.quality import DATA, SCOPE, Quality, remediation_quality, score
from contextd_mcp.container import Container, build
from contextd_mcp.models.remediation import RecordRemediation, SearchRemediations
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.vector_store import CollectionSpec, Record

SERVICES = ["billing", "ledger", "orders", "search", "notifier", "gateway", "reports", "ingest", "auth", "crm"]
DIRS = ["/srv", "/opt", "/home/dev/src", "/builds/acme", "/Users/sam/code", "/workspace"]


def dense_raw_quality(container: Container, dataset: dict[str, Any], queries: list[dict[str, str]]) -> Quality:
    """The baseline: a plain dense collection of raw text, searched with the raw query."""
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"  # a fresh collection per query set
    spec = CollectionSpec(name=name, dim=container.embedder.dim, model=container.embedder.model_name)
    container.store.ensure(spec)
    items = dataset["remediations"]
    vectors = container.embedder.embed_documents([f"{r['title']}\n{r['problem']}" for r in items])
    ids = {r["key"]: str(uuid.uuid4()) for r in items}
    container.store.upsert(spec.name, [Record(id=ids[r["key"]], payload={"tenant": "raw"}, vector=v) for r, v in zip(items, vectors, strict=True)])
    ranked, relevant = [], []
    for query in queries:
        hits = container.store.search(spec.name, container.embedder.embed_query(query["error"]), {"tenant": "raw"}, 10)
        ranked.append([h.id for h in hits])
        relevant.append({ids[query["relevant"]]})
    r1, r3, mrr = score(ranked, relevant)
    return Quality(len(ranked), len(items), r1, r3, mrr)


def variant(item: dict[str, Any], i: int, rng: random.Random) -> RecordRemediation:
    service = f"{rng.choice(SERVICES)}-{i}"
    root = f"{rng.choice(DIRS)}/{service}"
    problem = item["problem"]
    for old in ("/srv", "/opt", "/home", "/builds", "/Users", "/workspace", "/app", "/root"):
        problem = problem.replace(old, root, 1)
    problem = f"[{service}] {problem}\n(seen in {service}, run {rng.randint(1, 99999)})"
    return RecordRemediation(
        title=f"{item['title']} in {service}",
        problem=problem[:8000],
        solution=f"{item['solution']} (applied to {service})",
        root_cause=item.get("root_cause"),
        category=item.get("category"),
        tags=item.get("tags", []),
    )


def fill(container: Container, dataset: dict[str, Any], records: int, batch: int = 256) -> float:
    service = container.remediation
    assert service is not None
    items = dataset["remediations"]
    rng = random.Random(7)
    started = time.perf_counter()
    base = [RecordRemediation(title=r["title"], problem=r["problem"], solution=r["solution"], category=r["category"],
                              tags=r["tags"]) for r in items]
    service.record_many(SCOPE, base[:records])
    made = min(records, len(base))
    while made < records:
        chunk = [variant(items[(made + j) % len(items)], made + j, rng) for j in range(min(batch, records - made))]
        service.record_many(SCOPE, chunk)
        made += len(chunk)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "n": len(ordered),
    }


def service_latency(container: Container, queries: list[str]) -> dict[str, float]:
    service = container.remediation
    assert service is not None
    samples = []
    for error in queries:
        started = time.perf_counter()
        service.search(SCOPE, SearchRemediations(error=error))
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def store_latency(container: Container, queries: list[str]) -> dict[str, dict[str, float]]:
    """The two parts of a search: embedding the query, and the store's fused search (+ re-rank)."""
    from contextd_mcp.ports.tenant_terms import for_tenant
    from contextd_mcp.services import remediation as module
    from contextd_mcp.services.error_text import dense_text, normalise, sparse_vector

    embed, search = [], []
    where = {**SCOPE.read_filter(), "confidence": module.Range(gte=0.3)}
    for error in queries:
        started = time.perf_counter()
        signature = normalise(error)
        vector = container.embedder.embed_query(dense_text(signature))
        middle = time.perf_counter()
        terms = for_tenant(sparse_vector(signature), SCOPE.tenant)  # as ScopedStore does: the tenant's own terms
        container.store.hybrid_search(module.COLLECTION, vector, terms, where, limit=20,
                                      candidates=module.CANDIDATES, weights=module.WEIGHTS, fields=module.HIT_FIELDS)
        search.append((time.perf_counter() - middle) * 1000)
        embed.append((middle - started) * 1000)
    return {"normalise_embed_ms": percentiles(embed), "hybrid_search_ms": percentiles(search)}


def tool_latency(container: Container, queries: list[str]) -> dict[str, float]:
    import anyio
    from mcp import Client

    from contextd_mcp.mcp.caller import Caller, acting_as

    samples: list[float] = []

    async def run() -> None:
        with acting_as(Caller(scope=SCOPE, transport="memory")):
            async with Client(container.server()) as client:
                for error in queries:
                    started = time.perf_counter()
                    result = await client.call_tool("remediation_search", {"error": error})
                    samples.append((time.perf_counter() - started) * 1000)
                    assert not result.is_error, result.content

    anyio.run(run)
    return percentiles(samples)


# Ablation: what each second-stage feature buys (settings.RemediationSettings).
_OFF, _ON = "false", "true"
VARIANTS: dict[str, dict[str, str]] = {
    "first-stage (no rerank)": {"CONTEXTD_REMEDIATION_RERANK": _OFF},
    "rerank: command only": {"CONTEXTD_REMEDIATION_RERANK_ERROR_LINES": _OFF, "CONTEXTD_REMEDIATION_RERANK_COMMAND": _ON},
    "rerank: context only": {"CONTEXTD_REMEDIATION_RERANK_ERROR_LINES": _OFF, "CONTEXTD_REMEDIATION_RERANK_CONTEXT": _ON},
    "rerank: command + context": {"CONTEXTD_REMEDIATION_RERANK_ERROR_LINES": _OFF, "CONTEXTD_REMEDIATION_RERANK_COMMAND": _ON,
                                  "CONTEXTD_REMEDIATION_RERANK_CONTEXT": _ON},
    "error lines + command": {"CONTEXTD_REMEDIATION_RERANK_COMMAND": _ON},
    "error lines + context": {"CONTEXTD_REMEDIATION_RERANK_CONTEXT": _ON},
    "all three": {"CONTEXTD_REMEDIATION_RERANK_COMMAND": _ON, "CONTEXTD_REMEDIATION_RERANK_CONTEXT": _ON},
    "shipped": {},  # the error lines alone
}


def run_eval(splits: list[str], variants: list[str]) -> dict[str, Any]:
    """Both splits' fixes stored once; each split's queries run through every variant."""
    import anyio

    from bench import remediation_eval as ev

    items = ev.load("dev")["remediations"] + ev.load("heldout")["remediations"]
    results: dict[str, Any] = {"stored": len(items)}
    with tempfile.TemporaryDirectory(prefix="bench-remediation-eval-") as tmp:
        data_dir, project = Path(tmp) / "data", Path(tmp) / "project"
        project.mkdir()
        ids = anyio.run(ev.fill, data_dir, project, items)
        for split in splits:
            queries = ev.load(split)["queries"]
            naive = ev.naive_dense(items, queries)
            row: dict[str, Any] = {"queries": len(queries), "naive-dense": naive.__dict__}
            print(f"{split:8} {'naive-dense':26} {naive.row()}", flush=True)
            for name in variants:
                quality, latency, misses = anyio.run(ev.searched, data_dir, project, queries, ids, VARIANTS[name])
                row[name] = {**quality.__dict__, "p50_ms": ev.p50(latency), "misses": misses}
                print(f"{split:8} {name:26} {quality.row()}  p50 {ev.p50(latency)} ms", flush=True)
            results[split] = row
    results["load_average"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", help="dev, heldout, or dev,heldout")
    parser.add_argument("--variants", default="shipped", help="comma-separated names from VARIANTS, or 'all'")
    parser.add_argument("--in-process", action="store_true", help="--eval on the service in-process (the quick ablation)")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.eval:
        names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
        if args.in_process:
            from bench.remediation_eval import ablation_in_process

            results = {split: {k: q.__dict__ for k, q in ablation_in_process(split, {n: VARIANTS[n] for n in names}).items()}
                       for split in args.eval.split(",")}
        else:
            results = run_eval(args.eval.split(","), names)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    dataset = json.loads((DATA / "remediation_errors.json").read_text())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-remediation-") as tmp:
        if not args.skip_quality:
            container = build(DataPaths(Path(tmp) / "quality"))
            try:
                described = [{"error": r["root_cause"], "relevant": r["key"]} for r in dataset["remediations"]]
                for name, queries in (("errors", dataset["queries"]), ("described", described)):
                    table = {"dense-raw": dense_raw_quality(container, dataset, queries)}
                    table.update(remediation_quality(container, queries=queries))
                    results[f"quality_{name}"] = {k: q.__dict__ for k, q in table.items()}
                    for key, quality in table.items():
                        print(f"{name:9} {key:9} {quality.row()}", flush=True)
            finally:
                container.close()
        container = build(DataPaths(Path(tmp) / "latency"))
        try:
            seconds = fill(container, dataset, args.records)
            assert container.remediation is not None
            count = container.remediation.counts(SCOPE)
            print(f"filled {count} records in {seconds:.0f} s ({count / seconds:.0f}/s)", flush=True)
            queries = [q["error"] for q in random.Random(3).sample(dataset["queries"], min(args.queries, len(dataset["queries"])))]
            service_latency(container, queries[:10])  # warm-up
            results["records"] = count
            results["fill_per_s"] = round(count / seconds, 1)
            results["search_service_ms"] = service_latency(container, queries)
            results["search_tool_ms"] = tool_latency(container, queries)
            results.update(store_latency(container, queries))
            results["load_average"] = os.getloadavg()
            print(f"remediation_search at {count} records: service {results['search_service_ms']}, "
                  f"MCP tool {results['search_tool_ms']}; of which normalise + embed {results['normalise_embed_ms']}, "
                  f"store hybrid search {results['hybrid_search_ms']} (load average {results['load_average']})", flush=True)
        finally:
            container.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
