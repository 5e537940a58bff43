"""Cross-tenant isolation figures: runs the full isolation sweep (every probe in every parameter
of every registered tool, and prompts) and prints how many attempts were made and how many leaked.

    .venv/bin/python -m bench.bench_isolation            # prints the figures (--json FILE: the whole report)
    .venv/bin/python -m bench.bench_isolation --quick    # the fast-suite sample instead

The sweep is the test ``tests/isolation/test_isolation.py::test_nothing_crosses_with_every_probe``
(marked slow); this script only runs it and reads the report it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
FULL = "tests/isolation/test_isolation.py::test_nothing_crosses_with_every_probe"
QUICK = "tests/isolation/test_isolation.py::test_nothing_crosses_a_tenant_or_a_project"


def run(quick: bool = False) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="contextd-isolation-") as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "CONTEXTD_ISOLATION_REPORT": str(report), "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s", QUICK if quick else FULL],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - started
        if not report.exists():
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit("the isolation sweep wrote no report")
        result = json.loads(report.read_text())
    result["seconds"] = round(elapsed, 1)
    result["passed"] = proc.returncode == 0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_isolation")
    parser.add_argument("--quick", action="store_true", help="the fast-suite sample instead of every probe")
    parser.add_argument("--json", default="-", help="also write the whole report (per-tool counts) here")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(f"tools registered: {len(result['tools'])}; attacked: {len(result['tools_attacked'])}; "  # type: ignore[arg-type]
          f"without data: {result['tools_without_data']}")
    print(f"families seeded: {', '.join(result['families_seeded'])}; objects seeded: {result['objects_seeded']}; "  # type: ignore[arg-type]
          f"probes: {result['probes']}")
    print(f"cross-scope attempts: {result['attempts']} ({result['attempts_run']} ran past schema validation)")
    print(f"leaks: {result['leaks']}  (sweep {'passed' if result['passed'] else 'FAILED'} in {result['seconds']} s)")
    if args.json != "-":
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] and result["leaks"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
