"""Issue 13 through the real daemon and the real MCP client: what a `bash` command leaves behind
must not act on the host, and the daemon's own files and the host's roots stay out of reach.

Each attack is checked from the host's side after the call, and the same sandbox still runs the
ordinary developer flow (git add/commit/branch, `pip install --target` from a local wheel,
pytest on a tiny test file, `npm ci` from a local tarball, all without network).
The same attacks, as the unprivileged `contextd-test`, run through the sandbox API in
tests/sandbox/test_sandbox_host_effects.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.sandbox._libc import GLIBC_INTERNAL_SIGNALS, _KernelSigaction, _syscall_nr
from contextd_mcp.scope_resolver import resolve_scope
from tests import zygote as forks
from tests.e2e.daemons import _announced, socket_client, start_daemon
from tests.helpers import CLI, data, env_for, error_text

pytestmark = pytest.mark.anyio

SITE = Path(pytest.__file__).parent.parent  # where this venv's pytest and its few dependencies live
PYTEST_PARTS = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py")


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(project), *args], capture_output=True, text=True, timeout=30, check=False
    )


def make_repo(project: Path) -> None:
    for args in (
        ("init", "-q", "-b", "main"), ("config", "user.name", "Host"), ("config", "user.email", "h@example.com"),
        ("remote", "add", "origin", "https://github.com/acme/app.git"),
    ):  # fmt: skip
        _git(project, *args)
    (project / "tracked.txt").write_text("one\n")
    _git(project, "add", "tracked.txt")
    assert _git(project, "commit", "-qm", "first").returncode == 0


def dev_fixtures(project: Path) -> None:
    """A local wheel, a vendored pytest with a tiny test, a package with a local tarball dep."""
    wheel = project / "dist" / "tinypkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("tinypkg/__init__.py", "VALUE = 42\n")
        z.writestr("tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
        z.writestr("tinypkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("tinypkg-1.0.dist-info/RECORD", "")
    vendor = project / "vendor"
    vendor.mkdir()
    for name in PYTEST_PARTS:
        src = SITE / name
        if src.is_dir():
            shutil.copytree(src, vendor / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, vendor / name)
    (project / "test_tiny.py").write_text("def test_adds():\n    assert 1 + 1 == 2\n")
    dep = project / "npmdep"
    dep.mkdir()
    (dep / "package.json").write_text('{"name": "npmdep", "version": "1.0.0", "main": "index.js"}\n')
    (dep / "index.js").write_text("module.exports = 7;\n")
    subprocess.run(["tar", "czf", "../npmdep-1.0.0.tgz", "--transform", "s,^\\.,package,", "."], cwd=dep, check=True)
    shutil.rmtree(dep)
    (project / "package.json").write_text(
        '{"name": "app", "version": "1.0.0", "dependencies": {"npmdep": "file:npmdep-1.0.0.tgz"}}\n'
    )
    # npm writes the lock file itself, on the host, so that `npm ci` inside has one to follow.
    subprocess.run(["npm", "install", "--offline", "--no-audit", "--no-fund", "--silent"], cwd=project, check=True, timeout=120)
    shutil.rmtree(project / "node_modules")


DEV_FLOW = (
    "set -e; echo change >> tracked.txt; git add tracked.txt; git commit -qm inside;"
    " git checkout -qb feature-x; git branch -q another; git checkout -q main; echo GIT-OK;"
    " python3 -m pip install -q --no-index --no-cache-dir --target ./x dist/tinypkg-1.0-py3-none-any.whl;"
    " PYTHONPATH=x python3 -c 'import tinypkg; print(\"PIP-OK\", tinypkg.VALUE)';"
    " PYTHONPATH=vendor python3 -m pytest -q -p no:cacheprovider test_tiny.py | tail -1;"
    # --jitless: V8's JIT reserves more address space than RLIMIT_AS (1 GiB per process) allows.
    " export NODE_OPTIONS=--jitless; npm ci --offline --no-audit --no-fund --silent && node -e 'console.log(\"NPM-OK\", require(\"npmdep\"))'"
)


def assert_dev_flow(stdout: str) -> None:
    assert "GIT-OK" in stdout and "PIP-OK 42" in stdout and "1 passed" in stdout and "NPM-OK 7" in stdout, stdout


ATTACKS = (
    "git config core.fsmonitor 'touch {marker}-fsmonitor'; echo fsmonitor=$?;"
    " printf '#!/bin/sh\\ntouch {marker}-hook\\n' > .git/hooks/pre-commit; echo hook=$?;"
    " git remote set-url origin https://github.com/victim/other.git; echo seturl=$?;"
    " mkdir -p .vscode && echo '{{}}' > .vscode/tasks.json; echo vscode=$?;"
    " mkdir -p .claude && echo '{{}}' > .claude/settings.json; echo claude=$?;"
    " echo '{{}}' > .mcp.json; echo mcp=$?; echo 'touch {marker}-rc' >> .bashrc; echo bashrc=$?;"
    " mv .git .git-moved; echo movegit=$?;"
    " cp /bin/bash ./suid && chmod 4755 ./suid; echo chmod=$?; chmod g+s ./suid; echo chmodg=$?;"
    " install -m 4755 /bin/bash ./inst; echo install=$?; mkdir -m 2755 sgid-dir; echo mkdir=$?;"
    " python3 -c 'import os; os.close(os.open(\"o\", os.O_CREAT | os.O_WRONLY, 0o4755))'; echo open=$?;"
    " chmod 755 ./suid; echo plainchmod=$?; echo ---"
)
PLACEHOLDER_LINGER_WAIT_S = 15.0  # CONTEXTD_SANDBOX_PLACEHOLDER_LINGER_S's default, and then some
REFUSED = ("fsmonitor", "hook", "seturl", "vscode", "claude", "mcp", "bashrc", "movegit", "chmod", "chmodg", "install", "mkdir", "open")


def special_bits(project: Path) -> list[str]:
    return [
        str(p) for p in [project, *project.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    ]  # fmt: skip


async def bash(client: Any, command: str, timeout: int = 120) -> Any:
    return await client.call_tool("bash", {"command": command, "timeout_seconds": timeout})


def assert_contained(result: dict[str, Any], project: Path, marker_dir: Path, tenant_before: Any) -> None:
    """Every attack refused inside, the developer flow worked, and from the host git runs nothing
    planted, the remote and the tenant are unchanged, no special bit or protected path is left."""
    attacks, _, flow = result["stdout"].partition("---")
    steps = attacks.split()
    for step in REFUSED:
        assert f"{step}=0" not in steps, (step, attacks, result["stderr"])
    assert "plainchmod=0" in steps, attacks
    assert_dev_flow(flow + result["stderr"])
    _git(project, "status")
    (project / "tracked.txt").write_text("host\n")
    _git(project, "commit", "-qam", "host")
    assert sorted(p.name for p in marker_dir.iterdir() if p.name.startswith("ran")) == []
    assert _git(project, "remote", "get-url", "origin").stdout.strip() == "https://github.com/acme/app.git"
    assert resolve_scope(project, {}) == tenant_before
    assert special_bits(project) == []
    names = (".vscode", ".claude", ".mcp.json", ".bashrc", ".git-moved")
    # A daemon still running keeps unused placeholders for its linger (5 s by default).
    deadline = time.monotonic() + PLACEHOLDER_LINGER_WAIT_S
    while any((project / name).exists() for name in names) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name in names:
        assert not (project / name).exists(), f"{name} was left on the host"


async def test_attacks_leave_nothing_that_acts_on_the_host(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    make_repo(project_dir)
    dev_fixtures(project_dir)
    tenant_before = resolve_scope(project_dir, {})
    marker = tmp_path / "ran"
    daemon = start_daemon(data_dir, tmp_path)
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            result = data(await bash(client, ATTACKS.format(marker=marker) + DEV_FLOW))
    finally:
        daemon.stop()
    assert_contained(result, project_dir, tmp_path, tenant_before)


async def test_roots_that_expose_the_host_are_refused(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    daemon = start_daemon(data_dir, tmp_path)
    try:
        import pwd

        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
        for root in (Path("/"), home, Path.home(), Path("/etc"), Path("/usr/lib")):
            async with socket_client(daemon.socket, root) as client:
                message = error_text(await bash(client, "id"))
                assert "cwd" in message and str(root.resolve()) in message, message
                assert "CONTEXTD_PROJECT_DIR" in message and "repository" in message, message
        async with socket_client(daemon.socket, data_dir.parent) as client:  # contains the data directory
            assert "contains contextd's data directory" in error_text(await bash(client, "id"))
        async with socket_client(daemon.socket, data_dir / "store") as client:  # inside it
            assert "inside contextd's data directory" in error_text(await bash(client, "id"))
        async with socket_client(daemon.socket, project_dir) as client:  # the server keeps serving
            assert data(await bash(client, "echo fine"))["stdout"] == "fine\n"
    finally:
        daemon.stop()


async def test_daemon_files_inside_the_project_are_invisible(project_dir: Path, tmp_path: Path) -> None:
    """Tokens file and model cache configured inside the project; the data directory beside it."""
    make_repo(project_dir)
    secrets = project_dir / "secrets"
    secrets.mkdir()
    tokens = secrets / "tokens.json"
    tokens.write_text('{"tokens": [{"hash": "sha256-of-a-token"}]}\n')
    data_dir = tmp_path / "d"
    cache = Path(os.environ.get("CONTEXTD_EMBEDDING_CACHE_DIR") or Path.home() / ".cache" / "contextd-mcp" / "models")
    daemon = start_daemon(data_dir, tmp_path, CONTEXTD_TOKENS_FILE=str(tokens))
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            result = data(await bash(client, "cat secrets/tokens.json; echo x >> secrets/tokens.json; echo write=$?; ls -A secrets"))
    finally:
        daemon.stop()
    assert "sha256-of-a-token" not in result["stdout"] and "write=0" not in result["stdout"], result
    assert tokens.read_text() == '{"tokens": [{"hash": "sha256-of-a-token"}]}\n'
    assert cache.exists()  # (the cache is outside this project: nothing to mask, nothing shown)


async def test_data_directory_inside_the_project_refuses_bash(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    make_repo(project)
    data_dir = project / "d"
    daemon = start_daemon(data_dir, tmp_path)
    try:
        async with socket_client(daemon.socket, project) as client:
            message = error_text(await bash(client, "ls -A d; cat d/audit.log"))
            assert "cwd" in message and "contains contextd's data directory" in message, message
    finally:
        daemon.stop()


def _start_under_nohup(data_dir: Path, cwd: Path, extra_fd: int) -> subprocess.Popen[bytes]:
    def hostile_parent() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        os.umask(0o077)
        ignore = _KernelSigaction(1, 0, None, 0)  # glibc's own 32/33: only the raw syscall reaches them
        for sig in GLIBC_INTERNAL_SIGNALS:
            ctypes.CDLL(None).syscall(ctypes.c_long(_syscall_nr("rt_sigaction")), sig, ctypes.byref(ignore), None, 8)

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "nohup-daemon.out", "wb")  # noqa: SIM115 - closed by the test
    process = subprocess.Popen(
        [*CLI, "serve"], env=env_for(data_dir), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=hostile_parent, pass_fds=(extra_fd,),  # noqa: PLW1509 - the hostile parent under test
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 90
    while not _announced(data_dir, process.pid):
        assert process.poll() is None and time.monotonic() < deadline, (data_dir.parent / "nohup-daemon.out").read_text()
        time.sleep(0.05)
    return process


async def test_a_daemon_under_nohup_gives_commands_a_clean_process_state(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    extra_r, extra_w = os.pipe()
    os.set_inheritable(extra_r, True)
    process = _start_under_nohup(data_dir, tmp_path, extra_r)
    try:
        ignored = next(line for line in Path(f"/proc/{process.pid}/status").read_text().splitlines() if line.startswith("SigIgn"))
        assert int(ignored.split()[1], 16) & (1 << (signal.SIGQUIT - 1)), ignored  # the parent really is hostile
        async with socket_client(data_dir / "contextd.sock", project_dir) as client:
            # ls into a file, not a pipe: while bash starts a pipeline it still holds the pipe's
            # fds, and under load ls saw one of them (fd 3) now and then.
            result = data(await bash(
                client, "grep -E '^Sig(Ign|Blk)' /proc/self/status; umask; ls /proc/$$/fd > /tmp/fds; tr '\\n' ' ' < /tmp/fds"
            ))
    finally:
        os.close(extra_r)
        os.close(extra_w)
        forks.run([*CLI, "stop", "--timeout", "30"], env=env_for(data_dir), capture_output=True, timeout=60)
        process.wait(timeout=30)
    lines = result["stdout"].splitlines()
    assert lines[:3] == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000", "0022"], result
    assert lines[3].split() == ["0", "1", "2"], result


# --- the same, with the daemon running as an unprivileged user -------------------------------

TEST_USER = "contextd-test"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def _user_env(base: Path) -> dict[str, str] | str:
    """Environment for the bridge and daemon as TEST_USER, or why they cannot run here.

    The repository's venv interpreter may live under a directory that user cannot enter (/root
    is 0700 here and in CI), so the system's Python of the same minor version runs the package
    and the venv's site-packages (pure Python plus cp311 extension modules)."""
    import pwd

    if os.geteuid() != 0 or not Path(RUNUSER).exists():
        return "needs root and runuser to run a daemon as the unprivileged user"
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        created = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=False)
        if created.returncode != 0 and subprocess.run(["id", TEST_USER], capture_output=True).returncode != 0:
            return f"cannot create {TEST_USER}"  # (not created by a parallel test worker either)
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    src = Path(__file__).resolve().parents[2] / "src"
    pythonpath = f"{src}:{SITE}"
    probe = subprocess.run(
        [RUNUSER, "-u", TEST_USER, "--", python, "-c", "import contextd_mcp.cli, onnxruntime, mcp"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath}, capture_output=True, cwd="/", check=False,
    )  # fmt: skip
    if not Path(python).exists() or probe.returncode != 0:
        return f"{TEST_USER} cannot import the package with {python}: {probe.stderr.decode()[-300:]}"
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1",
        "CONTEXTD_DATA_DIR": str(base / "data"), "CONTEXTD_EMBEDDING_CACHE_DIR": str(base / "cache"),
        "PYTHON": python,
    }  # fmt: skip


@pytest.fixture
def user_base() -> Any:
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ctxd-user-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    env = _user_env(base)
    if isinstance(env, dict):
        subprocess.run(
            [RUNUSER, "-u", TEST_USER, "--", env["PYTHON"], "-m", "contextd_mcp", "stop", "--timeout", "30"],
            env=env, capture_output=True, timeout=60, cwd="/", check=False,
        )  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)


async def test_attacks_on_an_unprivileged_daemon_leave_nothing_on_the_host(user_base: Path) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = _user_env(user_base)
    if isinstance(env, str):
        pytest.skip(env)
    project = user_base / "project"
    project.mkdir()
    make_repo(project)
    dev_fixtures(project)
    (user_base / "cache").mkdir()
    subprocess.run(["chown", "-R", f"{TEST_USER}:", str(user_base)], check=True)
    tenant_before = resolve_scope(project, {})
    marker = user_base / "ran"
    bridge = StdioServerParameters(
        command=RUNUSER, args=["-u", TEST_USER, "--", env["PYTHON"], "-m", "contextd_mcp", "stdio"], env=env, cwd=str(project)
    )
    async with Client(bridge, read_timeout_seconds=120) as client:
        result = data(await bash(client, ATTACKS.format(marker=marker) + DEV_FLOW))
        escape = error_text(await client.call_tool("bash", {"command": "id", "working_dir": "/"}))
    assert "outside the project" in escape
    assert_contained(result, project, user_base, tenant_before)


async def test_contextd_project_dir_names_the_project_for_an_agent_run_elsewhere(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    from tests.e2e.test_stdio import stdio

    make_repo(project_dir)
    async with stdio(data_dir, Path.home(), CONTEXTD_PROJECT_DIR=str(project_dir)) as client:
        assert data(await bash(client, "pwd"))["stdout"] == f"{project_dir}\n"
    async with stdio(data_dir, Path.home()) as client:  # without it: $HOME, refused with the fix
        assert "CONTEXTD_PROJECT_DIR" in error_text(await bash(client, "pwd"))
