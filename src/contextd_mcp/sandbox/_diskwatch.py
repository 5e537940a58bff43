"""The cap on bytes one call adds to the project: a watcher on the project's filesystem.

No quota is usable here without privileges (ext4/xfs project quotas need root, quota support
in the filesystem and a project id on every file), so the server watches in two steps while the
call runs:

  1. a cheap trigger, every SAMPLE_SECONDS: statvfs() of the project's filesystem. Its used space
     grew by at most the cap since the call started: nothing more to do.
  2. past that, attribution: a walk of the project (its own filesystem only) summing the
     allocated blocks of every file whose ctime is at or after the call's start, less CTIME_SLACK
     (ctime is the kernel's clock at the last change: the command cannot set it back, unlike
     mtime, and renaming or writing a file sets it). The call is killed only if both exceed the
     cap. Writes by other processes *outside* the project (another test run, a build beside it)
     thus no longer count; they used to get calls killed "for writing into the project".
     While the trigger stays on, the walk repeats at most every WALK_EVERY_SECONDS (a walk of a
     large tree costs), in a thread, so the event loop keeps serving.

Honest limits:
  * other writers *inside* the project during the call count too (it is the project's growth);
  * a file changed during the call counts with all its blocks (rewriting a 100 MiB file counts
    100 MiB), but only once the filesystem as a whole also grew past the cap;
  * a directory the server cannot read (a non-root server; the command runs as the same uid and
    may chmod one) counts as over the cap once the trigger is on: fail closed;
  * between two samples a command can write at full speed: the overshoot is about its write
    rate x (SAMPLE_SECONDS + one walk); RLIMIT_FSIZE still bounds each file;
  * what was written stays: the call is stopped, not rolled back.
Inode floods (millions of empty files) are not counted.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import anyio

SAMPLE_SECONDS = 0.1
WALK_EVERY_SECONDS = 0.5
# ctime is stamped from the kernel's coarse clock (a tick, up to 10 ms, behind time.time()).
CTIME_SLACK = 1.0


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class _Unreadable(Exception):
    """A directory of the project could not be listed: its contents are unknown."""


def changed_bytes(project: Path, since: float) -> int:
    """Allocated bytes of the files in `project` (its filesystem only) changed at or after `since`
    (seconds since the epoch, compared with ctime), hard links counted once."""
    root_dev = os.lstat(project).st_dev
    seen: set[int] = set()
    total = 0
    pending = [str(project)]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue  # removed meanwhile: its blocks are freed
        except OSError as exc:
            raise _Unreadable(directory) from exc
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_dev != root_dev:
                continue  # another filesystem: statvfs of the project's does not see it either
            if stat.S_ISDIR(st.st_mode):
                pending.append(entry.path)
            if st.st_ctime >= since and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


class DiskWatch:
    def __init__(self, project: Path, cap_bytes: int) -> None:
        self.project = project
        self.cap_bytes = cap_bytes
        self.baseline = _used_bytes(project)
        self.since = time.time() - CTIME_SLACK
        self.exceeded = False

    def reason(self) -> str:
        return f"killed: wrote more than {self.cap_bytes} bytes into the project"

    def _attributed(self) -> bool:
        """Whether the project's own changed files are past the cap (see the module's step 2)."""
        try:
            return changed_bytes(self.project, self.since) > self.cap_bytes
        except _Unreadable:
            return True
        except OSError:
            return False  # the project itself is gone: nothing of it to cap

    async def watch(self, kill: anyio.CancelScope, first_sample_after: float = SAMPLE_SECONDS) -> None:
        """Cancel `kill` (the scope that waits for the command) once over the cap."""
        next_walk = 0.0
        delay = first_sample_after
        while True:
            await anyio.sleep(delay)
            delay = SAMPLE_SECONDS
            try:
                grown = _used_bytes(self.project) - self.baseline
            except OSError:
                continue
            if grown <= self.cap_bytes or time.monotonic() < next_walk:
                continue
            next_walk = time.monotonic() + WALK_EVERY_SECONDS
            if await anyio.to_thread.run_sync(self._attributed, abandon_on_cancel=True):
                self.exceeded = True
                kill.cancel()
                return
