"""`python -m bench`: measure contextd (and its peers), print a table, update BENCHMARKS.md.

    python -m bench                 # full run: sizes 1k, 10k, 100k, peers, plots
    python -m bench --quick         # the CI smoke run: small sizes, few repetitions
    python -m bench --sizes 1000,10000 --no-peers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench import report
from bench.contextd import cold_start, embedding_floor, run_scale

ROOT = Path(__file__).parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated memory counts (default 1000,10000,100000)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer servers")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="markdown file to update ('-' for none)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--reuse", default=None, help="results JSON of an earlier run: its finished phases are kept, not rerun"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    sizes = [int(s) for s in (args.sizes or ("200" if args.quick else "1000,10000,100000")).split(",")]
    results: dict[str, Any] = json.loads(Path(args.reuse).read_text()) if args.reuse else {}
    results.update({
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "quick": args.quick,
    })

    def phase(name: str, run: Any) -> None:
        # Saved after every phase: a late failure (the peer's install, say) keeps the rest.
        if name in results:
            return
        results[name] = run()
        if args.json != "-":
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="contextd-bench-") as tmp:
        root = Path(tmp)
        (root / "cs").mkdir()
        phase("embedding_one_query_ms", lambda: embedding_floor(50 if args.quick else 200))
        phase("cold_start", lambda: anyio.run(cold_start, root / "cs" / "data", root / "cs", 3 if args.quick else 10))
        phase("scale", lambda: run_scale(root / "scale", sizes))
        if not args.no_peers:
            from bench import peers

            phase("peers", lambda: peers.run(root / "peers", quick=args.quick))
        from bench import quality_all, sandbox_round_trip

        phase("quality", lambda: quality_all.run(root / "quality"))
        phase("bash", lambda: sandbox_round_trip.run(root / "bash", quick=args.quick))

    print(report.table(results))
    if args.json != "-":
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.out != "-" and not args.quick:
        report.update_markdown(Path(args.out), results, ROOT / "bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
