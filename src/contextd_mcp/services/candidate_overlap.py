"""How much of a query's terms each candidate of a second stage holds, each term weighed by how
few of the candidates hold it: a term all of them share tells none apart. The second stages of
remediation_search (services/remediation_rerank.py) and memory_search
(services/memory_rerank.py) both score their top candidates this way."""

from __future__ import annotations

import math
from collections.abc import Sequence


def overlaps(holds: Sequence[Sequence[bool]]) -> list[float]:
    """``holds[i][k]``: candidate i holds query term k. Each candidate's weighted share of the
    terms, in [0, 1]; a term weighs log((n + 1) / (1 + how many of the n candidates hold it))."""
    n = len(holds)
    count = len(holds[0]) if holds else 0
    weights = [math.log((n + 1) / (1 + sum(row[k] for row in holds))) for k in range(count)]
    total = sum(weights)
    if total <= 0:
        return [0.0] * n
    return [sum(w for w, hit in zip(weights, row, strict=True) if hit) / total for row in holds]
