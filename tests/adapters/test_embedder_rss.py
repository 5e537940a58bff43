"""The embedder's memory stays bounded when calls come from many threads (issue 19).

The daemon runs each tool call on whichever worker thread of its pool is free. glibc gives each
thread that allocates its own malloc arena and keeps what is freed there, so inference run on
the caller's thread left a copy of its buffers in every worker's arena: RssAnon grew by
365 MiB over 200 five-key embeddings on 8 threads (the daemon: ~2 MiB per memory_store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

ROOT = Path(__file__).resolve().parents[2]
CALLS = 200
THREADS = 8
# One arena's working set for these texts measured 38-56 MiB after the warm-up (200 calls,
# 8 threads); the unfixed embedder grew 365 MiB.
MAX_GROWTH_MIB = 128


@pytest.mark.slow
def test_rss_anon_stays_bounded_when_calls_come_from_many_threads(model_cache: Path, embedder: FastEmbedEmbedder) -> None:
    # A process of its own: RssAnon of the test process holds everything else the suite did.
    # (``embedder`` has assembled the model directory in ``model_cache`` already.)
    probe = subprocess.run(
        [sys.executable, "-m", "tests.adapters._embed_rss_proc", str(model_cache), str(CALLS), str(THREADS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert probe.returncode == 0, probe.stderr
    figures = json.loads(probe.stdout.strip().splitlines()[-1])
    growth_mib = (figures["after_kib"] - figures["before_kib"]) / 1024
    assert growth_mib < MAX_GROWTH_MIB, f"RssAnon grew {growth_mib:.0f} MiB over {CALLS} calls on {THREADS} threads"
