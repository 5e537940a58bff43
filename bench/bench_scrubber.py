"""Throughput, recall and FPR of RegexScrubber.

    .venv/bin/python bench/bench_scrubber.py [--mb 10] [--repeat 3] [--min-mbps 20]

Texts come from tests/data/secrets/secret_corpus.py, the generator the tests use:
  clean       code, config, logs and prose with no secrets
  sprinkled   the same, with a true-positive sample every 8th document
  stdlib      this Python's own standard library sources (real code; any
              redaction there is a false positive or a test fixture)
Each set is scrubbed three ways, as the server may see it: as one string, as ~4 KB
texts (a memory entry, a page of tool output), and per generated document (~0.5 KB
snippets for the generated sets, whole files for stdlib); best of --repeat runs.
Times are CPU time of this process (one thread), which a busy machine skews less
than wall-clock time. --min-mbps checks the one-string and 4 KB modes on clean text.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.data.secrets

from contextd_mcp.adapters.secret_scrubber import RegexScrubber
from tests.data.secrets import secret_corpus as corpus


def stdlib_documents(size: int) -> list[str]:
    docs: list[str] = []
    total = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(text)
        total += len(text)
        if total >= size:
            break
    return docs


def chunks(docs: list[str], size: int) -> list[str]:
    """Consecutive documents joined into texts of at least ``size`` characters."""
    out: list[str] = []
    current: list[str] = []
    length = 0
    for doc in docs:
        current.append(doc)
        length += len(doc) + 2
        if length >= size:
            out.append("\n\n".join(current))
            current, length = [], 0
    if current:
        out.append("\n\n".join(current))
    return out


def scrub_all(scrubber: RegexScrubber, texts: list[str]) -> int:
    return sum(scrubber.scrub(t).redactions for t in texts)


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    best, redactions = float("inf"), 0
    for _ in range(repeat):
        started = time.process_time()
        redactions = run()
        best = min(best, time.process_time() - started)
    return best, redactions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=10.0, help="size of each text set, in MB (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument("--min-mbps", type=float, default=0.0, help="exit 1 if clean text is slower than this")
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    scrubber = RegexScrubber()

    report = corpus.evaluate(scrubber.scrub, corpus.positives(), corpus.negatives())
    print(f"corpus: {report.summary()}\n")

    sets = {
        "clean": corpus.text_of_size(size, corpus.clean_documents()),
        "sprinkled": corpus.text_of_size(size, corpus.sprinkled_documents()),
        "stdlib": stdlib_documents(size),
    }
    header = (
        f"| {'text':<10} | {'mode':<14} | {'MB':>5} | {'calls':>6} | {'avg KB':>6} | {'us/call':>8} | {'MB/s':>6} |"
    )
    print(header + f" {'redactions':>10} |")
    print("|" + "|".join("-" * n for n in (12, 16, 7, 8, 8, 10, 8, 12)) + "|")
    clean_mbps = float("inf")
    for name, docs in sets.items():
        mb = sum(map(len, docs)) / 1e6
        modes = {"one string": ["\n\n".join(docs)], "4 KB texts": chunks(docs, 4096), "per document": docs}
        for mode, texts in modes.items():
            seconds, redactions = best_of(args.repeat, partial(scrub_all, scrubber, texts))
            mbps = mb / seconds
            if name == "clean" and mode != "per document":
                clean_mbps = min(clean_mbps, mbps)
            print(
                f"| {name:<10} | {mode:<14} | {mb:>5.1f} | {len(texts):>6} | {mb * 1000 / len(texts):>6.1f} "
                f"| {seconds * 1e6 / len(texts):>8.1f} | {mbps:>6.1f} | {redactions:>10} |"
            )

    print(f"\nrecall {report.recall:.4f}   FPR {report.fpr:.4f}   clean text {clean_mbps:.1f} MB/s (one string / 4 KB)")
    if clean_mbps < args.min_mbps:
        print(f"FAIL: clean text at {clean_mbps:.1f} MB/s, below --min-mbps {args.min_mbps}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
