"""`bench_scale`'s writes are new lessons, and a run says how many were not (issue 19).

A store of a lesson the store already holds returns without embedding (a tenth of a real
store's time). With one fixed seed, sessions 14-17 measured "writes at 20/s" on stores that held
most of the writer's lessons already, and reported a p50 the daemon does not reach under real
writes (BENCHMARKS.md, "Session 18", section 4). Real daemon, real MCP client, real model.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bench import bench_scale

pytestmark = pytest.mark.slow


def test_a_scale_run_writes_new_lessons_and_reports_the_duplicates_of_a_repeated_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    bench_scale.fill(data, 60, 1)
    monkeypatch.setattr(bench_scale, "WRITE_SEED", 424242)
    first = anyio.run(bench_scale.measure, data, 40, 20.0)
    assert first["write_seed"] == 424242
    assert first["stores_during"] > 0
    assert first["stores_duplicate"] == 0
    # The same seed writes the same lessons again: the ones the first run stored are duplicates.
    second = anyio.run(bench_scale.measure, data, 40, 20.0)
    assert second["stores_duplicate"] == min(first["stores_during"], second["stores_during"])
