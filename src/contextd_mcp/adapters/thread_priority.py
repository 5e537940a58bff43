"""Lowering one thread's priority, not its process's.

On Linux a thread is its own scheduling entity, so ``setpriority`` on its native id nices that
thread alone, and raising one's own nice needs no privilege. Elsewhere, or if refused, the thread
keeps its priority: the work it does is the same, only its share of the CPU under contention.
"""

from __future__ import annotations

import os
import sys
import threading

# Steps enough to reach nice 19 from any nice (-20 at the most): "as low as it goes".
LOWEST = 39


def lower_this_thread(steps: int) -> None:
    """The calling thread, ``steps`` nice steps below where it runs (at most 19)."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError:
        pass
