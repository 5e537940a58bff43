"""Where one `bash("true")` through MCP spends its time: a timestamp at each hand-off, in every process.

    python -m bench.bash_timeline [--runs 200] [--src DIR ...] [--gap-ms 20]

Each `--src` (default: this tree's src/) is copied to a temporary directory and marked: a line
that appends `<mark> <CLOCK_MONOTONIC ns>` to one file at each hand-off (bridge in/out, daemon
read, ToolRunner, ShellService, sandbox runner, launch, and inside the sandbox's init: request
received, confined, bash spawned, bash exited, status sent). The marks are added to the copy
only, by exact text (`MARKS` below; a tree where one is missing is refused), so the code timed
is the code shipped plus ~3 µs a mark. The real MCP SDK client calls `bash` over stdio through
the bridge; trees are timed in turn, `--rounds` times, and each span's median is reported.
Spans between processes include the wake-up of the receiving one, which is most of what load
changes. The load average is reported: on 2 shared cores a load above 1 is mostly other work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench.driver import CLI, contextd_env, stdio_client, stop_contextd

ROOT = Path(__file__).parents[1]
_T = "from contextd_mcp._trace import t; "
_TRACE_MODULE = '''import os, time
_FD = os.open(os.environ["CONTEXTD_BENCH_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
def t(name, ns=None):
    os.write(_FD, f"{name} {time.perf_counter_ns() if ns is None else ns}\\n".encode())
'''
Edit = tuple[str | re.Pattern[str], str | Callable[[re.Match[str]], str]]
# file -> (anchor, replacement): each anchor must occur in the tree being timed.
MARKS: dict[str, list[Edit]] = {
    "transports/relay.py": [
        ("    def _from_client(self, line: bytes) -> None:\n", "    def _from_client(self, line: bytes) -> None:\n        " + _T + "t('B_in')\n"),
        ("            sock.sendall(line)  # type: ignore[union-attr]\n", "            sock.sendall(line)  # type: ignore[union-attr]\n            " + _T + "t('B_sent')\n"),
        ("    def _from_daemon(self, line: bytes) -> None:\n", "    def _from_daemon(self, line: bytes) -> None:\n        " + _T + "t('B_back')\n"),
        ("        self._write(line)\n", "        self._write(line)\n        " + _T + "t('B_out')\n"),
    ],
    "transports/framing.py": [
        ('    """The message on ``line``, or the error reply to send back for it."""\n',
         '    """The message on ``line``, or the error reply to send back for it."""\n    ' + _T + 't("D_read")\n'),
        ("    async def send_raw(self, data: bytes) -> None:\n",
         "    async def send_raw(self, data: bytes) -> None:\n        " + _T + "t('D_send')\n"),
    ],
    "mcp/server.py": [
        ("        started = time.perf_counter()\n        # An unknown", "        " + _T + "t('D_call')\n        started = time.perf_counter()\n        # An unknown"),
        ("        if inspect.iscoroutinefunction(handler):", "        " + _T + "t('D_handler')\n        if inspect.iscoroutinefunction(handler):"),
        ('        data, redactions = scrub_tree(output.model_dump(mode="json"), self._scrubber)\n',
         "        " + _T + "t('D_handled')\n" + '        data, redactions = scrub_tree(output.model_dump(mode="json"), self._scrubber)\n'),
        ("                return result\n", "                " + _T + "t('D_ret')\n                return result\n"),
    ],
    "services/shell.py": [
        ("        refuse_dangerous_env(request.env)\n", "        " + _T + "t('D_shell')\n        refuse_dangerous_env(request.env)\n"),
        ("        return BashResult(\n", "        " + _T + "t('D_sandboxed')\n        return BashResult(\n"),
    ],
    "sandbox/runner.py": [
        ("    _check_command(command)\n", "    " + _T + "t('D_run')\n    _check_command(command)\n"),
        ("    launcher = launcher or default_launcher()\n", "    " + _T + "t('D_prepared')\n    launcher = launcher or default_launcher()\n"),
        ("            launcher.launch(payload, [theirs.fileno(), out_w, err_w])\n",
         "            " + _T + "t('D_launch')\n            launcher.launch(payload, [theirs.fileno(), out_w, err_w])\n"),
        # Where the status has been read, the command's deadline scope left (the same place in
        # trees that start the disk watcher with the call and in those that start it lazily).
        ("            watching.cancel()\n",
         "            " + _T + "t('D_status')\n"
         "            for m in messages:\n                for k, v in m.get('trace', {}).items():\n                    t(k, v)\n"
         "            watching.cancel()\n"),
        ('    if any(m.get("stale") for m in messages):', "    " + _T + "t('D_drained')\n" + '    if any(m.get("stale") for m in messages):'),
    ],
    # Init cannot reach the trace file (its own mount namespace): it sends its marks with its status.
    "sandbox/_worker.py": [
        (re.compile(r"    got = receive\(ws[^\n]*\n    if got is None:\n        os\._exit\(0\)[^\n]*\n"),
         lambda m: m.group(0) + "    globals()['TR'] = {'I_recv': __import__('time').perf_counter_ns()}\n"),
        (re.compile(r"        _confine\(req, seccomp, host[^\n]*\n"), lambda m: m.group(0) + "        TR['I_confined'] = __import__('time').perf_counter_ns()\n"),
        ("            started = None if req.command is None else _spawn(req.command, req.env, out_fd, err_fd)\n",
         "            started = None if req.command is None else _spawn(req.command, req.env, out_fd, err_fd)\n"
         "        TR['I_spawned'] = __import__('time').perf_counter_ns()\n"),
        ("        exit_code = _reap(command.pid, exit_code)\n    _empty_namespace()\n",
         "        exit_code = _reap(command.pid, exit_code)\n    TR['I_exited'] = __import__('time').perf_counter_ns()\n    _empty_namespace()\n"),
        ("    send(status, exit=exit_code, **memory)", "    TR['I_send'] = __import__('time').perf_counter_ns()\n    send(status, exit=exit_code, trace=TR, **memory)"),
    ],
}
ORDER = [
    "C_call", "B_in", "B_sent", "D_read", "D_call", "D_handler", "D_shell", "D_run", "D_prepared", "D_launch",
    "I_recv", "I_confined", "I_spawned", "I_exited", "I_send", "D_status", "D_drained", "D_sandboxed", "D_handled",
    "D_ret", "D_send", "B_back", "B_out", "C_done",
]  # fmt: skip
SPANS = {
    "C_call": "client: build and write the request (MCP SDK)",
    "B_in": "bridge: read from stdin, parse, forward",
    "B_sent": "socket to the daemon (wake-up) + framing read",
    "D_read": "daemon: parse + MCP SDK dispatch up to ToolRunner.call",
    "D_call": "ToolRunner: caller, toolsets, validation, guards",
    "D_handler": "tool handler to ShellService.run",
    "D_shell": "ShellService: env check, root check, policy check",
    "D_run": "runner: resolve dirs, daemon files' real paths, env, request + size check",
    "D_prepared": "runner: call slot, protected paths (placeholders held), pipes, encode",
    "D_launch": "hand-off to the warm worker (through the zygote: two wake-ups; lent: one)",
    "I_recv": "init: decode, /tmp, project, protected binds, rlimits, seccomp",
    "I_confined": "init: spawn bash (vfork + exec)",
    "I_spawned": "bash runs `true` and exits; init reaps it",
    "I_exited": "init: empty the namespace, read OOM events",
    "I_send": "status socket to the daemon (wake-up)",
    "D_status": "runner: drain the pipes, end the task group",
    "D_drained": "runner: result; placeholders released",
    "D_sandboxed": "ShellService: BashResult (limits, budget status)",
    "D_handled": "ToolRunner: dump, scrub, cap, JSON, hooks, audit",
    "D_ret": "MCP SDK: result to JSON, framing write",
    "D_send": "socket to the bridge (wake-up) + bridge read",
    "B_back": "bridge: parse, write to stdout",
    "B_out": "client: read, parse, validate the result (MCP SDK)",
}


BRIDGE = {"B_in", "B_sent", "B_back", "B_out"}
HANDED_SPANS = {
    "C_call": "client: build and write the request (MCP SDK) + daemon wake-up on the client's pipe (hand-off)",
    "D_send": "daemon writes the client's pipe + client wake-up, read, parse, validate (MCP SDK; hand-off)",
}


def marked_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src / "contextd_mcp", dest / "contextd_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    pkg = dest / "contextd_mcp"
    (pkg / "_trace.py").write_text(_TRACE_MODULE)
    for name, edits in MARKS.items():
        text = (pkg / name).read_text()
        for anchor, replacement in edits:
            if isinstance(anchor, re.Pattern):
                if not anchor.search(text):
                    raise SystemExit(f"{src}: {name} lacks {anchor.pattern!r}")
                text = anchor.sub(replacement, text, count=1)
            else:
                if anchor not in text or not isinstance(replacement, str):
                    raise SystemExit(f"{src}: {name} lacks {anchor!r}")
                text = text.replace(anchor, replacement, 1)
        (pkg / name).write_text(text)
    return dest


async def _time_tree(work: Path, marked: Path, project: Path, runs: int, gap_ms: float) -> list[dict[str, int]]:
    trace = work / "trace.log"
    env = contextd_env(work / "data", PYTHONPATH=str(marked), CONTEXTD_BENCH_TRACE=str(trace))
    os.environ["CONTEXTD_BENCH_TRACE"] = str(trace)  # the client's own marks, through the same module
    import sys

    sys.path.insert(0, str(marked))
    try:
        from contextd_mcp._trace import t  # type: ignore[import-not-found]  # only in the marked copy
    finally:
        sys.path.remove(str(marked))
    try:
        async with stdio_client([*CLI, "stdio"], env, project) as client:
            for _ in range(5):
                await client.call_tool("bash", {"command": "true"})
            trace.write_text("")
            for _ in range(runs):
                await anyio.sleep(gap_ms / 1000)
                t("C_call")
                result = await client.call_tool("bash", {"command": "true"})
                t("C_done")
                assert not result.is_error, result.content
    finally:
        stop_contextd(work / "data")
        sys.modules.pop("contextd_mcp._trace", None)
    calls: list[dict[str, int]] = []
    for line in trace.read_text().splitlines():
        name, ns = line.split()
        if name == "C_call":
            calls.append({})
        if calls and name not in calls[-1]:
            calls[-1][name] = int(ns)
    return [c for c in calls if all(m in c for m in ORDER if m not in BRIDGE)]


def spans(calls: list[dict[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # A bridge that handed its stdio to the daemon sees no line: its marks are absent.
    order = [m for m in ORDER if calls and all(m in c for c in calls)]
    for before, after in zip(order, order[1:], strict=False):
        values = [(c[after] - c[before]) / 1e6 for c in calls]
        label = SPANS[before] if ORDER[ORDER.index(before) + 1] == after else HANDED_SPANS.get(before, SPANS[before])
        out[f"{before}->{after}: {label}"] = round(statistics.median(values), 3)
    total = sorted((c["C_done"] - c["C_call"]) / 1e6 for c in calls)
    out["total p50"] = round(statistics.median(total), 3)
    out["total p95"] = round(total[int(0.95 * (len(total) - 1))], 3)
    out["calls"] = len(calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="each tree is timed this many times, in turn")
    parser.add_argument("--src", type=Path, action="append", help="a src/ directory to time (repeatable)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="idle before each call, untimed")
    args = parser.parse_args()
    sources = args.src or [ROOT / "src"]
    report: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="contextd-bash-timeline-") as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=30)
        marked = [marked_copy(src, work / f"src{i}") for i, src in enumerate(sources)]
        calls: dict[int, list[dict[str, int]]] = {i: [] for i in range(len(sources))}
        per_round = max(1, args.runs // args.rounds)
        for _ in range(args.rounds):
            for i, tree in enumerate(marked):
                run_dir = work / f"run-{i}-{time.monotonic_ns()}"
                run_dir.mkdir()
                calls[i] += anyio.run(_time_tree, run_dir, tree, project, per_round, args.gap_ms)
        for i, src in enumerate(sources):
            report[str(src)] = spans(calls[i])
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
