"""Containment: what a command must not be able to do, checked from the host's side as well.

Every case runs twice (the `sandbox` fixture): with the server as root and as an unprivileged
user. Real namespaces, real seccomp, no mocks.
"""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from dataclasses import asdict
from pathlib import Path

import pytest

from contextd_mcp.sandbox import SandboxBudget, SandboxLimits

from .conftest import (
    SERVER_SECRET,
    HostDirs,
    Sandbox,
    host_processes_with,
    needs_python_inside,
)

FAST = SandboxLimits(timeout_seconds=20)


def python_inside(code: str) -> str:
    """A command running `code` with the sandbox's /usr/bin/python3."""
    return "/usr/bin/python3 - <<'PY'\n" + textwrap.dedent(code) + "\nPY"


# --- network ---------------------------------------------------------------------------------


def test_tcp_to_a_host_listener_is_refused(sandbox: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        run = sandbox.run(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED", limits=FAST)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert "CONNECTED" not in run.result.stdout
    assert run.result.exit_code != 0
    assert "Operation not permitted" in run.result.stderr


def test_udp_to_a_host_socket_is_refused(sandbox: Sandbox) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        run = sandbox.run(f"echo hello > /dev/udp/127.0.0.1/{port} && echo SENT", limits=FAST)
        with pytest.raises(BlockingIOError):
            receiver.recv(100)
    assert "SENT" not in run.result.stdout
    assert "Operation not permitted" in run.result.stderr


def test_dns_lookup_fails(sandbox: Sandbox) -> None:
    run = sandbox.run("getent hosts example.com; echo rc=$?", limits=FAST)
    assert run.result.stdout.strip().splitlines() == ["rc=2"]  # getent: key not found


@needs_python_inside
def test_only_unix_sockets_can_be_created(sandbox: Sandbox) -> None:
    run = sandbox.run(
        python_inside(
            """
            import socket
            for name in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"):
                try:
                    socket.socket(getattr(socket, name), socket.SOCK_DGRAM).close()
                    print(name, "ok")
                except OSError as exc:
                    print(name, exc.strerror)
            try:
                socket.socketpair(socket.AF_INET)
            except OSError as exc:
                print("socketpair AF_INET", exc.strerror)
            """
        ),
        limits=FAST,
    )
    assert run.result.stdout.splitlines() == [
        "AF_INET Operation not permitted",
        "AF_INET6 Operation not permitted",
        "AF_NETLINK Operation not permitted",
        "AF_PACKET Operation not permitted",
        "AF_UNIX ok",
        "socketpair AF_INET Operation not permitted",
    ], run.result.stderr


# --- reads outside the project ---------------------------------------------------------------


def test_files_outside_the_project_do_not_exist(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    targets = [host_dirs.secret, host_dirs.home, host_dirs.outside, "/root", "/root/.ssh", "/home", "/work",
               "/var", "/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/sudoers", "/sys", "/boot", "/.oldroot"]  # fmt: skip
    checks = "; ".join(f"test -e {t} && echo VISIBLE {t}" for t in targets)
    run = sandbox.run(f"{checks}; cat {host_dirs.secret}; echo done", limits=FAST)
    assert run.result.stdout == "done\n"
    assert host_dirs.secret.read_text() not in run.result.stdout + run.result.stderr


def test_proc_shows_only_the_sandbox(sandbox: Sandbox) -> None:
    host_init = Path("/proc/1/cmdline").read_bytes().split(b"\0")[0].decode()
    run = sandbox.run(
        "ls -d /proc/[0-9]* | wc -l; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/environ; echo rc=$?; env",
        limits=FAST,
    )
    out = run.result.stdout + run.result.stderr
    processes = int(run.result.stdout.splitlines()[0])
    assert processes <= 4  # init, bash, and the pipeline's own processes
    assert host_init not in run.result.stdout.splitlines()[1]
    assert "Permission denied" in run.result.stderr  # init is not dumpable: no environ, mem, fds
    assert SERVER_SECRET not in out


def test_the_host_tree_init_keeps_is_out_of_reach(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    """Init holds a detached copy of the host's mounts (see _rootfs._clone_host): neither its fds
    nor its root, cwd or any process's fd lead a command to a host file."""
    secret = str(host_dirs.secret)
    run = sandbox.run(
        f"for n in $(ls /proc/1/fd); do readlink /proc/1/fd/$n && echo READ $n; done; for p in /proc/[0-9]*; do for f in $p/fd/* $p/root $p/cwd; do"
        f" cat $f{secret} 2>/dev/null && echo LEAK $f; done; done;"
        f" for n in $(seq 0 64); do cat /proc/1/fd/$n{secret} 2>/dev/null; done; echo done",
        limits=FAST,
    ).result
    assert "READ" not in run.stdout and "LEAK" not in run.stdout, run.stdout
    assert run.stdout.endswith("done\n"), (run.stdout, run.stderr)
    assert host_dirs.secret.read_text() not in run.stdout + run.stderr


def test_server_environment_does_not_leak(sandbox: Sandbox) -> None:
    run = sandbox.run("env; cat /proc/self/environ", env={"GIVEN": "yes"}, limits=FAST)
    assert SERVER_SECRET not in run.result.stdout
    names = {line.split("=", 1)[0] for line in run.result.stdout.splitlines() if "=" in line}
    assert {"PATH", "HOME", "LANG", "TERM", "GIVEN"} <= names
    assert "CONTEXTD_TEST_SERVER_SECRET" not in names


# --- writes outside the project --------------------------------------------------------------


def test_system_directories_are_read_only(sandbox: Sandbox) -> None:
    marker = f"written-{uuid.uuid4().hex}"
    targets = [f"/usr/{marker}", f"/etc/{marker}", f"/{marker}", f"/bin/{marker}", f"/dev/{marker}", f"/proc/{marker}"]
    run = sandbox.run("; ".join(f"touch {t} 2>/dev/null && echo WROTE {t}" for t in targets) + "; echo done", limits=FAST)
    assert run.result.stdout == "done\n"
    assert not any(Path(t).exists() for t in targets)


def test_symlink_out_of_the_project_does_not_reach_the_host(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    (sandbox.project / "out").symlink_to(host_dirs.outside)
    (sandbox.project / "home").symlink_to(host_dirs.home)
    run = sandbox.run(
        "mkdir -p out; echo pwned > out/file; echo pwned > home/.ssh/authorized_keys; ls -la out/ home/ 2>&1; echo done",
        limits=FAST,
    )
    assert "done" in run.result.stdout
    assert list(host_dirs.outside.iterdir()) == []
    assert not (host_dirs.home / ".ssh" / "authorized_keys").exists()


def test_dotdot_does_not_reach_the_host(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    run = sandbox.run(f"echo x > ../{name}; echo x > ../../{name}; cd ../..; echo x > {name}; echo done", limits=FAST)
    assert "done" in run.result.stdout
    assert not (host_dirs.projects / name).exists()
    assert not (host_dirs.base / name).exists()


def test_the_project_itself_is_writable(sandbox: Sandbox) -> None:
    (sandbox.project / "sub").mkdir()
    os.chown(sandbox.project / "sub", sandbox.uid, -1)
    run = sandbox.run("echo hello > new.txt && cat new.txt", working_dir=sandbox.project / "sub", limits=FAST)
    assert run.result.stdout == "hello\n"
    assert (sandbox.project / "sub" / "new.txt").read_text() == "hello\n"
    assert (sandbox.project / "sub" / "new.txt").stat().st_uid == sandbox.uid


# --- escalation ------------------------------------------------------------------------------


def test_no_capabilities_no_new_privs_seccomp_on(sandbox: Sandbox) -> None:
    run = sandbox.run("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; id -u", limits=FAST)
    lines = dict(line.split(":\t") for line in run.result.stdout.splitlines()[:-1])
    assert {lines[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0000000000000000"}
    assert lines["NoNewPrivs"] == "1"
    assert lines["Seccomp"] == "2"
    assert run.result.stdout.splitlines()[-1] == str(sandbox.uid)


def test_setuid_binaries_gain_nothing(sandbox: Sandbox) -> None:
    marker = f"/usr/suid-{uuid.uuid4().hex}"
    run = sandbox.run(
        f"su root -c 'grep CapEff /proc/self/status; touch {marker}' </dev/null; "
        "mount -t tmpfs none /tmp 2>&1; echo rc=$?; grep CapEff /proc/self/status",
        limits=FAST,
    )
    assert not Path(marker).exists()
    assert "CapEff:\t0000000000000000" in run.result.stdout
    assert "CapEff:\t000001" not in run.result.stdout
    assert "rc=0" not in run.result.stdout


def test_ptrace_is_denied(sandbox: Sandbox) -> None:
    run = sandbox.run("strace -f true 2>&1 | head -3; echo done", limits=FAST)
    if "command not found" in run.result.stdout:
        pytest.skip("strace is not installed")
    assert "Operation not permitted" in run.result.stdout


@needs_python_inside
def test_ptrace_attach_to_a_sibling_is_denied(sandbox: Sandbox) -> None:
    run = sandbox.run(
        "sleep 30 & " + python_inside(
            """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            pid = int(os.environ["SIBLING"])
            print(libc.ptrace(16, pid, 0, 0), os.strerror(ctypes.get_errno()))  # PTRACE_ATTACH
            """
        ).replace("/usr/bin/python3", "SIBLING=$! /usr/bin/python3", 1),
        limits=FAST,
    )
    assert run.result.stdout.strip() == "-1 Operation not permitted", run.result.stderr


@needs_python_inside
def test_dangerous_syscalls_fail_with_eperm(sandbox: Sandbox) -> None:
    """Each denied call returns -1/EPERM (clone3 ENOSYS, so libc falls back to clone)."""
    run = sandbox.run(
        python_inside(
            """
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            calls = {  # x86_64 numbers
                "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
                "unshare": 272, "setns": 308, "kexec_load": 246, "kexec_file_load": 320,
                "init_module": 175, "finit_module": 313, "delete_module": 176, "bpf": 321,
                "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
                "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
                "io_uring_register": 427, "reboot": 169, "swapon": 167, "swapoff": 168,
                "open_by_handle_at": 304, "fsopen": 430, "open_tree": 428, "clone3": 435,
                "process_vm_readv": 310,
            }
            for name, nr in calls.items():
                rc = libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0)
                print(name, rc, os.strerror(ctypes.get_errno()) if rc < 0 else "")
            CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
            rc = libc.syscall(ctypes.c_long(56), CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
            print("clone(NEWUSER)", rc, os.strerror(ctypes.get_errno()) if rc < 0 else "")
            """
        ),
        limits=FAST,
    )
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("syscall numbers above are x86_64's")
    results = dict(line.split(" ", 1) for line in run.result.stdout.splitlines())
    assert len(results) == 30, run.result.stderr
    for name, outcome in results.items():
        expected = "-1 Function not implemented" if name == "clone3" else "-1 Operation not permitted"
        assert outcome == expected, name


def test_mount_and_unshare_commands_fail(sandbox: Sandbox) -> None:
    run = sandbox.run(
        "for c in 'unshare -U true' 'unshare -r true' 'unshare -m true' 'unshare -n true' "
        "'mount -t proc proc /tmp' 'mount --bind /usr /tmp' 'chroot / true'; do $c >/dev/null 2>&1; echo \"$c: $?\"; done",
        limits=FAST,
    )
    for line in run.result.stdout.splitlines():
        assert not line.endswith(": 0"), line


# --- resources -------------------------------------------------------------------------------


@needs_python_inside
def test_memory_hog_is_stopped(sandbox: Sandbox) -> None:
    """Without a cgroup (the unprivileged user here) RLIMIT_AS stops the allocation. With one
    (root) the address space is free, JITs reserve far more than they touch, and the call's
    memory.max kills the hog once it touches more than the call may hold."""
    limits = SandboxLimits(timeout_seconds=20, memory_bytes=256 << 20)
    hog = python_inside("x = bytearray(512 << 20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nprint('ALLOCATED')")
    if sandbox.kind == "user":
        run = sandbox.run(hog, limits=limits)
        assert "MemoryError" in run.result.stderr
    else:
        sandbox.driver.request(budget=asdict(SandboxBudget(call_memory_bytes=256 << 20)))
        try:
            run = sandbox.run(hog, limits=limits)
        finally:
            sandbox.driver.request(budget=asdict(SandboxBudget()))
        assert run.result.killed and "memory limit of 268435456 bytes" in run.result.killed, run.result
    assert "ALLOCATED" not in run.result.stdout


def test_cpu_loop_is_killed_at_the_timeout(sandbox: Sandbox) -> None:
    run = sandbox.run("while :; do :; done", limits=SandboxLimits(timeout_seconds=1))
    assert run.result.timed_out
    assert run.result.exit_code == 124
    assert 1000 <= run.result.duration_ms < 2500


def test_cpu_time_limit_kills_with_sigxcpu(sandbox: Sandbox) -> None:
    run = sandbox.run("while :; do :; done", limits=SandboxLimits(timeout_seconds=20, cpu_seconds=1))
    assert not run.result.timed_out
    assert run.result.exit_code == 128 + 24  # SIGXCPU
    assert run.result.duration_ms < 5000


@pytest.mark.slow
def test_fork_bomb_is_bounded(sandbox: Sandbox) -> None:
    """Bash builtins only after the bomb (fork would fail): count our processes, then leave."""
    limit = 64
    run = sandbox.run(
        "mkfifo /tmp/wait; exec 3<>/tmp/wait; bomb() { bomb | bomb & }; bomb; "
        "read -t 3 -u 3; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo count=$n",
        limits=SandboxLimits(timeout_seconds=30, max_processes=limit),
    )
    count = int(run.result.stdout.split("count=")[1])
    # RLIMIT_NPROC caps an unprivileged server's sandbox; root is exempt from it, so there the
    # pid namespace's pid_max (301 at least) does (kernel >= 6.14).
    bound = limit + 2 if sandbox.kind == "user" else 301
    assert 10 < count <= bound, run.result.stdout
    assert run.result.duration_ms < 20000
    assert not run.result.timed_out


@pytest.mark.slow
def test_disk_fill_is_bounded(sandbox: Sandbox) -> None:
    cap = 8 << 20
    run = sandbox.run(
        "dd if=/dev/zero of=big bs=1M count=64 2>/dev/null; echo project=$?; "
        "cat /dev/zero > /tmp/fill 2>/dev/null; echo tmp=$?; du -b /tmp/fill | cut -f1",
        limits=SandboxLimits(timeout_seconds=30, max_file_bytes=cap),
    )
    lines = run.result.stdout.splitlines()
    assert lines[0] == "project=153"  # killed by SIGXFSZ at RLIMIT_FSIZE
    assert lines[1] != "tmp=0"
    assert int(lines[2]) <= cap
    assert (sandbox.project / "big").stat().st_size <= cap


@pytest.mark.slow
def test_two_gigabyte_flood_is_truncated_in_bounded_memory(sandbox: Sandbox) -> None:
    total = 2_000_000_000
    run = sandbox.run(f"yes | head -c {total}", limits=SandboxLimits(timeout_seconds=120))
    result = run.result
    assert result.exit_code == 0 and result.truncated and not result.timed_out
    kept = SandboxLimits().max_output_bytes
    assert f"\n[... {total - kept} bytes omitted ...]\n" in result.stdout
    assert result.stdout.startswith("y\ny\n") and result.stdout.endswith("y\ny\n")
    assert run.maxrss_growth_kb < 64 * 1024  # the "server" did not buffer the flood


def test_endless_output_is_cut_by_the_timeout(sandbox: Sandbox) -> None:
    run = sandbox.run("yes", limits=SandboxLimits(timeout_seconds=1))
    assert run.result.timed_out and run.result.truncated
    assert run.maxrss_growth_kb < 64 * 1024


# --- timeouts and leftovers ------------------------------------------------------------------


def test_timeout_reports_and_is_on_time(sandbox: Sandbox) -> None:
    run = sandbox.run("echo started; sleep 30", limits=SandboxLimits(timeout_seconds=1))
    assert run.result.timed_out
    assert run.result.exit_code == 124
    assert run.result.stdout == "started\n"
    assert 1000 <= run.result.duration_ms < 2000


def test_nothing_survives_a_timeout(sandbox: Sandbox) -> None:
    marker = f"contextd-marker-{uuid.uuid4().hex}"
    run = sandbox.run(
        f"(exec -a {marker}-bg sleep 300) & "
        f"setsid bash -c 'exec -a {marker}-setsid sleep 300' </dev/null >/dev/null 2>&1 & "
        f"nohup bash -c '(exec -a {marker}-daemon sleep 300) &' >/dev/null 2>&1; "
        f"exec -a {marker}-main sleep 300",
        limits=SandboxLimits(timeout_seconds=1),
    )
    assert run.result.timed_out
    assert host_processes_with(marker) == []


def test_nothing_survives_the_command(sandbox: Sandbox) -> None:
    marker = f"contextd-marker-{uuid.uuid4().hex}"
    run = sandbox.run(
        f"(setsid bash -c 'exec -a {marker} sleep 300' </dev/null >/dev/null 2>&1 &); echo left",
        limits=FAST,
    )
    assert run.result.stdout == "left\n" and not run.result.timed_out
    assert host_processes_with(marker) == []


def test_sigterm_is_no_shield(sandbox: Sandbox) -> None:
    run = sandbox.run(
        "trap '' TERM INT HUP; (trap '' TERM; while :; do sleep 0.05; done) & while :; do sleep 0.05; done",
        limits=SandboxLimits(timeout_seconds=1),
    )
    assert run.result.timed_out
    assert run.result.duration_ms < 2500


def test_the_server_cannot_be_signalled(sandbox: Sandbox) -> None:
    run = sandbox.run(
        "sleep 30 & kill -9 $SERVER_PID; echo server=$?; kill -9 1; echo init=$?; "
        "kill -9 -1; echo all=$?; wait; echo done",
        env={"SERVER_PID": str(sandbox.driver.pid)},
        limits=FAST,
    )
    # The server's pid means nothing in the sandbox's pid namespace; init ignores signals from
    # inside; kill -1 reaches every process of the namespace but init and the caller: sleep.
    assert run.result.stdout == "server=1\ninit=0\nall=0\ndone\n", run.result.stderr
    assert sandbox.driver.alive()
    assert sandbox.run("echo still here", limits=FAST).result.stdout == "still here\n"
