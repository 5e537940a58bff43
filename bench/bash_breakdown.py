"""Where the time of one `bash("true")` through the MCP tool goes, part by part.

    python -m bench.bash_breakdown [--runs 200] [--project git|empty] [--baseline-src DIR]

Two halves, in one process:

1. Through the real MCP SDK client over stdio (client -> `contextd-mcp stdio` bridge -> socket
   -> daemon), rows interleaved: `bench_noop` (the whole transport, the SDK's dispatch and the
   runner around a tool that does nothing, in a worker thread),
   `bash true` (all of it), and beside them the helper alone (`run_sandboxed("true")` in this
   process) and bare bubblewrap. `bash - bench_noop - helper` is what the tool's own layers add.
   Then the CPU each process spends per call (client, bridge, daemon, zygote; from /proc).
2. In this process, the daemon's own layers with the container the daemon builds (real store,
   real policies, real scrubber), rows interleaved: `ToolRunner.call("bash")` (everything the
   daemon does for a call once the SDK hands it over), `ShellService.run` (policy check, root
   check, limits, result model), `run_sandboxed` (the sandbox); then each step of the runner's
   shaping timed alone, 2,000 times (model_dump, scrub, cap, JSON, audit record, ...).

Times in ms, p50 / p95. The 1-minute load before and after is reported: on 2 shared cores a
load above 1 is mostly other work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from bench.driver import CLI, contextd_env, stdio_client, stop_contextd, summary

Row = Callable[[], Awaitable[None]]


async def _interleave(table: dict[str, Row], runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {name: [] for name in table}
    for row in table.values():
        await row()
    for _ in range(runs):
        for name, row in table.items():
            started = time.perf_counter()
            await row()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: summary(values) for name, values in samples.items()}


async def through_mcp(work: Path, project: Path, runs: int, baseline_src: Path | None) -> dict[str, Any]:
    from bench.bench_sandbox import rows
    from contextd_mcp.settings import SandboxSettings

    (work / "helper-state").mkdir()
    table = rows(project, once=False, linger=SandboxSettings().placeholder_linger_s, state_dir=work / "helper-state")
    table.pop("plain", None)
    daemons = {"": contextd_env(work / "data")}
    if baseline_src is not None:
        daemons[" (baseline)"] = contextd_env(work / "data-baseline", PYTHONPATH=str(baseline_src))
    clients: dict[str, Any] = {}
    bridges: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        for suffix, env in daemons.items():
            spawned = set(_children(os.getpid()))
            client = clients[suffix] = await stack.enter_async_context(stdio_client([*CLI, "stdio"], env, project))
            bridges[suffix] = max(set(_children(os.getpid())) - spawned)
            table[f"mcp bench_noop{suffix}"] = _noop(client)
            table[f"mcp bash true{suffix}"] = _bash(client)
        load = os.getloadavg()[0]
        out: dict[str, Any] = await _interleave(table, runs)
        out["cpu_ms_per_call"] = {
            f"{tool}{suffix}": await _cpu_per_call(client, tool, bridges[suffix], work / f"data{suffix and '-baseline'}", runs)
            for suffix, client in clients.items()
            for tool in ("bench_noop", "bash")
        }
    out["loadavg_1m_before_after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return out


def _cpu_ms(pid: int) -> float:
    """User + system CPU of a process (all its threads; not its reaped children), in ms."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


async def _cpu_per_call(client: Any, tool: str, bridge: int, data: Path, runs: int) -> dict[str, float]:
    """CPU each process spends per call, over `runs` calls: this (the client), the bridge (its
    child), the daemon, the zygote (the daemon's child). Clock ticks: meaningful over 100+ calls."""
    from bench.driver import daemon_pid

    daemon = daemon_pid(data) or 0
    procs = {"client": os.getpid(), "bridge": bridge, "daemon": daemon}
    zygotes = _children(daemon)
    if zygotes:
        procs["zygote"] = zygotes[0]
    before = {name: _cpu_ms(pid) for name, pid in procs.items()}
    arguments = {"command": "true"} if tool == "bash" else {}
    for _ in range(runs):
        await client.call_tool(tool, arguments)
    return {name: round((_cpu_ms(pid) - before[name]) / runs, 3) for name, pid in procs.items()}


def _noop(client: Any) -> Row:
    async def row() -> None:
        result = await client.call_tool("bench_noop", {})
        assert not result.is_error, result.content

    return row


def _bash(client: Any) -> Row:
    async def row() -> None:
        result = await client.call_tool("bash", {"command": "true"})
        assert not result.is_error, result.content

    return row


async def in_daemon(work: Path, project: Path, runs: int) -> dict[str, Any]:
    """The daemon's layers, with the daemon's own container, in this process."""
    from contextd_mcp.container import build
    from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
    from contextd_mcp.models.shell import RunCommand
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.sandbox import run_sandboxed
    from contextd_mcp.scope_resolver import resolve_scope

    container = build(DataPaths(work / "data-inproc"))
    try:
        shell, runner = container.shell, container.runner
        assert shell is not None
        caller = Caller(
            scope=resolve_scope(project, {}),
            transport="socket",
            connection_id=uuid.uuid4().hex[:12],
            project_dir=str(project),
            toolsets="all",
        )
        CURRENT_CALLER.set(caller)
        request = RunCommand(command="true")

        async def tool_call() -> None:
            result = await runner.call("bash", {"command": "true"})
            assert not result.is_error, result.content

        async def service() -> None:
            await shell.run(caller.scope, caller.project_dir, request)

        async def sandbox() -> None:
            await run_sandboxed("true", project, **shell._sandbox_paths())

        load = os.getloadavg()[0]
        out: dict[str, Any] = await _interleave(
            {"ToolRunner.call(bash)": tool_call, "ShellService.run": service, "run_sandboxed": sandbox}, runs
        )
        out["loadavg_1m_before_after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        cpu = time.process_time()
        for _ in range(runs):  # the daemon side of the sandbox: what this process spends on it
            await sandbox()
        out["run_sandboxed_cpu_ms_per_call"] = round((time.process_time() - cpu) * 1000 / runs, 3)
        out["steps_us"] = await _steps(container, caller, request)
    finally:
        container.close()
    return out


async def _steps(container: Any, caller: Any, request: Any) -> dict[str, float]:
    """Each step the runner and the service take around the sandbox, alone: median µs of 2,000."""
    from contextd_mcp.mcp.response import cap_tree, scrub_tree
    from contextd_mcp.mcp.server import _answer_text
    from contextd_mcp.models.shell import RunCommand
    from contextd_mcp.services.shell import budget_limits

    from contextd_mcp.sandbox._protocol import Request as HelperRequest

    shell, runner = container.shell, container.runner
    result = await shell.run(caller.scope, caller.project_dir, request)
    project, paths = Path(caller.project_dir), shell._sandbox_paths()
    request_bytes = HelperRequest(
        command="true", project=str(project), workdir=str(project), env={"PATH": "/usr/bin", "HOME": "/tmp"},
        protected=[[str(project / ".git" / "config"), "ro"]] * 20, masked=[str(p) for p in paths["hidden"]],
    )
    dumped = result.model_dump(mode="json")
    text = _answer_text(dumped)
    tool = runner.tools["bash"]
    steps: dict[str, Callable[[], object]] = {
        "json.dumps(arguments) for the audit": lambda: json.dumps({"command": "true"}, default=str),
        "RunCommand.model_validate": lambda: RunCommand.model_validate({"command": "true"}),
        "guards (agent access)": lambda: [g(caller, tool, request) for g in runner.guards],
        "policy check": lambda: shell._policies(caller.scope, request, Path(caller.project_dir)),
        "project root check": lambda: shell._roots.check(Path(caller.project_dir)),
        "budget_limits (AppliedLimits' cgroup part)": lambda: budget_limits(shell._settings.budget),
        "BashResult.model_dump": lambda: result.model_dump(mode="json"),
        "scrub_tree": lambda: scrub_tree(dumped, container.scrubber),
        "cap_tree": lambda: cap_tree(dumped, runner._counter, runner._max_tokens, _answer_text),
        "_answer_text (JSON)": lambda: _answer_text(dumped),
        "response hooks": lambda: [h(caller, tool, dumped, lambda: 0) for h in runner.response_hooks],
        "audit record": lambda: container.audit.record({"tool": "bash", "outcome": "ok", "output_bytes": len(text)}),
        "sandbox: protected paths planned, placeholders held + released": lambda: _protect_round(project, paths["state_dir"]),
        "sandbox: helper request encoded": request_bytes.encode,
    }
    out = {}
    for name, step in steps.items():
        times = []
        for _ in range(2000):
            started = time.perf_counter_ns()
            step()
            times.append(time.perf_counter_ns() - started)
        times.sort()
        out[name] = round(times[len(times) // 2] / 1000, 1)
    return out


def _protect_round(project: Path, state_dir: Path | None) -> None:
    """What a call does with the protected paths once placeholders linger (the daemon's case)."""
    from contextd_mcp.sandbox import _protect

    plan = _protect.prepare_nowait(project, (), state_dir) or _protect.prepare(project, (), state_dir)
    if not _protect.release_nowait(plan, state_dir, 5.0):
        _protect.release(plan, state_dir, 5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--project", choices=("empty", "git"), default="git")
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--skip", choices=("mcp", "daemon"), default=None, help="leave one half out")
    args = parser.parse_args()
    report: dict[str, Any] = {"project": args.project, "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="contextd-bash-breakdown-") as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        if args.project == "git":
            subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=30)
        try:
            if args.skip != "mcp":
                report["through_mcp_ms"] = anyio.run(through_mcp, work, project, args.runs, args.baseline_src)
        finally:
            for name in ("data", "data-baseline"):
                stop_contextd(work / name)
        if args.skip != "daemon":
            report["in_daemon_ms"] = anyio.run(in_daemon, work, project, args.runs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
