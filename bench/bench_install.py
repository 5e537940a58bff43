"""What an agent pays to have contextd installed: the tools/list it reads every session, and the
wait from launching `contextd-mcp stdio` to the first tools/list answer.

    python -m bench.bench_install [--warm N] [--cold N]

- tools/list with and without output schemas (CONTEXTD_TOOLS_OUTPUT_SCHEMA), in characters,
  characters / 4 (the usual rough LLM estimate) and WordPiece tokens (the counter every cap uses);
  and the share of it the annotations take.
- process start → tools/list answered, through the real MCP SDK client over stdio, with the
  command as installed (`contextd-mcp stdio`): warm (a daemon already runs: the bridge alone),
  cold (no daemon: the bridge starts one, which opens the store and loads the model), and first
  (a new user: no model cache yet, so the int8 build runs too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter

COMMAND = str(Path(sys.executable).with_name("contextd-mcp"))


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    return {**env, "CONTEXTD_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **extra}


def _stop(data_dir: Path) -> None:
    subprocess.run([COMMAND, "stop", "--timeout", "30"], env=_env(data_dir), capture_output=True, timeout=60)


async def _first_list(data_dir: Path, cwd: Path, **extra: str) -> tuple[float, list[Any]]:
    params = StdioServerParameters(command=COMMAND, args=["stdio"], env=_env(data_dir, **extra), cwd=str(cwd))
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=120) as client:
        tools = (await client.list_tools()).tools
        return (time.perf_counter() - started) * 1000, tools


def _size(tools: list[Any]) -> dict[str, int]:
    text = json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
    hints = json.dumps([t.annotations.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
    return {
        "tools": len(tools),
        "chars": len(text),
        "chars_div_4": len(text) // 4,
        "wordpiece_tokens": WordPieceTokenCounter().count(text),
        "annotation_chars": len(hints),
    }


def _ms(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1),
            "max_ms": round(max(samples), 1)}


async def measure(warm: int, cold: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-install-"))
    cwd = root / "project"
    cwd.mkdir()
    data_dir = root / "data"
    try:
        out: dict[str, Any] = {}
        for label, extra in (("without_output_schemas", {}), ("with_output_schemas", {"CONTEXTD_TOOLS_OUTPUT_SCHEMA": "1"})):
            _, tools = await _first_list(data_dir, cwd, **extra)
            out[f"tools_list_{label}"] = _size(tools)
            _stop(data_dir)  # the daemon reads the setting at start

        first = []
        for i in range(max(1, cold // 2)):  # a new user each time: no model cache
            home = root / f"home{i}"
            home.mkdir()
            ms, _ = await _first_list(root / f"first{i}", cwd, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
            first.append(ms)
            _stop(root / f"first{i}")
        out["start_to_tools_list_first_run_new_user"] = _ms(first)

        cold_ms = []
        for _ in range(cold):
            _stop(data_dir)
            ms, _ = await _first_list(data_dir, cwd)
            cold_ms.append(ms)
        out["start_to_tools_list_cold_daemon"] = _ms(cold_ms)

        warm_ms = [(await _first_list(data_dir, cwd))[0] for _ in range(warm)]  # the last cold start's daemon serves
        out["start_to_tools_list_warm_daemon"] = _ms(warm_ms)
        _stop(data_dir)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=10)
    parser.add_argument("--cold", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(anyio.run(measure, args.warm, args.cold), indent=2))


if __name__ == "__main__":
    main()
