"""What one in-process test pays before and after its body: a whole container built on the
session's model, then closed (issue 18: "about 0.3 s of container start per test").

Usage: python bench/bench_test_setup.py [--runs 5] [--dir /tmp /dev/shm]
To time another tree, run it with PYTHONPATH=<that tree>/src (both trees take build(paths, embedder=)).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTEXTD_TOOLSETS", "all")


def main() -> None:
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.container import build
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.settings import DEFAULT_MODEL

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", nargs="+", default=["/tmp", "/dev/shm"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as models:
        embedder = FastEmbedEmbedder(DEFAULT_MODEL, Path(models))
        for base in args.dir:
            builds, closes = [], []
            for _ in range(args.runs):
                root = Path(tempfile.mkdtemp(dir=base))
                started = time.perf_counter()
                container = build(DataPaths(root / "data"), embedder=embedder)
                built = time.perf_counter()
                container.close()
                builds.append(built - started)
                closes.append(time.perf_counter() - built)
                shutil.rmtree(root)
            print(f"{base}: build median {statistics.median(builds):.3f} s, close median {statistics.median(closes):.3f} s "
                  f"over {args.runs} (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
