"""The suite's fork server (tests/zygote.py, tests/zygote_server.py): a child forked from it
must look, to the test and to itself, like ``python -m contextd_mcp`` spawned for real.

Most tests run the same command both ways and compare what the process saw and how it ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests import zygote
from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import CLI, data, env_for, run_cli

BOTH = pytest.mark.parametrize("forked", [True, False], ids=["forked", "spawned"])


def _gone(pid: int) -> bool:
    """Exited and reaped, or a zombie of a parent that is not the zygote (init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _follow(data_dir: Path, forked: bool, **kwargs: object) -> subprocess.Popen[str]:
    """``audit tail -f``: a command that runs until a signal ends it (SIGINT: exit 0)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "audit.log").touch()
    return zygote.popen([*CLI, "audit", "tail", "-f", "--json"], env=env_for(data_dir), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, zygote=forked, **kwargs)  # type: ignore[arg-type]


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _started(process: subprocess.Popen[str], data_dir: Path) -> None:
    """Until the command prints what it follows: its interpreter and handlers are set up. (It
    follows from the end of the file it opens: a line written before that is not shown.)"""
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(data_dir / "audit.log", "a") as log:
            log.write(json.dumps({"ts": time.time(), "tool": "probe"}) + "\n")
        if select.select([process.stdout], [], [], 0.2)[0]:
            assert json.loads(process.stdout.readline())["tool"] == "probe"
            return
    raise AssertionError("the command printed nothing it follows")


@BOTH
def test_exit_codes_and_output_are_the_commands(tmp_path: Path, forked: bool) -> None:
    forks = zygote.starts["forked"]
    version = run_cli(tmp_path / "data", "--version", zygote=forked)
    assert (version.returncode, version.stdout.strip(), version.stderr) == (0, "0.1.0", "")
    wrong = run_cli(tmp_path / "data", "no-such-command", zygote=forked)
    assert wrong.returncode == 2 and "invalid choice: 'no-such-command'" in wrong.stderr and wrong.stdout == ""
    assert zygote.starts["forked"] == forks + (2 if forked else 0)


@BOTH
def test_env_cwd_and_stdio_reach_the_child(tmp_path: Path, forked: bool) -> None:
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    done = zygote.run([*CLI, "status", "--json"], env=env_for(tmp_path / "data", CONTEXTD_TENANT="zyg-acme"), cwd=cwd,
                      capture_output=True, text=True, timeout=60, zygote=forked)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["data_dir"] == str(tmp_path / "data")
    assert status["scope"]["directory"] == str(cwd) and status["scope"]["tenant"] == "zyg-acme"
    # stderr into stdout, as STDOUT asks
    merged = zygote.run([*CLI, "nope"], env=env_for(tmp_path / "data"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=60, zygote=forked)
    assert merged.returncode == 2 and "invalid choice" in merged.stdout and merged.stderr is None


def _exit_code(process: subprocess.Popen[str], sig: int) -> int:
    """The exit code; if the process outlives the signal by 30 s, what state it is stuck in."""
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc = Path(f"/proc/{process.pid}")
        status = _status(process.pid)
        seen = {key: status.get(key) for key in ("State", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "Threads")}
        with contextlib.suppress(OSError):
            seen["wchan"] = (proc / "wchan").read_text()
        with contextlib.suppress(OSError):
            seen["stack"] = (proc / "stack").read_text()
        process.kill()
        raise AssertionError(f"still running 30 s after {signal.Signals(sig).name}: {seen}") from None


@pytest.fixture
def sigint_by_default() -> Iterator[None]:
    """SIGINT not ignored by this worker, so not by the children it starts. A suite started from a
    non-interactive shell's background job (`cmd &`, as CI runners may) has SIGINT ignored from the
    start, which every child inherits; then `audit tail -f` rightly goes on after a SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@BOTH
@pytest.mark.usefixtures("sigint_by_default")
def test_signals_end_the_child_as_they_end_a_spawned_one(tmp_path: Path, forked: bool) -> None:
    for sig, code in ((signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)):
        process = _follow(tmp_path / f"data-{sig}", forked)
        _started(process, tmp_path / f"data-{sig}")
        assert process.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
        process.send_signal(sig)
        assert _exit_code(process, sig) == code, sig  # SIGINT: KeyboardInterrupt, which the command handles
        assert process.returncode == code and process.poll() == code
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    assert isinstance(process, zygote.ZygoteProcess) == forked


def test_a_child_has_the_signal_state_umask_and_limits_of_a_spawned_one(tmp_path: Path) -> None:
    seen = {}
    for forked in (True, False):
        process = _follow(tmp_path / f"data-{forked}", forked)
        try:
            _started(process, tmp_path / f"data-{forked}")
            status = _status(process.pid)
            seen[forked] = ({k: status[k] for k in ("SigBlk", "SigIgn", "SigCgt", "Umask", "Threads", "NoNewPrivs")},
                            Path(f"/proc/{process.pid}/limits").read_text())
        finally:
            process.kill()
            process.wait(timeout=30)
    assert seen[True] == seen[False]


def test_the_zygote_has_one_thread_and_reaps_its_children(tmp_path: Path) -> None:
    for _ in range(3):
        assert run_cli(tmp_path / "data", "--version").returncode == 0
    pid = zygote.shared().pid
    assert os.listdir(f"/proc/{pid}/task") == [str(pid)]
    process = _follow(tmp_path / "data", True)
    _started(process, tmp_path / "data")
    child = process.pid
    assert _status(child)["PPid"] == str(pid)
    process.kill()
    process.wait(timeout=30)
    assert not Path(f"/proc/{child}").exists()  # reaped: no zombie waits for its parent


def test_an_env_the_preload_depends_on_is_spawned_for_real(tmp_path: Path) -> None:
    before = sum(n for why, n in zygote.starts.items() if why.startswith("spawned: environment differs"))
    done = run_cli(tmp_path / "data", "--version", PYTHONPROFILEIMPORTTIME="1", LANG="C")
    assert done.returncode == 0 and done.stdout.strip() == "0.1.0"
    assert "import time: " in done.stderr and "| contextd_mcp.cli" in done.stderr  # a fresh interpreter's imports
    reasons = [why for why in zygote.starts if why.startswith("spawned: environment differs")]
    assert sum(zygote.starts[why] for why in reasons) == before + 1
    assert any("LANG" in why and "PYTHONPROFILEIMPORTTIME" in why for why in reasons), reasons


def test_the_switch_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(zygote.SWITCH, "0")
    process = zygote.popen([*CLI, "--version"], env=env_for(tmp_path), stdout=subprocess.DEVNULL)
    assert isinstance(process, subprocess.Popen) and process.wait(timeout=60) == 0


def test_a_forked_daemon_runs_a_sandboxed_command(tmp_path: Path) -> None:
    """The daemon's sandbox helper is a new interpreter it spawns (sys.executable, exec)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    daemon = start_daemon(tmp_path / "data", cwd)
    assert isinstance(daemon.process, zygote.ZygoteProcess)

    async def call() -> None:
        async with socket_client(daemon.socket, cwd) as client:
            ran = data(await client.call_tool("bash", {"command": "echo forked-$((6*7)); pwd"}))
            assert ran["stdout"].split() == ["forked-42", str(cwd)], ran

    try:
        anyio.run(call)
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()


def test_the_zygote_and_its_children_die_with_the_worker(tmp_path: Path) -> None:
    """A pytest worker killed with -9: its zygote sees the socket's EOF and takes its children."""
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from tests import zygote
        from tests.helpers import CLI, env_for
        from pathlib import Path
        zygote.in_use = True  # as tests/conftest.py sets it in a worker
        data = Path({str(tmp_path / "data")!r}); data.mkdir(); (data / "audit.log").touch()
        child = zygote.popen([*CLI, "audit", "tail", "-f"], env=env_for(data), stdout=subprocess.DEVNULL)
        print(zygote.shared().pid, child.pid, flush=True)
        time.sleep(600)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert worker.stdout is not None
        pids = [int(p) for p in worker.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)
