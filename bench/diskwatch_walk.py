"""What the disk-write cap's attribution costs: one walk of a project (`_diskwatch.changed_bytes`).

    python -m bench.diskwatch_walk [--files 1000 10000 50000] [--runs 5]

The watcher's per-sample cost is one statvfs() (unchanged); a walk happens only once the
filesystem's used space grew past the cap during a call, at most every WALK_EVERY_SECONDS. Its
duration adds to how far a fast writer can overshoot the cap (write rate x walk time). The trees
are made in a temporary directory on the filesystem of the current directory: `files` small
files, 100 to a directory, a tenth of them changed "during the call".
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from contextd_mcp.sandbox._diskwatch import DiskWatch, changed_bytes


def _tree(root: Path, files: int) -> float:
    for i in range(files):
        d = root / f"d{i // 100}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(b"x" * 100)
    time.sleep(1.1)  # ctime has a coarse clock: the call "starts" after the tree was made
    since = time.time()
    for i in range(0, files, 10):
        (root / f"d{i // 100}" / f"f{i}").write_bytes(b"y" * 5000)
    return since


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        start = time.perf_counter()
        for _ in range(1000):
            DiskWatch(Path(tmp), 1 << 30)
        print(f"per call (DiskWatch at call start): {(time.perf_counter() - start) * 1000:.3f} us")
    for files in args.files:
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            since = _tree(Path(tmp), files)
            times, total = [], 0
            for _ in range(args.runs):
                start = time.perf_counter()
                total = changed_bytes(Path(tmp), since)
                times.append((time.perf_counter() - start) * 1000)
            print(f"{files:>6} files: walk median {statistics.median(times):7.1f} ms, max {max(times):7.1f} ms;"
                  f" changed {total >> 10} KiB of {files // 10} files")  # fmt: skip


if __name__ == "__main__":
    main()
