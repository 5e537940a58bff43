"""Retrieval quality on the labelled sets in tests/data (shared by the tests and the bench)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextd_mcp.models.requests import SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.services.memory import MemoryService

DATA = Path(__file__).parents[1] / "tests" / "data"
SCOPE = Scope(tenant="eval", team="eval", project="eval")


@dataclass(frozen=True)
class Quality:
    queries: int
    items: int
    recall_at_1: float
    recall_at_3: float
    mrr: float

    def row(self) -> str:
        return f"R@1 {self.recall_at_1:.3f}  R@3 {self.recall_at_3:.3f}  MRR {self.mrr:.3f}  ({self.queries} queries, {self.items} items)"


def score(ranked: list[list[str]], relevant: list[set[str]], k: int = 3) -> tuple[float, float, float]:
    r1 = r3 = rr = 0.0
    for ids, wanted in zip(ranked, relevant, strict=True):
        first = next((rank for rank, i in enumerate(ids, 1) if i in wanted), None)
        r1 += first == 1
        r3 += first is not None and first <= k
        rr += 1 / first if first else 0.0
    n = len(ranked)
    return r1 / n, r3 / n, rr / n


def memory_quality(service: MemoryService, path: Path = DATA / "memory_retrieval.json") -> Quality:
    dataset = json.loads(path.read_text())
    key_to_id: dict[str, str] = {}
    for item in dataset["memories"]:
        stored = service.store(
            SCOPE,
            StoreMemory(
                title=item["title"],
                description=item.get("description"),
                content=item["content"],
                outcome=item.get("outcome", "success"),
                tags=item.get("tags", []),
            ),
        )
        key_to_id[item["key"]] = stored.id
    ranked, relevant = [], []
    for query in dataset["queries"]:
        hits = service.search(SCOPE, SearchMemories(query=query["query"], limit=10, min_confidence=0.0))
        ranked.append([h.id for h in hits])
        relevant.append({key_to_id[k] for k in query["relevant"]})
    r1, r3, mrr = score(ranked, relevant)
    return Quality(len(ranked), len(key_to_id), r1, r3, mrr)


class _QueryCache:
    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._cache: dict[str, list[float]] = {}
        self.model_name, self.dim = embedder.model_name, embedder.dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if text not in self._cache:
            self._cache[text] = self._embedder.embed_query(text)
        return self._cache[text]


# Fusion weights (dense, sparse) per variant; "hybrid" is what remediation_search uses.
REMEDIATION_VARIANTS: dict[str, tuple[float, float] | None] = {"dense": (1.0, 0.0), "sparse": (0.0, 1.0), "hybrid": None}


def remediation_quality(
    container: Any, path: Path = DATA / "remediation_errors.json", queries: list[dict[str, str]] | None = None
) -> dict[str, Quality]:
    """Dense-only vs sparse-only vs hybrid on the labelled error set: the same stored records and
    query vectors, only the fusion weights differ (dense = the dense list alone, on normalised text).
    ``queries`` ({"error", "relevant"} items) replaces the set's own queries."""
    from contextd_mcp.models.remediation import RecordRemediation, SearchRemediations
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.services.backing import Backing
    from contextd_mcp.services.remediation import WEIGHTS, RemediationService

    # The variants embed the same queries: embed each once.
    embedder = _QueryCache(container.embedder)
    service = RemediationService(Backing.of(Stores(container.store), embedder, container.scrubber), embedder)
    dataset = json.loads(path.read_text())
    requests = [
        RecordRemediation(
            title=r["title"], problem=r["problem"], solution=r["solution"], root_cause=r.get("root_cause"),
            category=r.get("category"), tags=r.get("tags", []),
        )
        for r in dataset["remediations"]
    ]
    recorded = service.record_many(SCOPE, requests)
    key_to_id = {r["key"]: rec.id for r, rec in zip(dataset["remediations"], recorded, strict=True)}
    results: dict[str, Quality] = {}
    for name, weights in REMEDIATION_VARIANTS.items():
        ranked, relevant = [], []
        for query in queries if queries is not None else dataset["queries"]:
            request = SearchRemediations(error=query["error"], limit=10)
            hits = service.search(SCOPE, request, weights=weights or WEIGHTS)
            ranked.append([h.id for h in hits])
            relevant.append({key_to_id[query["relevant"]]})
        r1, r3, mrr = score(ranked, relevant)
        results[name] = Quality(len(ranked), len(key_to_id), r1, r3, mrr)
    return results
