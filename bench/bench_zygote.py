"""What a daemon or a CLI command costs the test suite, spawned for real against forked from the
worker's zygote (tests/zygote.py; issue 18, BENCHMARKS.md "Session 10: the fast suite").

    .venv/bin/python -m bench.bench_zygote [--rounds 5]

Per round, interleaved: ``serve`` to its announce (CPU of the process from /proc at that moment,
then stopped), and ``status --json`` and ``token create`` to their exit (the children's rusage).
Run from the checkout's root (the zygote is ``python -m tests.zygote_server``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests import zygote
from tests.e2e.daemons import start_daemon
from tests.helpers import run_cli

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def daemon_start(root: Path, forked: bool) -> tuple[float, float]:
    """(CPU to announce, wall to announce) of one ``serve``."""
    cwd = root / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    daemon = start_daemon(root / "data", cwd, zygote=forked)
    wall = time.monotonic() - started
    cpu = _cpu(daemon.process.pid)
    daemon.stop()
    return cpu, wall


def command(root: Path, forked: bool, *args: str) -> tuple[float, float]:
    """(CPU, wall) of one CLI command to its exit; a forked child's CPU reaches this process
    through the zygote only at its end, so it is read from /proc by the zygote's rusage instead."""
    before = _children_cpu() if not forked else _zygote_children_cpu()
    started = time.monotonic()
    done = run_cli(root / "data", *args, zygote=forked)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    after = _children_cpu() if not forked else _zygote_children_cpu()
    return after - before, wall


def _zygote_children_cpu() -> float:
    """The zygote's reaped children's CPU (cutime + cstime in /proc/PID/stat)."""
    fields = Path(f"/proc/{zygote.shared().pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONTEXTD_EMBEDDING_THREADS", "1")  # as the suite runs them (tests/conftest.py)
    zygote.in_use = True  # outside the suite the helpers spawn for real
    zygote.shared()  # its own start, once per worker, is not a row
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for forked in (False, True) if i % 2 == 0 else (True, False):
                how = "forked" if forked else "spawned"
                root = Path(tmp) / f"{i}-{how}"
                rows.setdefault(f"serve to announce, {how}", []).append(daemon_start(root, forked))
                rows.setdefault(f"status --json, {how}", []).append(command(root, forked, "status", "--json"))
                rows.setdefault(f"token create, {how}", []).append(
                    command(root, forked, "token", "create", "--tenant", "acme"))
    zygote.close_shared()
    print(f"load {os.getloadavg()[0]:.1f}; median of {args.rounds}: CPU s / wall s")
    for name, values in sorted(rows.items()):
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"  {name:32s} {cpu:6.3f} / {wall:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
