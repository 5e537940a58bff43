"""Fixtures for the containment suite: every case runs as root and as an unprivileged user.

Each runner is a long-lived `_driver.py` process standing in for the server (so the zygote is
reused across cases, and the driver's own memory can be measured). The unprivileged one runs as
`contextd-test`, created here if absent, through `runuser`; its Python path is a copy of the
few modules it needs, so that it works wherever the repository and its venv live (CI's clone
may sit under a directory that user cannot enter).
"""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import contextd_mcp
from contextd_mcp.sandbox import SandboxLimits, SandboxResult, SandboxUnavailable

TEST_USER = "contextd-test"
DRIVER = Path(__file__).with_name("_driver.py")
SERVER_SECRET = f"contextd-server-secret-{uuid.uuid4().hex}"
DRIVER_TIMEOUT = 180.0
# Modules the unprivileged driver imports, copied into a directory it can read.
COPIED_MODULES = ("anyio", "idna", "typing_extensions", "pyseccomp")


@dataclass(frozen=True)
class Run:
    result: SandboxResult
    maxrss_growth_kb: int  # how much the driver ("server") grew its peak RSS during the call
    server_pid: int


class Driver:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, cwd="/"
        )

    def request(self, **req: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        if not select.select([self._proc.stdout], [], [], DRIVER_TIMEOUT)[0]:
            raise TimeoutError(f"driver gave no answer within {DRIVER_TIMEOUT} s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"driver died with status {self._proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Sandbox:
    """What a test uses: a fresh project directory and a way to run commands in it."""

    kind: str  # "root" or "user"
    uid: int
    project: Path
    driver: Driver
    state_dir: Path  # where the sandbox journals its placeholders (the daemon uses its data dir)

    def run(
        self,
        command: str,
        *,
        limits: SandboxLimits | None = None,
        env: dict[str, str] | None = None,
        working_dir: Path | None = None,
        allow_unsandboxed: bool = False,
        hidden: list[str] | None = None,
        protect: list[str] | None = None,
        linger: float = 0.0,
    ) -> Run:
        answer = self.driver.request(
            linger=linger,
            hidden=hidden or [],
            protect=protect or [],
            state_dir=str(self.state_dir),
            command=command,
            project_dir=str(self.project),
            working_dir=str(working_dir) if working_dir else None,
            env=env,
            limits=(limits or SandboxLimits()).__dict__,
            allow_unsandboxed=allow_unsandboxed,
        )
        if "error" in answer:
            exc_type = {"ValueError": ValueError, "SandboxUnavailable": SandboxUnavailable}[answer["error"]]
            raise exc_type(answer["message"])
        return Run(SandboxResult(**answer["result"]), answer["maxrss_growth_kb"], answer["pid"])


@dataclass(frozen=True)
class HostDirs:
    base: Path  # 0755, under /tmp, so that the test user can reach projects in it
    home: Path  # a fake home outside every project, with a world-readable secret
    secret: Path
    outside: Path  # a world-writable directory outside every project
    projects: Path


@pytest.fixture(scope="session")
def host_dirs() -> Iterator[HostDirs]:
    base = Path(tempfile.mkdtemp(prefix="contextd-sbx-", dir="/tmp"))
    base.chmod(0o755)
    home, outside, projects = base / "home", base / "outside", base / "projects"
    (home / ".ssh").mkdir(parents=True)
    secret = home / ".ssh" / "id_rsa"
    secret.write_text(f"PRIVATE KEY {uuid.uuid4().hex}\n")
    for path in (home, home / ".ssh", secret):
        path.chmod(0o755 if path.is_dir() else 0o644)  # only the sandbox may stop a read
    outside.mkdir()
    outside.chmod(0o777)  # only the sandbox may stop a write
    projects.mkdir()
    projects.chmod(0o755)
    yield HostDirs(base, home, secret, outside, projects)
    shutil.rmtree(base, ignore_errors=True)


def _ensure_test_user() -> tuple[int, int] | str:
    """(uid, gid) of the test user, creating it if needed; or why that is impossible."""
    if os.geteuid() != 0:
        return "needs root to create and switch to the unprivileged test user"
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None or not shutil.which("runuser"):
            return "useradd/runuser are not installed"
        created = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # a parallel test worker (pytest-xdist) may have created it first: useradd then fails
            entry = pwd.getpwnam(TEST_USER)
        except KeyError:
            return f"useradd {TEST_USER} failed: {created.stderr.strip()}"
    return entry.pw_uid, entry.pw_gid


def _copy_pythonpath(dest: Path) -> Path:
    """The package (its root __init__ and the sandbox) and its few dependencies, readable by all."""
    import importlib

    pkg = Path(contextd_mcp.__file__).parent
    (dest / "contextd_mcp").mkdir(parents=True)
    shutil.copy(pkg / "__init__.py", dest / "contextd_mcp" / "__init__.py")
    shutil.copytree(pkg / "sandbox", dest / "contextd_mcp" / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
    for name in COPIED_MODULES:
        origin = Path(importlib.import_module(name).__file__ or "")
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, dest / origin.name)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def _user_python(pythonpath: Path) -> str | None:
    """An interpreter of this Python version that the test user can execute."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        check = subprocess.run(
            ["runuser", "-u", TEST_USER, "--", candidate, "-c", f"import sys; assert sys.version.startswith('{version}.'); import contextd_mcp.sandbox.runner"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(pythonpath)},
            capture_output=True,
            cwd="/",
            check=False,
        )
        if check.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="session")
def drivers(host_dirs: HostDirs) -> Iterator[dict[str, Driver | str]]:
    """The two runners; a string instead of a Driver says why that runner is unavailable."""
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTEXTD_TEST_SERVER_SECRET": SERVER_SECRET}
    root_env = {**os.environ, **base_env}
    found: dict[str, Driver | str] = {"root": Driver([sys.executable, str(DRIVER)], root_env)}
    user = _ensure_test_user()
    if isinstance(user, str):
        found["user"] = user
    else:
        pythonpath = _copy_pythonpath(host_dirs.base / "pylib")
        python = _user_python(pythonpath)
        if python is None:
            found["user"] = f"no Python {sys.version_info[:2]} that {TEST_USER} can execute"
        else:
            driver_copy = host_dirs.base / "pylib" / DRIVER.name
            shutil.copy(DRIVER, driver_copy)
            driver_copy.chmod(0o644)
            env = {**base_env, "PYTHONPATH": str(pythonpath)}
            found["user"] = Driver(["runuser", "-u", TEST_USER, "--", python, str(driver_copy)], env)
    yield found
    for driver in found.values():
        if isinstance(driver, Driver):
            driver.close()


@pytest.fixture(scope="session")
def user_python(drivers: dict[str, Driver | str], host_dirs: HostDirs) -> tuple[list[str], dict[str, str]] | str:
    """(argv prefix, environment) that runs a script with this Python as the unprivileged test
    user, with the same copied modules as its driver; or why that is impossible."""
    if isinstance(drivers["user"], str):
        return drivers["user"]
    pythonpath = host_dirs.base / "pylib"
    python = _user_python(pythonpath)
    if python is None:
        return f"no Python {sys.version_info[:2]} that {TEST_USER} can execute"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(pythonpath)}
    return ["runuser", "-u", TEST_USER, "--", python], env


@pytest.fixture(params=["root", "user"])
def sandbox(request: pytest.FixtureRequest, drivers: dict[str, Driver | str], host_dirs: HostDirs) -> Sandbox:
    driver = drivers[request.param]
    if isinstance(driver, str):
        if request.param == "user" and "needs root" not in driver and "useradd" not in driver:
            pytest.fail(driver)  # the user exists: failing to run as it is a real problem
        pytest.skip(driver)
    project = host_dirs.projects / f"{request.node.name.split('[')[0]}-{uuid.uuid4().hex[:8]}"
    project.mkdir()
    uid = os.geteuid()
    state_dir = host_dirs.base / f"state-{request.param}"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    if request.param == "user":
        entry = pwd.getpwnam(TEST_USER)
        os.chown(project, entry.pw_uid, entry.pw_gid)
        os.chown(state_dir, entry.pw_uid, entry.pw_gid)
        uid = entry.pw_uid
    return Sandbox(kind=request.param, uid=uid, project=project, driver=driver, state_dir=state_dir)


HAS_PYTHON_INSIDE = Path("/usr/bin/python3").exists()
needs_python_inside = pytest.mark.skipif(not HAS_PYTHON_INSIDE, reason="no /usr/bin/python3 to run inside the sandbox")


def host_processes_with(marker: str) -> list[str]:
    """Command lines of host processes mentioning `marker` (the host's own /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found
