"""Secrets however they are written: recall per kind and encoding, false positives and MB/s,
before (the scrubber of another tree, e.g. commit 27483c0) → after (this tree), in one run.

    git -C /work/main worktree add /tmp/base 27483c0
    .venv/bin/python bench/bench_scrubber_encodings.py --before /tmp/base/src [--mb 4] [--repeat 3]

Each side runs in its own process (``--emit``, with PYTHONPATH at that tree's src) and
prints JSON; this process prints the tables. Texts:
  corpus      tests/data/secrets/encoded_corpus.py: 21 kinds × 8 encodings
  repository  this repository's src/ and tests/ (minus the secret corpora and the tests
              that plant a token on purpose): every redaction is a false positive
  packages    installed packages' Python sources (site-packages): likewise
  logs        6,000 generated log lines (service, HTTP, JSON records, escaped tool output,
              commits, base64 attachments): likewise
Speed is CPU time of one thread, best of --repeat, on ordinary text (the repository's
source) and on log/JSON-heavy text, three ways: scrub() of one string, scrub() of ~4 KB
texts (a memory, a page of tool output), and has_secret() of ~4 KB texts (the check every
response goes through before anything is scrubbed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.data.secrets


def _chunks(text: str, size: int = 4096) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _best(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def _texts(mb: float) -> dict[str, str]:
    from tests.data.secrets import encoded_corpus as ec

    size = int(mb * 1_000_000)
    source = "\n\n".join(text for _, text in ec.repository_files())
    logs = "\n".join(ec.log_lines(20_000))
    return {
        "ordinary (repo source)": (source * (size // len(source) + 1))[:size],
        "log/JSON-heavy": (logs * (size // len(logs) + 1))[:size],
    }


def emit(mb: float, repeat: int) -> dict[str, Any]:
    """Measure the scrubber importable here (the tree PYTHONPATH points at)."""
    import contextd_mcp.adapters.secret_scrubber as module
    from tests.data.secrets import encoded_corpus as ec

    scrubber = module.RegexScrubber()
    corpus = ec.samples()
    recall = ec.recall(lambda t: scrubber.scrub(t).text, corpus)
    fpr: dict[str, list[int]] = {}
    sets = {
        "repository files": ec.repository_files(),
        "package files": ec.package_files(),
        "log lines": [(str(i), line) for i, line in enumerate(ec.log_lines())],
    }
    for name, items in sets.items():
        fpr[name] = [sum(1 for _, text in items if scrubber.scrub(text).redactions), len(items)]
    speed: dict[str, dict[str, float]] = {}
    for name, text in _texts(mb).items():
        chunks = _chunks(text)
        mbs = len(text) / 1e6
        speed[name] = {
            "scrub, one string": mbs / _best(repeat, lambda: scrubber.scrub(text)),
            "scrub, 4 KB texts": mbs / _best(repeat, lambda: [scrubber.scrub(c) for c in chunks]),
            "has_secret, 4 KB texts": mbs / _best(repeat, lambda: [scrubber.has_secret(c) for c in chunks]),
        }
    return {
        "source": module.__file__,
        "recall": recall.total,
        "by_kind": recall.by_kind,
        "by_encoding": recall.by_encoding,
        "fpr": fpr,
        "speed": speed,
    }


def _run_side(src: Path, mb: float, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, __file__, "--emit", "--mb", str(mb), "--repeat", str(repeat)],
        env=env, capture_output=True, text=True, timeout=1800, check=True,
    )
    return json.loads(out.stdout)


def _cell(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="src/ of the tree to compare against (e.g. a 27483c0 worktree)")
    parser.add_argument("--mb", type=float, default=4.0, help="size of each speed text, in MB (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per speed figure; the best counts")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        print(json.dumps(emit(args.mb, args.repeat)))
        return 0
    after = _run_side(ROOT / "src", args.mb, args.repeat)
    before = _run_side(args.before, args.mb, args.repeat) if args.before else after
    print(f"before: {before['source']}\nafter:  {after['source']}\n")
    print(f"recall over {sum(t for _, t in after['by_encoding'].values())} samples: "
          f"{before['recall']:.3f} → {after['recall']:.3f}\n")
    for table in ("by_encoding", "by_kind"):
        print(f"| {table[3:]:<36} | {'before':>7} | {'after':>7} |\n|{'-' * 38}|{'-' * 9}|{'-' * 9}|")
        for key, cell in after[table].items():
            print(f"| {key:<36} | {_cell(before[table][key]):>7} | {_cell(cell):>7} |")
        print()
    print(f"| {'false positives (texts redacted)':<36} | {'before':>9} | {'after':>9} |\n|{'-' * 38}|{'-' * 11}|{'-' * 11}|")
    for key, cell in after["fpr"].items():
        print(f"| {key:<36} | {_cell(before['fpr'][key]):>9} | {_cell(cell):>9} |")
    print(f"\n| {'MB/s (CPU, best of ' + str(args.repeat) + ')':<24} | {'mode':<24} | {'before':>7} | {'after':>7} |")
    print(f"|{'-' * 26}|{'-' * 26}|{'-' * 9}|{'-' * 9}|")
    for text, modes in after["speed"].items():
        for mode, mbps in modes.items():
            print(f"| {text:<24} | {mode:<24} | {before['speed'][text][mode]:>7.1f} | {mbps:>7.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
