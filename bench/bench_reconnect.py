"""Time for an agent to recover from a daemon restart (issue 16, item 4), through the real
`contextd-mcp stdio` bridge and the real MCP SDK client.

    .venv/bin/python bench/bench_reconnect.py [--runs 10] [--mode stop|kill]

Each run: one call to warm up, then ``contextd-mcp stop`` (or SIGKILL of the daemon), then
the clock runs until a ``memory_search`` succeeds. First on the same client session (the
bridge must reconnect and restart the daemon on its own; a call sent in the instant before
the bridge saw the drop gets its in-flight error and is retried, twice at most); when that session's call fails (a
bridge that exits with its daemon), the figure is the time until a fresh client, i.e. a new
bridge, answers instead, and the run counts as "session lost". Run it on another tree with
PYTHONPATH=<tree>/src for a "before" figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.e2e.test_stdio import stdio
from tests.helpers import run_cli

QUERY = {"query": "restart recovery probe"}


def _interrupt(data_dir: Path, mode: str) -> None:
    if mode == "kill":
        os.kill(int(json.loads((data_dir / "daemon.json").read_text())["pid"]), signal.SIGKILL)
        return
    done = run_cli(data_dir, "stop", "--timeout", "30")
    assert done.returncode == 0, done.stderr


async def _searched(client: Any, retries: int = 0) -> bool:
    """A search succeeds on this session; a call that met the drop itself (the bridge's
    "went away" error: it was sent just before the bridge saw the daemon go) is retried."""
    for _ in range(retries + 1):
        try:
            return not (await client.call_tool("memory_search", QUERY)).is_error
        except Exception as exc:  # noqa: BLE001 - a failed call is what this counts
            if "went away" not in str(exc):
                return False
    return False


async def measure(root: Path, runs: int, mode: str) -> dict[str, Any]:
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir(parents=True)
    times: list[float] = []
    lost = 0
    with anyio.fail_after(runs * 180):
        client_cm = stdio(data_dir, cwd)
        client = await client_cm.__aenter__()
        try:
            assert await _searched(client)
            for _ in range(runs):
                started = time.perf_counter()
                _interrupt(data_dir, mode)
                if not await _searched(client, retries=2):  # the session is gone: a new bridge, as an IDE restart would
                    lost += 1
                    try:
                        await client_cm.__aexit__(None, None, None)
                    except Exception:  # noqa: BLE001 - its bridge has already exited
                        pass
                    client_cm = stdio(data_dir, cwd)
                    client = await client_cm.__aenter__()
                    assert await _searched(client)
                times.append(time.perf_counter() - started)
        finally:
            try:
                await client_cm.__aexit__(None, None, None)
            finally:
                run_cli(data_dir, "stop", "--timeout", "30")
    return {
        "mode": mode,
        "runs": runs,
        "session_lost": lost,
        "recover_p50_s": round(statistics.median(times), 3),
        "recover_max_s": round(max(times), 3),
        "recover_s": [round(t, 3) for t in times],
        "tree": os.environ.get("PYTHONPATH", "this checkout"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_reconnect")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--mode", choices=("stop", "kill"), default="stop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-reconnect-") as tmp:
        result = anyio.run(measure, Path(tmp), args.runs, args.mode)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
