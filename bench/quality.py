"""Retrieval quality on the labelled sets in tests/data (shared by the tests and the bench)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
