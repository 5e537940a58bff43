"""A process that embeds as the daemon does, for tests/adapters/test_embedder_rss.py.

    python -m tests.adapters._embed_rss_proc <model cache> <calls> <threads>

One warm-up call on the main thread, then ``calls`` calls of ``embed_documents`` on five texts
of varied lengths (a ``memory_store``'s keys), one at a time, each on the next of ``threads``
threads in turn: the daemon runs each tool call on whichever worker thread of its pool is free.
Prints one JSON line: RssAnon (KiB) after the warm-up and after the calls.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.adapters.shipped_model import SHIPPED_MODEL

WORDS = "pytest fixture scope leaks state between tests when the session database is reused by workers".split()


def rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def keys(call: int) -> list[str]:
    # Lengths vary call to call, as real keys do: 3 to 90 words.
    return [" ".join(WORDS[(call + i + j) % len(WORDS)] for j in range(3 + (call * 7 + i * 13) % 88)) for i in range(5)]


def main() -> None:
    cache, calls, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    embedder = FastEmbedEmbedder(SHIPPED_MODEL, cache)
    embedder.embed_documents(keys(0))
    before = rss_anon_kib()
    turns = [threading.Semaphore(0) for _ in range(threads)]
    done = threading.Semaphore(0)

    def worker(index: int) -> None:
        for call in range(index, calls, threads):
            turns[index].acquire()
            embedder.embed_documents(keys(call + 1))
            done.release()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for call in range(calls):
        turns[call % threads].release()
        done.acquire()
    for thread in pool:
        thread.join()
    print(json.dumps({"before_kib": before, "after_kib": rss_anon_kib()}), flush=True)


if __name__ == "__main__":
    main()
