"""Robustness figures for issue 14 parts 1-3, through the real daemon, loopback only.

    .venv/bin/python bench/bench_robust.py fuzz [--socket 5000] [--http 2000] [--seed 14]
    .venv/bin/python bench/bench_robust.py abuse [--idle 200] [--slowloris 200] [--seconds 30]

fuzz: hostile frames (tests/e2e/fuzz.py: random and mutated JSON-RPC, truncated lines,
invalid UTF-8, huge ids, nested garbage, oversize lines, disconnects mid-write) on the
socket and on HTTP at once; after each batch of 500, the daemon must be the same process
and answer a normal tools/call. A daemon found dead is restarted and counted.

abuse: a token holder opens a fresh Streamable HTTP session and makes a tools/call in a
loop, first with no other client (baseline), then while N idle and M slowloris connections
(each reopened as soon as the daemon closes it) are held open; success rate and latency of
its rounds. Run it on another tree with PYTHONPATH=<tree>/src for a "before" figure.
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

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.e2e.abuse import run_abuse
from tests.e2e.daemons import Daemon, create_token, http_client, socket_client, start_daemon
from tests.e2e.fuzz import INIT_PARAMS, fuzz_http, fuzz_socket
from tests.helpers import free_port

CAP = 65536
BATCH = 500


def _start(root: Path, token: bool = True) -> tuple[Daemon, str]:
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir(exist_ok=True)
    tok = create_token(data_dir, "--tenant", "bench", "--project", "robust") if token else ""
    return start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}", CONTEXTD_REQUEST_MAX_BYTES=str(CAP)), tok


async def _answers(daemon: Daemon, token: str) -> bool:
    try:
        with anyio.fail_after(60):
            async with socket_client(daemon.socket, daemon.data_dir.parent / "cwd") as client:
                stored = await client.call_tool("memory_store", {"title": "Probe", "content": "Still serving."})
                if stored.is_error:
                    return False
            async with http_client(daemon.base, token) as client:  # type: ignore[arg-type]
                return not (await client.call_tool("memory_search", {"query": "probe"})).is_error
    except Exception:  # noqa: BLE001 - any failure to answer is the figure
        return False


def _session(base: str, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS}
    return httpx.post(base + "/mcp", content=json.dumps(init), headers=headers, timeout=30).headers["mcp-session-id"]


async def fuzz(args: argparse.Namespace, root: Path) -> dict:
    daemon, token = _start(root)
    restarts, sent = 0, {"socket": 0, "http": 0, "connections": 0}
    unanswered = 0
    started = time.perf_counter()
    try:
        seed = args.seed
        while sent["socket"] < args.socket or sent["http"] < args.http:
            session = _session(daemon.base, token)  # type: ignore[arg-type]
            print(f"  batch from seed {seed}", flush=True)
            s_batch = min(BATCH, max(0, args.socket - sent["socket"]))
            h_batch = min(BATCH // 2, max(0, args.http - sent["http"]))
            reports: dict = {}

            async def on_socket(n: int = s_batch, s: int = seed) -> None:
                reports["socket"] = await fuzz_socket(daemon.socket, root / "cwd", n, s, CAP) if n else None

            async def on_http(n: int = h_batch, s: int = seed, sid: str = session) -> None:
                reports["http"] = await fuzz_http(daemon.base, token, n, s + 1, CAP, sid) if n else None  # type: ignore[arg-type]

            async with anyio.create_task_group() as tg:
                tg.start_soon(on_socket)
                tg.start_soon(on_http)
            for name in ("socket", "http"):
                if reports[name] is not None:
                    sent[name] += reports[name].frames
                    sent["connections"] += reports[name].connections
            seed += 2
            if not await _answers(daemon, token):
                try:  # a daemon that is dying takes a moment to exit
                    daemon.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    unanswered += 1
            if daemon.process.poll() is not None:
                restarts += 1
                daemon, _ = _start(root, token=False)  # the same tokens file: the token still works
            print(f"  sent socket {sent['socket']}, http {sent['http']}; restarts {restarts}", flush=True)
    finally:
        if daemon.process.poll() is None:
            daemon.stop()
    tracebacks = daemon.output().count("Traceback")  # of the last daemon
    return {"socket_frames": sent["socket"], "http_requests": sent["http"], "connections": sent["connections"],
            "daemon_restarts": restarts, "probes_unanswered": unanswered, "tracebacks_in_log": tracebacks,
            "seconds": round(time.perf_counter() - started, 1)}


async def abuse(args: argparse.Namespace, root: Path) -> dict:
    daemon, token = _start(root)
    try:
        baseline = await run_abuse(daemon.base, token, 0, 0, args.baseline_seconds, warmup=0.5)  # type: ignore[arg-type]
        print("baseline:", baseline.summary(), flush=True)
        attacked = await run_abuse(daemon.base, token, args.idle, args.slowloris, args.seconds)  # type: ignore[arg-type]
        print("attacked:", attacked.summary(), flush=True)
        alive = daemon.process.poll() is None
    finally:
        daemon.stop()
    return {
        "baseline": {"rounds": baseline.rounds, "success_rate": baseline.success_rate, "p50_ms": baseline.p50_ms(),
                     "p95_ms": baseline.p95_ms()},
        "attacked": {"idle": args.idle, "slowloris": args.slowloris, "seconds": args.seconds, "rounds": attacked.rounds,
                     "success_rate": attacked.success_rate, "p50_ms": attacked.p50_ms(), "p95_ms": attacked.p95_ms(),
                     "attacker_connections_closed": attacked.reconnects,
                     "first_failures": sorted(set(attacked.failures))[:3]},
        "daemon_alive": alive,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fuzz")
    f.add_argument("--socket", type=int, default=5000)
    f.add_argument("--http", type=int, default=2000)
    f.add_argument("--seed", type=int, default=14)
    a = sub.add_parser("abuse")
    a.add_argument("--idle", type=int, default=200)
    a.add_argument("--slowloris", type=int, default=200)
    a.add_argument("--seconds", type=float, default=30)
    a.add_argument("--baseline-seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-robust-") as tmp:
        result = anyio.run(fuzz if args.what == "fuzz" else abuse, args, Path(tmp))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
