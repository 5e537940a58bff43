"""The benchmark runs end to end at a small size, so it cannot rot (issue: bench in CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # its subprocess has the same bound; a loaded CI host needs it
def test_quick_bench_produces_every_section(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", "-", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    scale = figures["scale"]["200"]
    assert 0 < scale["memory_search_ms"]["p50_ms"] < 5000
    assert scale["memory_store_per_s"] > 0 and scale["daemon_rss_mib"] > 0
    assert figures["cold_start"]["daemon_warm_ms"]["p50_ms"] > 0
    assert figures["quality"]["memory"]["recall_at_3"] > 0.5
    assert "peers" in figures and figures["peers"], "the peer comparison did not run"
    assert "memory_search p50 / p95" in result.stdout
