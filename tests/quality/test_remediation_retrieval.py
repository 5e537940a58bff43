"""Retrieval quality of remediation_search on the labelled error set, through the real model
and store: hybrid (dense + sparse, fused) against dense-only on the same records."""

from __future__ import annotations

import json

import pytest

from bench.quality import DATA, remediation_quality
from contextd_mcp.container import Container
from contextd_mcp.services.error_text import infer_category

# Floors a little under the measured figures (BENCHMARKS.md) so a real regression fails.
HYBRID_RECALL_AT_1_FLOOR = 0.95
HYBRID_RECALL_AT_3_FLOOR = 0.98
HYBRID_MRR_FLOOR = 0.96
CATEGORY_ACCURACY_FLOOR = 0.75


def test_labelled_set_meets_its_size() -> None:
    dataset = json.loads((DATA / "remediation_errors.json").read_text())
    keys = {r["key"] for r in dataset["remediations"]}
    assert len(keys) == len(dataset["remediations"]) >= 150
    assert all(q["relevant"] in keys for q in dataset["queries"])
    per_key: dict[str, int] = {}
    for query in dataset["queries"]:
        per_key[query["relevant"]] = per_key.get(query["relevant"], 0) + 1
    assert set(per_key) == keys and min(per_key.values()) >= 2


def test_category_inference_on_the_labelled_set() -> None:
    dataset = json.loads((DATA / "remediation_errors.json").read_text())
    items = dataset["remediations"]
    right = sum(infer_category(f"{r['title']}\n{r['problem']}\n{r['root_cause']}") == r["category"] for r in items)
    assert right / len(items) >= CATEGORY_ACCURACY_FLOOR, right / len(items)


@pytest.mark.slow
def test_hybrid_meets_its_floor_and_beats_dense_only(container: Container) -> None:
    results = remediation_quality(container)
    for name, quality in results.items():
        print(f"remediation retrieval [{name}]:", quality.row())
    hybrid, dense = results["hybrid"], results["dense"]
    assert hybrid.recall_at_1 >= HYBRID_RECALL_AT_1_FLOOR, hybrid.row()
    assert hybrid.recall_at_3 >= HYBRID_RECALL_AT_3_FLOOR, hybrid.row()
    assert hybrid.mrr >= HYBRID_MRR_FLOOR, hybrid.row()
    assert hybrid.recall_at_1 > dense.recall_at_1 and hybrid.mrr > dense.mrr, (hybrid.row(), dense.row())
