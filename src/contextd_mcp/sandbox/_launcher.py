"""Server side of the hand-off to the helper process.

`ZygoteLauncher` (the default) starts one helper per server process, once; the helper forks per
command. It sends each request straight to a warm worker the helper lent it (see `helper`), and
over its socketpair to the helper only when none fits: one process wake-up fewer per call. `OnceLauncher` starts a fresh helper
per command, which costs a Python start-up plus the pyseccomp import (it runs `ldconfig -p` to
find libraries) on every call; it stays for the benchmark. Figures are in the package docstring.

The helper gets a minimal environment, never the server's: nothing of it can leak into the
sandbox through the processes forked from it.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from ._budget import helper_env
from ._protocol import HELPER_MODULE, MAX_LENT_MESSAGE_BYTES, MAX_WARM_SECONDS, prepare_key, prepare_message
from ._types import SandboxUnavailable

_INT_BYTES = 4  # a file descriptor in SCM_RIGHTS data (C int)
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


class _Lent:
    """A warm worker's request socket, lent by the helper, with when it warmed up and its limits."""

    def __init__(self, sock: socket.socket, meta: dict[str, Any]) -> None:
        self.sock = sock
        self.warmed = float(meta["warmed"])
        self.limits: dict[str, float] | None = meta.get("limits")


class ZygoteLauncher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lent: deque[_Lent] = deque()
        self._hinted: list[object] | None = None  # the key of the last hint the helper got (see _hint)

    def launch(self, payload: bytes, fds: Sequence[int]) -> None:
        with self._lock:
            request = json.loads(payload)
            self._launch(request, payload, fds)
            self._hint(request)

    def _hint(self, request: dict[str, Any]) -> None:
        """Tell the helper the project this call ran on, if it changed: the workers it warms next
        make its mounts while they wait. After the launch, and only on a change: a message to the
        helper wakes it, which slowed the call it landed in."""
        if self._sock is None or not request.get("sandbox", True) or request.get("fresh"):
            return
        try:
            key = prepare_key(request)
            if key == self._hinted:
                return
            hint = prepare_message(request)
        except (KeyError, TypeError):
            return
        try:
            self._sock.send(hint, socket.MSG_DONTWAIT)
        except OSError:
            return  # full or gone: the next call tries again
        self._hinted = key

    def _launch(self, request: dict[str, Any], payload: bytes, fds: Sequence[int]) -> None:
        if self._launch_lent(request, payload, fds):
            return
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

    def _launch_lent(self, request: dict[str, Any], payload: bytes, fds: Sequence[int]) -> bool:
        """Send the request to a lent worker, if one fits it; False: the helper must dispatch it.

        It fits when it is a sandboxed request, not a `fresh` retry (which drops every warm
        worker: they share a stale view), under MAX_WARM_SECONDS old, and made with the call's
        cgroup limits (the helper applies new ones when it dispatches itself, as before).
        """
        self._collect()
        if not self._lent:
            return False
        limits = request.get("cgroup_limits")
        if request.get("fresh") or (limits and limits != self._lent[-1].limits):
            self._drop_lent()  # the helper replaces them: fresh view, new limits
            return False
        if not request.get("sandbox", True):
            return False
        now = time.monotonic()
        while self._lent:
            lent = self._lent.popleft()
            with lent.sock:
                if now - lent.warmed > MAX_WARM_SECONDS or (limits and limits != lent.limits):
                    continue
                try:
                    socket.send_fds(lent.sock, [payload], list(fds))
                except OSError:
                    continue  # it exited meanwhile (the helper dropped it, or died)
                return True
        return False

    def _collect(self) -> None:
        """Take the workers the helper has lent since the last call (non-blocking)."""
        while self._sock is not None:
            try:
                # recvmsg, not socket.recv_fds: that one drops its flags argument (CPython < 3.13).
                meta, ancdata, _, _ = self._sock.recvmsg(
                    MAX_LENT_MESSAGE_BYTES, socket.CMSG_SPACE(_INT_BYTES), socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC
                )
            except OSError:
                return  # nothing more (BlockingIOError), or the helper is gone: launch finds out
            got = [int.from_bytes(data[i : i + _INT_BYTES], sys.byteorder)
                   for level, kind, data in ancdata if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
                   for i in range(0, len(data) - _INT_BYTES + 1, _INT_BYTES)]  # fmt: skip
            if len(got) != 1:
                for fd in got:
                    os.close(fd)
                if not meta:
                    return  # EOF
                continue
            sock = socket.socket(fileno=got[0])
            try:
                self._lent.append(_Lent(sock, json.loads(meta)))
            except (ValueError, KeyError, TypeError):
                sock.close()

    def _drop_lent(self) -> None:
        while self._lent:
            self._lent.popleft().sock.close()  # the worker sees EOF and exits

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
        self._drop_lent()
        if self._sock is not None:
            self._sock.close()  # the helper sees EOF and exits
            self._sock = None
        self._hinted = None  # a new helper knows nothing yet
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
