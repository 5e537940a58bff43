"""Retrieval quality of memory_search on the labelled set, through the real model and store."""

from __future__ import annotations

import json

from bench.quality import DATA, memory_quality, score
from contextd_mcp.container import Container

# Floors a little under the measured figures (R@3 1.000, MRR 0.961; BENCHMARKS.md) so a regression fails.
RECALL_AT_3_FLOOR = 0.93
MRR_FLOOR = 0.90


def test_labelled_set_meets_its_size() -> None:
    dataset = json.loads((DATA / "memory_retrieval.json").read_text())
    keys = {m["key"] for m in dataset["memories"]}
    assert len(keys) == len(dataset["memories"]) >= 100
    assert len(dataset["queries"]) >= 50
    assert all(set(q["relevant"]) <= keys for q in dataset["queries"])


def test_scoring_arithmetic() -> None:
    assert score([["a", "b"], ["x", "y", "z", "b"], []], [{"a"}, {"z"}, {"q"}]) == (1 / 3, 2 / 3, (1 + 1 / 3) / 3)


def test_recall_and_mrr_floors(container: Container) -> None:
    quality = memory_quality(container.memory)
    print("memory retrieval:", quality.row())
    assert quality.recall_at_3 >= RECALL_AT_3_FLOOR, quality.row()
    assert quality.mrr >= MRR_FLOOR, quality.row()
