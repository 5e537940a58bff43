"""Session lifecycle figures: session_end latency, distillation time, hook wall time, injection size.

    python bench/bench_sessions.py [--sessions 50] [--hooks 20] [--cold 3]

Everything runs through the real commands in a fresh data directory:
- session_end latency: an MCP client over `contextd-mcp stdio` (bridge → daemon), timed
  around the call; the daemon's worker distils the previous jobs meanwhile, as in use;
- distillation time: each job's own ``duration_ms`` (claim to done, in the daemon) for
  summary sessions, and for transcript sessions (the Claude Code sample, via the hook);
- hook wall time: `contextd-mcp hook <event>` as Claude Code runs it (a new process fed
  the sample JSON), warm (daemon up) and cold (no daemon: the hook starts it);
- injection tokens: session_start's ``injection_tokens`` (WordPiece, the caps' counter)
  with 0, 10 and 100 long memories, with and without a task.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).parents[1]
SAMPLES = ROOT / "tests" / "data" / "hooks"
CLI = [sys.executable, "-m", "contextd_mcp"]
WORDS = "retry backoff upload multipart checksum boto3 bucket region timeout presigned lifecycle policy".split()


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    return {**env, "CONTEXTD_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **extra}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (f"{name:<44} n={len(values):<4} p50 {pct(values, 0.5):8.1f} {unit}   p95 {pct(values, 0.95):8.1f} {unit}"
            f"   max {max(values):8.1f} {unit}")


def client(data_dir: Path, cwd: Path) -> Client:
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "stdio"], env=env_for(data_dir), cwd=str(cwd))
    return Client(params, read_timeout_seconds=120)


def data(result: Any) -> Any:
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def call(c: Any, tool: str, **arguments: Any) -> Any:
    return data(await c.call_tool(tool, arguments))


async def wait_jobs(c: Any, job_ids: list[str]) -> list[dict[str, Any]]:
    done = []
    for job_id in job_ids:
        while True:
            status = await call(c, "distill_status", job_id=job_id)
            if status["state"] in ("done", "failed"):
                done.append(status)
                break
            await anyio.sleep(0.1)
    return done


def hook(data_dir: Path, event: str, payload: dict[str, Any], cwd: Path) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    started = time.perf_counter()
    result = subprocess.run([*CLI, "hook", event], input=json.dumps(payload).encode(), capture_output=True,
                            env=env_for(data_dir), cwd=str(cwd), timeout=120)
    return (time.perf_counter() - started) * 1000, result


def hook_payload(name: str, project: Path, transcript: Path, session_id: str) -> dict[str, Any]:
    payload = json.loads((SAMPLES / f"{name}.json").read_text())
    return {**payload, "cwd": str(project), "transcript_path": str(transcript), "session_id": session_id}


def server_side(data_dir: Path, tool: str, transport: str) -> list[float]:
    """The daemon's own time for a tool (its audit log), without process start and scheduling."""
    values = []
    for line in (data_dir / "audit.log").read_text().splitlines():
        event = json.loads(line)
        if event.get("tool") == tool and event.get("transport") == transport and event.get("outcome") == "ok":
            values.append(float(event["duration_ms"]))
    return values


def stop(data_dir: Path) -> None:
    subprocess.run([*CLI, "stop"], env=env_for(data_dir), capture_output=True, timeout=60)


async def bench_session_end(data_dir: Path, project: Path, sessions: int) -> list[str]:
    lines = []
    async with client(data_dir, project) as c:
        latencies, job_ids = [], []
        for n in range(sessions):
            started = await call(c, "session_start", task=f"task {n}: make the upload retries robust")
            began = time.perf_counter()
            ended = await call(c, "session_end", session_id=started["session_id"], outcome=("success", "failure", "partial")[n % 3],
                               summary=f"Session {n}: uploads over 5 GB failed with a timeout. Multipart uploads with "
                                       f"a retry per part fixed it. Next time check the part size first.",
                               learnings=[{"title": f"Lesson {n}: retry each multipart part",
                                           "content": f"Retry part {n} alone, not the whole upload; it halves the time."}])
            latencies.append((time.perf_counter() - began) * 1000)
            job_ids.append(ended["job_id"])
        jobs = await wait_jobs(c, job_ids)
    lines.append(summary("session_end round trip (stdio client)", latencies))
    lines.append(summary("session_end in the daemon (audit duration)", server_side(data_dir, "session_end", "socket")))
    failed = [j for j in jobs if j["state"] != "done"]
    lines.append(summary("distillation per session (summary+learning)", [j["duration_ms"] for j in jobs if j["duration_ms"]]))
    lines.append(f"{'':<44} jobs failed: {len(failed)}")
    return lines


async def bench_hooks(data_dir: Path, project: Path, transcript: Path, runs: int, cold: int) -> list[str]:
    lines = []
    cold_times = []
    for n in range(cold):
        stop(data_dir)
        ms, result = hook(data_dir, "session-start", hook_payload("session_start", project, transcript, f"cold-{n}"), project)
        assert result.returncode == 0 and b"hookSpecificOutput" in result.stdout, result.stderr
        cold_times.append(ms)
    lines.append(summary("hook session-start, cold (starts the daemon)", cold_times))
    warm: dict[str, list[float]] = {"session-start": [], "pre-compact": [], "session-end": []}
    for n in range(runs):
        for event, sample in (("session-start", "session_start"), ("pre-compact", "pre_compact"), ("session-end", "session_end")):
            ms, result = hook(data_dir, event, hook_payload(sample, project, transcript, f"warm-{n}"), project)
            assert result.returncode == 0 and not result.stderr, result.stderr
            warm[event].append(ms)
    for event, values in warm.items():
        lines.append(summary(f"hook {event}, warm", values))
    for tool in ("session_start", "checkpoint_save", "session_end"):
        lines.append(summary(f"  of which {tool} in the daemon", server_side(data_dir, tool, "hook")))
    noop = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        noop.append((time.perf_counter() - began) * 1000)
    lines.append(summary("(python -c pass, for reference)", noop))
    async with client(data_dir, project) as c:  # wait for the transcript sessions the hook queued
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            queue = data_dir / "queue"
            if not list((queue / "pending").iterdir()) and not list((queue / "running").iterdir()):
                break
            await anyio.sleep(0.2)
        durations = []
        for path in (data_dir / "queue" / "done").iterdir():
            job = json.loads(path.read_text())
            if job["result"].get("remediation_candidates"):  # transcript jobs found the error → fix pair
                durations.append(job["result"]["duration_ms"])
        await call(c, "checkpoint_list")
    lines.append(summary("distillation per session (transcript, hook)", durations))
    return lines


async def bench_injection(data_dir: Path, project: Path) -> list[str]:
    lines = []
    async with client(data_dir, project) as c:
        stored = 0
        for target in (0, 10, 100):
            while stored < target:
                body = " ".join(WORDS[(stored + i) % len(WORDS)] for i in range(1200))[:7990].rsplit(" ", 1)[0] + "."
                await call(c, "memory_store", title=f"Upload lesson {stored}: {WORDS[stored % len(WORDS)]} handling",
                           content=body)
                stored += 1
            with_task = await call(c, "session_start", task="multipart upload retries and checksums")
            without = await call(c, "session_start")
            lines.append(f"injection, {target:>3} long memories (8 kB each):  with task {with_task['injection_tokens']:>3} tokens "
                         f"({len(with_task['memories'])} memories)   without task {without['injection_tokens']:>3} tokens "
                         f"({len(without['memories'])} memories)")
    return lines


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="contextd-bench-sessions-"))
    project = base / "project"
    project.mkdir()
    transcript = base / "transcript.jsonl"
    shutil.copy(SAMPLES / "transcript.jsonl", transcript)
    lines = [f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"]
    try:
        lines += await bench_session_end(base / "a", project, args.sessions)
        stop(base / "a")
        lines += await bench_hooks(base / "b", project, transcript, args.hooks, args.cold)
        stop(base / "b")
        lines += await bench_injection(base / "c", project)
        stop(base / "c")
    finally:
        for name in ("a", "b", "c"):
            stop(base / name)
    lines.append(f"load average {os.getloadavg()[0]:.1f} at end")
    print("\n".join(lines))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--hooks", type=int, default=20)
    parser.add_argument("--cold", type=int, default=3)
    anyio.run(main, parser.parse_args())
