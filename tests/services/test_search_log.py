"""The log of recent searches (services/search_log.py) keeps what feedback needs, at a size that
does not grow the daemon's heap by tens of MiB over a working day (issue 19)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from contextd_mcp import limits
from contextd_mcp.models.scope import Scope
from contextd_mcp.services.search_log import SearchLog

SCOPE = Scope(tenant="acme", team="core", project="api")
DIM = 384


def _outputs(n: int) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((n, DIM)).astype(np.float32)


def _vectors(n: int) -> list[list[float]]:
    # What an embedder returns: a float32 model output, as Python floats
    return _outputs(n).tolist()


def test_a_logged_search_gives_back_the_query_vector_it_was_given() -> None:
    log = SearchLog()
    vector = _vectors(1)[0]
    search_id = log.add(SCOPE, "conn-1", "flaky upload", vector, ["m1", "m2"])
    found = log.find(SCOPE, "conn-1", "m2", search_id)
    assert found is not None
    assert found.vector == vector  # exactly: a learned key is made from it
    assert isinstance(found.vector[0], float)


def test_the_searches_remembered_hold_their_vectors_in_four_bytes_a_dimension() -> None:
    n = 500
    outputs = _outputs(n)
    log = SearchLog()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(n):
            # each search's vector is made for it, and only the log keeps it after the call
            log.add(SCOPE, f"conn-{i % 4}", f"query {i}", outputs[i].tolist(), [f"m{i}", f"m{i + 1}"])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A list of Python floats is 32 bytes a dimension (12 KiB a search); float32 is 4, plus the
    # entry's strings and tuple.
    per_search = held / n
    assert per_search < DIM * 4 + 1024, per_search
    # So the whole log, full, stays a few MiB.
    assert limits.SEARCHES_REMEMBERED * per_search < 5 * 2**20
