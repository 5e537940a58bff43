"""The daemon's threads share a bounded number of malloc arenas (issue 19, RSS under writes).

Each case runs in a fresh interpreter (the cap must come before threads take arenas): eight
threads allocate at once, as the daemon's workers do under concurrent tool calls, then glibc's
``malloc_info`` report is read for the number of heaps (arenas) in use.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from contextd_mcp import limits

_PROBE = """
import ctypes, sys, tempfile, threading
from contextd_mcp.adapters.malloc_arenas import limit_arenas
if sys.argv[1] != "default":
    assert limit_arenas(int(sys.argv[1]))
barrier = threading.Barrier(8)
def work():
    held = [bytearray(100_000) for _ in range(32)]  # under the mmap threshold: from an arena
    barrier.wait()  # all eight hold memory at once
    del held
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fdopen.restype = ctypes.c_void_p
with tempfile.TemporaryFile() as out:
    stream = libc.fdopen(out.fileno(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream)); libc.fflush(ctypes.c_void_p(stream))
    out.seek(0)
    print(out.read().decode().count("<heap nr="))
"""


def heaps(arenas: str) -> int:
    probe = subprocess.run([sys.executable, "-c", _PROBE, arenas], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    return int(probe.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threads_share_at_most_the_capped_arenas() -> None:
    assert heaps("default") > limits.MALLOC_ARENAS  # the attack: every thread takes its own
    assert heaps(str(limits.MALLOC_ARENAS)) <= limits.MALLOC_ARENAS
