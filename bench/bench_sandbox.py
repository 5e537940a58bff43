"""Launch cost of the sandbox against plain bash and bubblewrap.

    python bench/bench_sandbox.py [--runs 200] [--gap-ms 50]

Each row runs `true` RUNS times; rows are interleaved (one run of each row per round) so that
load from elsewhere on the machine hits every row alike. Two passes: back-to-back, then with
GAP_MS of idle time between rounds (not timed), which is how an agent calls a tool and gives the
helper's pool time to warm a replacement. Rows:

    plain          subprocess: bash -c true
    bwrap          bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true  (if installed)
    bwrap+bash     the same running bash -c true, like for like with the sandbox
    sandbox        run_sandboxed("true"): pre-started helper (zygote) with warm workers
    sandbox-once   the same with a fresh helper process per command (OnceLauncher)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from contextd_mcp.sandbox import probe, run_sandboxed
from contextd_mcp.sandbox._launcher import OnceLauncher
from contextd_mcp.sandbox.runner import run as run_with_launcher

BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]

Row = Callable[[], Awaitable[None]]


def _subprocess_row(argv: list[str]) -> Row:
    async def row() -> None:
        subprocess.run(argv, check=True)

    return row


def rows(project: Path, *, once: bool = True, linger: float = 0.0, state_dir: Path | None = None) -> dict[str, Row]:
    """`once`: include the cold-helper row. `linger`: the sandbox row's placeholder linger (the
    daemon's default is CONTEXTD_SANDBOX_PLACEHOLDER_LINGER_S=5), journaled in `state_dir`."""
    launcher = OnceLauncher()

    async def sandbox() -> None:
        result = await run_sandboxed("true", project, state_dir=state_dir, placeholder_linger_seconds=linger)
        assert result.exit_code == 0, result

    async def sandbox_once() -> None:
        result = await run_with_launcher("true", project, launcher=launcher)
        assert result.exit_code == 0, result

    table: dict[str, Row] = {"plain": _subprocess_row(["bash", "-c", "true"])}
    if shutil.which("bwrap"):
        table["bwrap"] = _subprocess_row([*BWRAP, "true"])
        table["bwrap+bash"] = _subprocess_row([*BWRAP, "bash", "-c", "true"])
    table["sandbox"] = sandbox
    if once:
        table["sandbox-once"] = sandbox_once
    return table


async def measure(table: dict[str, Row], runs: int, gap: float) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in table}
    for row in table.values():  # warm-up: start the helper, fill caches
        await row()
    for _ in range(runs):
        for name, row in table.items():
            if gap:
                await anyio.sleep(gap)
            started = time.perf_counter()
            await row()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'row':<14}{'median ms':>11}{'p95 ms':>9}")
    for name, samples in times.items():
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:<14}{statistics.median(samples):>11.2f}{p95:>9.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    args = parser.parse_args()
    probe()
    with tempfile.TemporaryDirectory(prefix="contextd-bench-") as tmp:
        table = rows(Path(tmp))
        report(f"back-to-back, {args.runs} runs", await measure(table, args.runs, 0.0))
        gap = args.gap_ms / 1000
        report(f"{args.gap_ms:g} ms apart, {args.runs} runs", await measure(table, args.runs, gap))


if __name__ == "__main__":
    anyio.run(main)
