"""Real clients against contextd: the Claude Code CLI and the MCP TypeScript SDK (tests/clients/).

    python -m bench.bench_real_clients [--cold 3] [--warm 5] [--sessions 5]

Needs `bash scripts/setup-clients.sh` (node + the pinned npm packages). Measures, offline against
the scripted Messages endpoint (tests/clients/messages_stub.py):
- time from `claude mcp list` starting to printing "Connected", cold (no daemon: the bridge starts
  it) and warm; and Claude Code's own "Successfully connected … in N ms" from a session's debug log;
- hook wall times inside real `claude -p` sessions: `contextd-mcp` on PATH is a wrapper that logs
  each `hook` run's wall time (the wrapper's own cost, a bash fork and two `date`, is ~3 ms);
- the client × transport table: what connects, and what a client shows when it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.clients.claude_code import CONTEXTD, ClaudeWorld, Run
from tests.clients.messages_stub import Script, ToolUse, Turn, serving
from tests.clients.node import CLAUDE, CLIENTS
from tests.helpers import free_port

WRAPPER = """#!/bin/bash
# Times `contextd-mcp hook ...` runs as Claude Code starts them; everything else passes through.
[ "$1" = hook ] || exec {real} "$@"
start=$(date +%s%N)
{real} "$@"
rc=$?
echo "$2 $(( ($(date +%s%N) - start) / 1000000 ))" >> {log}
exit $rc
"""


def timed_world(root: Path) -> tuple[ClaudeWorld, Path]:
    world = ClaudeWorld(CLAUDE, root)
    world.setup()
    log = root / "hook-times.txt"
    wrapper = world.bin / "contextd-mcp"
    wrapper.unlink()
    wrapper.write_text(WRAPPER.format(real=CONTEXTD, log=log))
    wrapper.chmod(0o755)
    world.run("mcp", "add", "--scope", "user", "contextd", "--", "contextd-mcp", "stdio")
    world.install_hooks_for_user()
    return world, log


def connected_ms(run: Run) -> float | None:
    debug = Path(run.args[run.args.index("--debug-file") + 1])
    found = re.search(r'MCP server "contextd": Successfully connected \(transport: stdio\) in (\d+)ms', debug.read_text())
    return float(found.group(1)) if found else None


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    return f"median {statistics.median(values):.0f} ms (min {values[0]:.0f}, max {values[-1]:.0f}, n={len(values)})"


def mcp_list(world: ClaudeWorld, cold: int, warm: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    for kind, count in (("cold", cold), ("warm", warm)):
        for _ in range(count):
            if kind == "cold":
                world.stop_daemon()
            run = world.run("mcp", "list")
            assert "✔ Connected" in run.stdout, run.stdout
            times[kind].append(run.seconds * 1000)
    return times


def hook_times(log: Path, kind: str, into: dict[str, list[float]]) -> None:
    """Moves the wrapper's log lines into ``into`` as "<event> (<kind>)"."""
    for line in log.read_text().splitlines() if log.exists() else []:
        event, ms = line.split()
        into.setdefault(f"{event} ({kind})", []).append(float(ms))
    log.unlink(missing_ok=True)


def sessions(world: ClaudeWorld, log: Path, count: int) -> dict[str, Any]:
    connect: dict[str, list[float]] = {"cold": [], "warm": []}
    hooks: dict[str, list[float]] = {}
    first_id = ""
    for i in range(count):
        kind = "cold daemon" if i == 0 else "warm"
        if i == 0:
            world.stop_daemon()
        log.unlink(missing_ok=True)
        script = Script([
            Turn(tools=(ToolUse("Bash", {"command": "cat missing.txt", "description": "read"}),)),
            Turn(tools=(ToolUse("Bash", {"command": "echo hi > missing.txt && cat missing.txt", "description": "fix"}),)),
            Turn(tools=(ToolUse("mcp__contextd__memory_search", {"query": "missing.txt"}),)),
            Turn(text="done"),
        ])
        with serving(script) as world.base_url:
            run = world.session(f"session {i}")
        first_id = first_id or str(run.json()["session_id"])
        ms = connected_ms(run)
        if ms is not None:
            connect["cold" if i == 0 else "warm"].append(ms)
        hook_times(log, kind, hooks)
    with serving(Script([])) as world.base_url:  # PreCompact, inside a resumed session
        world.session("/compact", "--resume", first_id)
    hook_times(log, "resumed, /compact", hooks)
    return {"connect": connect, "hooks": hooks}


async def output_schemas_listed(world: ClaudeWorld) -> int:
    """How many tools the running daemon lists with an output schema (checks the switch took)."""
    params = StdioServerParameters(command=str(CONTEXTD), args=["stdio"], env=world.env(), cwd=str(world.project))
    async with Client(params, read_timeout_seconds=60) as client:
        return sum(1 for tool in (await client.list_tools()).tools if tool.output_schema)


def model_side_tool_bytes(world: ClaudeWorld, names: list[str]) -> dict[str, tuple[int, int, int]]:
    """What contextd's tools cost in the requests Claude Code sends the model, with the server's
    output schemas off and on: the ``tools`` entries once ToolSearch has loaded every contextd tool
    (Claude Code defers MCP tools: before that, the model sees only their names)."""
    sizes = {}
    for flag in ("false", "true"):
        world.stop_daemon()
        world.extra_env = {"CONTEXTD_TOOLS_OUTPUT_SCHEMA": flag}
        query = "select:" + ",".join(f"mcp__contextd__{name}" for name in names)
        script = Script([Turn(tools=(ToolUse("ToolSearch", {"query": query, "max_results": len(names)}),)), Turn(text="ok")])
        with serving(script) as world.base_url:
            world.session("load the contextd tools")
        tools = [t for t in script.agent_requests()[-1]["tools"] if t["name"].startswith("mcp__contextd__")]
        listed = anyio.run(output_schemas_listed, world)
        sizes[flag] = (len(tools), len(json.dumps(tools)), listed)
    world.extra_env = {}
    return sizes


def claude_http(world: ClaudeWorld, root: Path) -> list[tuple[str, str]]:
    """Claude Code over Streamable HTTP and SSE, with a token, a wrong one and none."""
    data_dir = world.data_dir
    env = world.env()
    token = subprocess.run([str(CONTEXTD), "token", "create", "--tenant", "bench"], env=env, capture_output=True,
                           text=True, timeout=60).stdout.strip()
    world.stop_daemon()
    port = free_port()
    out = open(root / "serve.out", "wb")
    daemon = subprocess.Popen([str(CONTEXTD), "serve", "--http", f"127.0.0.1:{port}"], env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    rows = []
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "daemon.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        cases = [
            ("http", f"http://127.0.0.1:{port}/mcp", token),
            ("http", f"http://127.0.0.1:{port}/mcp", "wrong-token"),
            ("http", f"http://127.0.0.1:{port}/mcp", None),
            ("sse", f"http://127.0.0.1:{port}/sse", token),
        ]
        for transport, url, bearer in cases:
            world.run("mcp", "remove", "--scope", "user", "contextd", check=False)
            header = ["--header", f"Authorization: Bearer {bearer}"] if bearer else []
            world.run("mcp", "add", "--scope", "user", "--transport", transport, "contextd", url, *header)
            shown = world.run("mcp", "list", check=False).stdout.strip().splitlines()[-1]
            label = {token: "token", "wrong-token": "wrong token", None: "no token"}[bearer]
            rows.append((f"Claude Code, {transport}, {label}", shown))
    finally:
        subprocess.run([str(CONTEXTD), "stop"], env=env, capture_output=True, timeout=60)
        daemon.wait(timeout=30)
        out.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    version = subprocess.run([str(CLAUDE), "--version"], capture_output=True, text=True).stdout.strip()
    lock = json.loads((CLIENTS / "package-lock.json").read_text())["packages"]
    print(f"claude {version}; @modelcontextprotocol/sdk {lock['node_modules/@modelcontextprotocol/sdk']['version']}")
    with tempfile.TemporaryDirectory() as tmp:
        world, log = timed_world(Path(tmp))
        try:
            listed = mcp_list(world, args.cold, args.warm) if args.cold + args.warm else {"cold": [], "warm": []}
            print(f"claude mcp list → Connected, cold: {summary(listed['cold'])}")
            print(f"claude mcp list → Connected, warm: {summary(listed['warm'])}")
            ran = sessions(world, log, args.sessions)
            for kind, values in ran["connect"].items():
                print(f"claude -p: server connected (Claude Code's debug log), {kind}: {summary(values)}")
            for event, values in ran["hooks"].items():
                print(f"hook {event}: {summary(values)}")
            names = [t["name"] for t in json.loads((CLIENTS.parents[1] / "schema.json").read_text())["tools"]]
            for flag, (count, size, listed) in model_side_tool_bytes(world, names).items():
                print(f"contextd tools in Claude Code's request after ToolSearch, CONTEXTD_TOOLS_OUTPUT_SCHEMA={flag} "
                      f"({listed} output schemas in tools/list): {count} tools, {size} bytes")
            for client, shown in claude_http(world, Path(tmp)):
                print(f"{client}: {shown}")
        finally:
            world.stop_daemon()


if __name__ == "__main__":
    main()
