"""Wall time of `contextd-mcp docs` (issue 18: it used to build the whole container, store and
model, to render two files). Usage: python bench/bench_docs.py [--runs 3]. To time another tree,
run it with PYTHONPATH=<that tree>/src."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def one_run() -> float:
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "CONTEXTD_DATA_DIR": data, "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "contextd_mcp", "docs", "--out", out], env=env, check=True, timeout=300)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    print(f"docs: median {statistics.median(runs):.2f} s, min {min(runs):.2f} s over {len(runs)} runs "
          f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
