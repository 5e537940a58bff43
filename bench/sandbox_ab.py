"""`run_sandboxed("true")` of two source trees, call by call, without MCP (issue 13's overhead).

    python -m bench.sandbox_ab --baseline-src <tree>/src [--runs 200] [--gap-ms 20] [--project git]

Each tree runs in its own process (PYTHONPATH=<its src>; the sandbox helper it starts inherits
it), as the daemon does: one warm zygote, placeholders lingering 5 s, the same project. Calls
alternate between the trees (ABBA order, so neither always follows the other), each timed in
its own process around `runner.run`. On 2 cores shared with other work this is far less noisy
than the MCP round trip (`bench.sandbox_round_trip`), whose client, bridge and SDK add their
own variance; it times the part issue 13's cuts change. Reports p50 / p95 ms and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
WARMUP = 10
LINGER_SECONDS = 5.0  # the daemon's default placeholder linger
CALL_TIMEOUT = 60.0


def _serve(project: Path, state: Path) -> None:
    """One line in, one call, one line out: {"ms": duration, "exit": code}."""
    import anyio

    from contextd_mcp.sandbox import runner

    async def loop() -> None:
        while await anyio.to_thread.run_sync(sys.stdin.readline):
            started = time.perf_counter()
            result = await runner.run("true", project, state_dir=state, placeholder_linger_seconds=LINGER_SECONDS)
            print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "exit": result.exit_code}), flush=True)

    anyio.run(loop)


def _start(src: Path, project: Path, state: Path) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    argv = [sys.executable, "-m", "bench.sandbox_ab", "--serve", str(project), str(state)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _call(proc: subprocess.Popen[str]) -> float:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"a driver exited with status {proc.wait(timeout=CALL_TIMEOUT)}")
    answer = json.loads(line)
    if answer["exit"] != 0:
        raise RuntimeError(f"`true` exited {answer['exit']}")
    return float(answer["ms"])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def measure(trees: dict[str, Path], runs: int, gap_ms: float, project_kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="contextd-ab-", dir="/tmp") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        if project_kind == "git":
            subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=30)
        procs = {}
        for name, src in trees.items():
            state = Path(tmp) / f"state-{name}"
            state.mkdir()
            procs[name] = _start(src, project, state)
        samples: dict[str, list[float]] = {name: [] for name in procs}
        load = os.getloadavg()[0]
        try:
            for i in range(WARMUP + runs):
                order = list(procs) if i % 2 else list(reversed(procs))
                for name in order:
                    time.sleep(gap_ms / 1000)
                    ms = _call(procs[name])
                    if i >= WARMUP:
                        samples[name].append(ms)
        finally:
            for proc in procs.values():
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=CALL_TIMEOUT)
    report: dict[str, Any] = {
        name: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(_percentile(v, 0.95), 2), "n": len(v)}
        for name, v in samples.items()
    }
    report["load_before_after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    report["gap_ms"] = gap_ms
    return report


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True, help="the src/ directory of the tree to compare with")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="idle before each call, untimed")
    parser.add_argument("--project", choices=("empty", "git"), default="git")
    args = parser.parse_args()
    trees = {"before": args.baseline_src.resolve(), "after": ROOT / "src"}
    print(json.dumps(measure(trees, args.runs, args.gap_ms, args.project), indent=2))


if __name__ == "__main__":
    main()
