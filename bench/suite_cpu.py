"""The test suite's CPU, all of it: pytest, its workers, the zygotes, every daemon and command
they start, detached or not (issue 18; BENCHMARKS.md "Session 10: the fast suite").

    sudo .venv/bin/python -m bench.suite_cpu [--label L] [--out FILE] -- PYTEST_ARGS...

Runs ``python -m pytest PYTEST_ARGS`` in a cgroup-v1 ``cpuacct`` group of its own (each xdist
worker in a subgroup, so a test's CPU is its worker group's usage across it; a background
daemon of an earlier test, e.g. the session-shared one, counts into the test that is running).
Prints wall time, the group's CPU (user + sys), the 1-min load before and after, how the
starts went (tests/zygote.py's counts), and the CPU per test module, largest first. Needs root
(cgroup v1 mounted at /sys/fs/cgroup/cpuacct, as on this project's machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path("/sys/fs/cgroup/cpuacct")
GROUP_ENV = "SUITE_CPU_CGROUP"
OUT_ENV = "SUITE_CPU_TESTS"
USER_HZ = os.sysconf("SC_CLK_TCK")


def _usage(group: Path) -> int:
    return int((group / "cpuacct.usage").read_text())


def _stat(group: Path) -> dict[str, float]:
    fields = dict(line.split() for line in (group / "cpuacct.stat").read_text().splitlines())
    return {k: int(v) / USER_HZ for k, v in fields.items()}


def _remove(group: Path) -> None:
    """Removes the group and its subgroups; what still runs in them (a daemon a bridge detached,
    idle-exit 30 min) moves to the root group first."""
    for sub in sorted((p for p in group.iterdir() if p.is_dir()), reverse=True):
        _remove(sub)
    for pid in (group / "cgroup.procs").read_text().split():
        try:
            (ROOT / "cgroup.procs").write_text(pid)
        except OSError:
            continue
    group.rmdir()


# -- the plugin (``-p bench.suite_cpu``, in the pytest processes) --------------------------------

_tests: dict[str, float] = {}
_group: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _group
    parent = os.environ.get(GROUP_ENV)
    if not parent:
        return
    _group = Path(parent) / f"w-{os.getpid()}"
    _group.mkdir(exist_ok=True)
    (_group / "cgroup.procs").write_text(str(os.getpid()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    before = _usage(_group) if _group is not None else 0
    yield
    if _group is not None:
        _tests[item.nodeid] = _tests.get(item.nodeid, 0.0) + (_usage(_group) - before) / 1e9


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ.get(OUT_ENV)
    if out and _tests:
        with open(out, "a") as sink:
            sink.write(json.dumps(_tests) + "\n")


# -- the driver ----------------------------------------------------------------------------------


def _per_module(tests: dict[str, float]) -> Counter[str]:
    modules: Counter[str] = Counter()
    for nodeid, cpu in tests.items():
        modules[nodeid.split("::")[0]] += cpu
    return modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="run")
    parser.add_argument("--out", help="append the result as a JSON line here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    pytest_args = [a for a in args.pytest_args if a != "--"]
    group = ROOT / f"suite-cpu-{os.getpid()}"
    group.mkdir()
    tests_file = Path(f"/tmp/suite-cpu-{os.getpid()}.tests.jsonl")
    stats_file = Path(f"/tmp/suite-cpu-{os.getpid()}.zygote.jsonl")
    env = {**os.environ, GROUP_ENV: str(group), OUT_ENV: str(tests_file), "CONTEXTD_TEST_ZYGOTE_STATS": str(stats_file),
           "HF_HUB_OFFLINE": "1"}
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bench.suite_cpu", *pytest_args], env=env,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
            check=False,
        )
        wall = time.monotonic() - started
        load_after = os.getloadavg()[0]
        cpu, stat = _usage(group) / 1e9, _stat(group)
    finally:
        _remove(group)
    tests: dict[str, float] = {}
    for line in tests_file.read_text().splitlines() if tests_file.exists() else []:
        tests.update(json.loads(line))
    starts: Counter[str] = Counter()
    for line in stats_file.read_text().splitlines() if stats_file.exists() else []:
        starts.update({k: v for k, v in json.loads(line).items() if k != "pid"})
    tests_file.unlink(missing_ok=True)
    stats_file.unlink(missing_ok=True)
    modules = _per_module(tests)
    result = {
        "label": args.label, "exit": done.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "user_s": round(stat.get("user", 0), 1), "system_s": round(stat.get("system", 0), 1),
        "load_before": round(load_before, 2), "load_after": round(load_after, 2), "starts": dict(starts),
        "tests_cpu_s": round(sum(tests.values()), 1),
        "modules": {m: round(c, 2) for m, c in modules.most_common()},
        "tests": {t: round(c, 2) for t, c in Counter(tests).most_common(args.top)},
    }
    print(f"{args.label}: exit {done.returncode}, wall {wall:.1f} s, CPU {cpu:.1f} s (user {stat.get('user', 0):.1f}, "
          f"sys {stat.get('system', 0):.1f}), load {load_before:.1f} -> {load_after:.1f}; starts {dict(starts)}")
    for module, module_cpu in modules.most_common(args.top):
        print(f"  {module_cpu:7.1f} s  {module}")
    if args.out:
        with open(args.out, "a") as sink:
            sink.write(json.dumps(result) + "\n")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
