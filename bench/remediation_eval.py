"""remediation_search on the near-miss sets (bench/data/remediation_eval/), through the real
daemon and the MCP SDK client over ``contextd-mcp stdio``, beside naive dense cosine.

The store holds both splits' fixes (each beside its family's near-misses; the queries are one
split's). tests/data/remediation_errors.json is not mixed in: several of its fixes are the same
fix for the same error as one of this set's (ModuleNotFoundError 'yaml', Redis OOM...), which
would count a right answer as a miss. Each re-occurrence is searched with the
``remediation_search`` tool (its ``context`` when the set gives one); R@1, R@3 and MRR over
the top 10, and the tool's wall time per call (client → bridge → daemon → client).

Ablations are daemon settings (``CONTEXTD_REMEDIATION_*``, settings.RemediationSettings): the
daemon is restarted with each variant on the same data directory, so every variant ranks the
very same stored records.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.driver import contextd_env, stdio_client, stop_contextd, CLI
from bench.quality import Quality, score

EVAL = Path(__file__).parent / "data" / "remediation_eval"


def load(split: str) -> dict[str, Any]:
    return json.loads((EVAL / f"{split}.json").read_text())


def _record_args(r: dict[str, Any]) -> dict[str, Any]:
    args = {"title": r["title"], "problem": r["problem"], "solution": r["solution"], "tags": r.get("tags", [])}
    if r.get("root_cause"):
        args["root_cause"] = r["root_cause"]
    if r.get("category"):
        args["category"] = r["category"]
    return args


async def _call(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def fill(data_dir: Path, project: Path, items: list[dict[str, Any]]) -> dict[str, str]:
    """Record every fix through the tool; key → id."""
    ids: dict[str, str] = {}
    async with stdio_client([*CLI, "stdio"], contextd_env(data_dir), project) as client:
        for r in items:
            ids[r["key"]] = (await _call(client, "remediation_record", _record_args(r)))["id"]
    return ids


async def searched(data_dir: Path, project: Path, queries: list[dict[str, Any]], ids: dict[str, str],
                   env: dict[str, str]) -> tuple[Quality, list[float], list[dict[str, Any]]]:
    """Every query through remediation_search on a daemon started with ``env``."""
    stop_contextd(data_dir)
    ranked, relevant, latency, misses = [], [], [], []
    by_id = {v: k for k, v in ids.items()}
    async with stdio_client([*CLI, "stdio"], contextd_env(data_dir, **env), project) as client:
        await _call(client, "remediation_search", {"error": "warm-up: ModuleNotFoundError"})
        for q in queries:
            args: dict[str, Any] = {"error": q["error"], "limit": 10}
            if q.get("context"):
                args["context"] = q["context"]
            started = time.perf_counter()
            hits = (await _call(client, "remediation_search", args))["remediations"]
            latency.append((time.perf_counter() - started) * 1000)
            got = [h["id"] for h in hits]
            ranked.append(got)
            relevant.append({ids[q["relevant"]]})
            if not got or got[0] != ids[q["relevant"]]:
                misses.append({"relevant": q["relevant"], "first": by_id.get(got[0]) if got else None})
    stop_contextd(data_dir)
    r1, r3, mrr = score(ranked, relevant)
    return Quality(len(ranked), len(ids), r1, r3, mrr), latency, misses


def naive_dense(items: list[dict[str, Any]], queries: list[dict[str, Any]]) -> Quality:
    """Plain semantic search: raw title + error embedded, the raw error as the query, cosine."""
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.settings import EmbeddingSettings

    s = EmbeddingSettings()
    embedder = FastEmbedEmbedder(s.model, s.cache_dir)
    docs = np.array(embedder.embed_documents([f"{r['title']}\n{r['problem']}" for r in items]))
    keys = [r["key"] for r in items]
    ranked, relevant = [], []
    for q in queries:
        sims = docs @ np.array(embedder.embed_query(q["error"]))
        ranked.append([keys[i] for i in np.argsort(-sims)[:10]])
        relevant.append({q["relevant"]})
    r1, r3, mrr = score(ranked, relevant)
    return Quality(len(ranked), len(items), r1, r3, mrr)


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def ablation_in_process(split: str, variants: dict[str, dict[str, str]]) -> dict[str, Quality]:
    """The same variants on the service in-process (same store and model, no MCP hop, each query
    embedded once): the ablation in minutes on a loaded machine. Settings come from the same
    ``CONTEXTD_REMEDIATION_*`` names as the daemon's."""
    import tempfile

    from bench.quality import SCOPE, _QueryCache
    from contextd_mcp.container import build
    from contextd_mcp.models.remediation import RecordRemediation, SearchRemediations
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.services.backing import Backing
    from contextd_mcp.services.remediation import RemediationService
    from contextd_mcp.services.remediation_rerank import RerankSettings
    from contextd_mcp.settings import RemediationSettings

    items = load("dev")["remediations"] + load("heldout")["remediations"]
    queries = load(split)["queries"]
    results: dict[str, Quality] = {}
    with tempfile.TemporaryDirectory(prefix="bench-remediation-ablation-") as tmp:
        container = build(DataPaths(Path(tmp)))
        try:
            embedder = _QueryCache(container.embedder)
            service = RemediationService(Backing.of(Stores(container.store), embedder, container.scrubber), embedder)
            recorded = service.record_many(SCOPE, [RecordRemediation(**_record_args(r)) for r in items])
            ids = {r["key"]: x.id for r, x in zip(items, recorded, strict=True)}
            for name, env in variants.items():
                s = RemediationSettings(**{k.removeprefix("CONTEXTD_REMEDIATION_").lower(): v == "true" for k, v in env.items()})
                service._rerank = RerankSettings(s.rerank, s.rerank_error_lines, s.rerank_command, s.rerank_context,
                                                 s.rerank_top, s.rerank_weight)
                ranked, relevant = [], []
                for q in queries:
                    hits = service.search(SCOPE, SearchRemediations(error=q["error"], context=q.get("context"), limit=10))
                    ranked.append([h.id for h in hits])
                    relevant.append({ids[q["relevant"]]})
                r1, r3, mrr = score(ranked, relevant)
                results[name] = Quality(len(ranked), len(items), r1, r3, mrr)
                print(f"{split:8} {name:28} {results[name].row()}  (in-process)", flush=True)
        finally:
            container.close()
    return results
