"""Which pages of a store its searches read (issue 19): the same searches in-process, from a cold
page cache, with or without ``MADV_RANDOM`` on every mapping of the store.

    .venv/bin/python -m bench.search_pages COPY_OF_DATA_DIR [--random] [--searches 200,1000]

The store is opened as a daemon opens it (``build``) and answers one search; then every mapping of
its files is emptied (``MADV_DONTNEED``), the files are dropped from the page cache, and the
searches run. Resident MiB per kind of store file (``rss_floor.smaps_mib``) after each count is then what the searches read, plus
what the kernel read ahead around it (none with ``--random``). ``bench/rss_floor.py --cold`` is
the same through a real daemon, without the advice. Use a copy: the store is opened for writing.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["CONTEXTD_INDEX_AFTER_POINTS"] = "0"  # no background index build during the run

from bench import scale_records
from bench.bench_scale import TENANT, project_name
from bench.rss_floor import drop_from_page_cache, smaps_mib

MADV_RANDOM, MADV_DONTNEED = 1, 4


def _mappings(prefix: str) -> Iterator[tuple[int, int]]:
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[5].startswith(prefix):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            yield start, end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--random", action="store_true", help="MADV_RANDOM on every mapping of the store")
    parser.add_argument("--searches", default="200,1000")
    args = parser.parse_args()
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import SearchMemories
    from contextd_mcp.models.scope import Scope
    from contextd_mcp.paths import DataPaths

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    counts = [int(n) for n in args.searches.split(",")]
    texts = scale_records.queries(max(counts) + 1, seed=31)
    scope = Scope(tenant=TENANT, project=project_name(0))
    prefix = str((args.data / "store").resolve()) + "/"
    container = build(DataPaths(args.data))
    try:
        container.memory.search(scope, SearchMemories(query=texts[0]))  # every file the search needs is mapped
        for start, end in _mappings(prefix):
            libc.madvise(start, end - start, MADV_DONTNEED)
            if args.random:
                libc.madvise(start, end - start, MADV_RANDOM)
        drop_from_page_cache(args.data / "store")
        done = 1
        for n in counts:
            started = time.perf_counter()
            for text in texts[done:n + 1]:
                container.memory.search(scope, SearchMemories(query=text, limit=5))
            row = {"searches": n, "random": args.random, "ms_per_search": round((time.perf_counter() - started) / (n + 1 - done) * 1000, 2)}
            done = n + 1
            print(json.dumps({**row, **smaps_mib(os.getpid(), args.data / "store")}), flush=True)
    finally:
        container.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
