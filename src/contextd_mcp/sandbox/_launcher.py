"""Server side of the hand-off to the helper process.

`ZygoteLauncher` (the default) starts one helper per server process, once, and hands it each
request over a socketpair; the helper forks per command. `OnceLauncher` starts a fresh helper
per command, which costs a Python start-up plus the pyseccomp import (it runs `ldconfig -p` to
find libraries) on every call; it stays for the benchmark. Figures are in the package docstring.

The helper gets a minimal environment, never the server's: nothing of it can leak into the
sandbox through the processes forked from it.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Protocol

from ._budget import helper_env
from ._protocol import HELPER_MODULE
from ._types import SandboxUnavailable

_ENV_PASSED = ("PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE")


class Launcher(Protocol):
    def launch(self, payload: bytes, fds: Sequence[int]) -> None:
        """Hand one encoded request and its (status, stdout, stderr) fds to a helper."""


def _spawn(mode: str, fd: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
    env.update(helper_env())  # where the zygote makes each call's cgroup (see _cgroup)
    # -P: never import from the current directory, which may be an untrusted project.
    argv = [sys.executable, "-P", "-m", HELPER_MODULE, mode, str(fd)]
    return subprocess.Popen(  # fixed argv
        argv,
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        cwd="/",
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C is the server's business, not the helper's
    )


class ZygoteLauncher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def launch(self, payload: bytes, fds: Sequence[int]) -> None:
        with self._lock:
            for _ in range(2):  # a helper that died since the last call is restarted once
                if self._sock is None:
                    self._start()
                assert self._sock is not None
                try:
                    socket.send_fds(self._sock, [payload], list(fds))
                    return
                except (BrokenPipeError, ConnectionResetError):
                    self._stop()
            raise SandboxUnavailable("the sandbox helper exits as soon as it starts; see the server's stderr")

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = _spawn("--zygote", theirs.fileno())
        except OSError as exc:
            ours.close()
            raise SandboxUnavailable(f"cannot start the sandbox helper ({sys.executable}): {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the helper sees EOF and exits
            self._sock = None
        if self._proc is not None:
            self._proc.poll()  # reap it if it is already gone
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


class OnceLauncher:
    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def launch(self, payload: bytes, fds: Sequence[int]) -> None:
        self._procs = [p for p in self._procs if p.poll() is None]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours:
            try:
                self._procs.append(_spawn("--once", theirs.fileno()))
            finally:
                theirs.close()
            socket.send_fds(ours, [payload], list(fds))


_default: ZygoteLauncher | None = None
_default_lock = threading.Lock()


def default_launcher() -> ZygoteLauncher:
    global _default
    with _default_lock:
        if _default is None:
            _default = ZygoteLauncher()
            atexit.register(_default.close)
        return _default
