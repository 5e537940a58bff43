"""Which directories `bash` may treat as a project, and which daemon files it must never show.

The project is bound read-write into the sandbox. A root that is `/`, a system directory, the
daemon user's home, or any directory holding the daemon's data directory would hand the command
the host, the user's dotfiles, or the daemon's own store, tokens and socket: refused. The daemon's
files are also passed to the sandbox, which masks each one that lies under one of its binds
(the tokens file or the model cache may be configured anywhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from contextd_mcp.errors import InvalidInput

SYSTEM_DIRS = (
    "/etc", "/usr", "/var", "/boot", "/proc", "/sys", "/bin", "/sbin", "/dev", "/run",
    "/lib", "/lib32", "/lib64", "/libx32",
)  # fmt: skip
FIX = "open the agent in a repository or project directory, or set CONTEXTD_PROJECT_DIR to one"


@dataclass(frozen=True)
class ShellRoots:
    """The daemon's own paths, given by the composition root (nothing here reads the environment)."""

    data_dir: Path | None = None
    home_dirs: tuple[Path, ...] = ()  # the daemon user's home directory (passwd and $HOME)
    hidden: tuple[Path, ...] = ()  # data dir, socket, tokens file, audit log, model cache
    extra_protected: tuple[str, ...] = ()  # CONTEXTD_SANDBOX_PROTECT: more, never fewer
    # The daemon's own directories as real paths, resolved once: they are fixed for the daemon's
    # life (it holds the data directory's lock), and resolving them on every call was most of
    # this check's time (BENCHMARKS.md, session 5). Only the project is resolved per call.
    _real_homes: frozenset[str] = field(init=False, repr=False, compare=False)
    _real_data: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_real_homes", frozenset(os.path.realpath(home) for home in self.home_dirs))
        object.__setattr__(self, "_real_data", None if self.data_dir is None else os.path.realpath(self.data_dir))

    def check(self, root: Path) -> Path:
        """The project root as a real path, or InvalidInput naming `cwd` and saying what to do."""
        real = os.path.realpath(root)
        if real == "/":
            raise InvalidInput("cwd", f"bash cannot use / as its project (it would expose the whole host); {FIX}")
        for system in SYSTEM_DIRS:
            if _under(real, system):
                raise InvalidInput("cwd", f"bash cannot use {real} as its project: it is under the system directory {system}; {FIX}")
        if real in self._real_homes:
            raise InvalidInput("cwd", f"bash cannot use {real} as its project: it is the daemon user's home directory; {FIX}")
        if self._real_data is not None and _under(self._real_data, real):
            raise InvalidInput(
                "cwd", f"bash cannot use {real} as its project: it contains contextd's data directory {self.data_dir}; {FIX}"
            )
        if self._real_data is not None and _under(real, self._real_data):
            raise InvalidInput("cwd", f"bash cannot use {real} as its project: it is inside contextd's data directory; {FIX}")
        return Path(real)


def _under(path: str, parent: str) -> bool:
    """Whether ``path`` is ``parent`` or inside it (both real paths): Path.is_relative_to on strings."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def extra_protected(value: str | None) -> tuple[str, ...]:
    """CONTEXTD_SANDBOX_PROTECT: comma-separated paths relative to the project ("dir/" for a tree)."""
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


