"""Can this host sandbox? Answered once per process, and fast when the answer is no.

Two stages. The quick one (~25 ms) catches the usual refusals without starting the helper:
pyseccomp or libseccomp missing, or a throw-away `python -S -I` unable to unshare the
namespaces (that needs a fresh single-threaded process; the server has threads). The full one
then runs the real set-up once through the helper, without exec (namespaces, maps, mounts,
pivot_root, capabilities, seccomp), so that what passes the probe is what runs commands.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

from ._launcher import Launcher, default_launcher
from ._protocol import Request
from ._types import SandboxUnavailable
from ._worker import NAMESPACES, userns_hint

PROBE_TIMEOUT_SECONDS = 10.0
_NO_SECCOMP = 100  # exit status of the quick check when the kernel has no seccomp filters
_QUICK_CHECK = f"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(21, 0, 0, 0, 0) < 0:  # PR_GET_SECCOMP
    sys.exit({_NO_SECCOMP})
if libc.unshare({NAMESPACES}) != 0:
    sys.exit(ctypes.get_errno())
"""

_lock = threading.Lock()
_done = False
_error: SandboxUnavailable | None = None


def probe() -> None:
    global _done, _error
    with _lock:
        if not _done:
            _error = _quick_check() or _full_check(default_launcher())
            _done = True
    if _error is not None:
        raise _error


def cached() -> bool:
    return _done


def _quick_check() -> SandboxUnavailable | None:
    if sys.platform != "linux":
        return SandboxUnavailable(f"the sandbox needs Linux namespaces and seccomp; this is {sys.platform}")
    if importlib.util.find_spec("pyseccomp") is None:
        return SandboxUnavailable("pyseccomp is not installed: pip install pyseccomp")
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return SandboxUnavailable(
            "libseccomp.so.2 is missing: apt-get install libseccomp2 (Debian/Ubuntu), dnf install libseccomp (Fedora)"
        )
    try:
        check = subprocess.run(  # fixed argv
            [sys.executable, "-S", "-I", "-c", _QUICK_CHECK], cwd="/", env={}, capture_output=True, timeout=PROBE_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxUnavailable(f"cannot run the namespace check with {sys.executable}: {exc}")
    if check.returncode == _NO_SECCOMP:
        return SandboxUnavailable("the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)")
    if check.returncode != 0:
        code = check.returncode if check.returncode in errno.errorcode else errno.EPERM
        refusal = OSError(code, os.strerror(code))
        return SandboxUnavailable(f"cannot create namespaces ({refusal.strerror}): {userns_hint(refusal)}")
    return None


def _full_check(launcher: Launcher) -> SandboxUnavailable | None:
    with tempfile.TemporaryDirectory(prefix="contextd-probe-") as tmp:
        status, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with status:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            try:
                launcher.launch(Request(command=None, project=tmp, workdir=tmp).encode(), [theirs.fileno(), null, null])
            except SandboxUnavailable as exc:
                return exc
            finally:
                theirs.close()
                os.close(null)
            status.settimeout(PROBE_TIMEOUT_SECONDS)
            messages = []
            try:
                while data := status.recv(65536):
                    messages.append(json.loads(data))
                    if "exit" in messages[-1] or "error" in messages[-1]:
                        break
            except TimeoutError:
                return SandboxUnavailable(f"the sandbox helper did not answer within {PROBE_TIMEOUT_SECONDS:g} s")
    for message in messages:
        if "error" in message:
            return SandboxUnavailable(f"sandbox set-up failed: {message['error']}")
    if {"exit": 0} not in messages:
        return SandboxUnavailable("the sandbox helper ended without a status; see the server's stderr")
    return None
