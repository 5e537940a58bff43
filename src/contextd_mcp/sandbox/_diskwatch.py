"""The cap on bytes one call adds to the project: a watcher on the project's filesystem.

No quota is usable here without privileges (ext4/xfs project quotas need root, quota support
in the filesystem and a project id on every file), so the server samples statvfs() of the
project every SAMPLE_SECONDS while the call runs and kills the call once the filesystem's used
space grew by more than the cap since the call started. Honest limits of that:

  * it counts every writer of that filesystem, not only this call: another process (or another
    call) writing there meanwhile counts too, so a call can be stopped early by someone else's
    writes; files deleted meanwhile count back;
  * it counts allocated blocks (delayed allocation included on ext4/xfs), so sparse files count
    only what they really use, and metadata counts too;
  * between two samples a command can write at full speed: the overshoot is about its write
    rate x SAMPLE_SECONDS (about 100 MB at 1 GB/s); RLIMIT_FSIZE still bounds each file;
  * what was written stays: the call is stopped, not rolled back.
Inode floods (millions of empty files) are not counted.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

SAMPLE_SECONDS = 0.1


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class DiskWatch:
    def __init__(self, project: Path, cap_bytes: int) -> None:
        self.project = project
        self.cap_bytes = cap_bytes
        self.baseline = _used_bytes(project)
        self.exceeded = False

    def reason(self) -> str:
        return f"killed: wrote more than {self.cap_bytes} bytes into the project"

    async def watch(self, kill: anyio.CancelScope) -> None:
        """Cancel `kill` (the scope that waits for the command) once over the cap."""
        while True:
            await anyio.sleep(SAMPLE_SECONDS)
            try:
                grown = _used_bytes(self.project) - self.baseline
            except OSError:
                continue
            if grown > self.cap_bytes:
                self.exceeded = True
                kill.cancel()
                return
