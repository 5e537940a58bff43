"""Paths inside the project that programs on the host execute or trust: read-only in the sandbox.

Server side: `prepare(project, extra, state_dir)` decides what init mounts, and creates a
placeholder for every protected path that does not exist; `release` removes the placeholders
again. Init side: `_rootfs.protect` binds each path read-only ("ro") and pins its parent
directories ("pin", a read-write bind of a directory onto itself), so that within the sandbox no
protected path, nor any directory above one, can be removed, renamed or replaced: a mount point
is busy in its own mount namespace, and every sandbox on the project mounts the same paths.

Why placeholders. A bind needs something to mount on, and a missing path left missing could be
created by the command (a `.vscode/tasks.json` that the host's editor then runs). Refusing the
write by other means needs a name-level rule no kernel interface offers (seccomp sees no paths,
Landlock grants per directory). Codex meets the same problem the same way: bubblewrap creates
the mount point, and Codex removes it after the run if it is still empty, counting concurrent
users (codex-rs/linux-sandbox/src/bwrap_mount_cleanup.rs). Here:

- a placeholder is an empty directory, even for a file name: git shows no empty directory, so
  `git status` and `git add -A` inside the sandbox see nothing new (an empty `.bashrc` file would
  be committed by `git add -A`). Inside `.git` (which git never lists) a file name gets an empty
  file, what git expects there. A project that is no repository gets an empty `.git` directory,
  read-only, so `git init` inside fails clearly instead of creating a repository the host trusts.
- it exists on the host while a command runs on the project, and for `linger` seconds after
  the last one (`release(plan, state_dir, linger)`): reference-counted across concurrent calls
  of this process; a call that starts while it lingers holds it again iff it is still the same,
  empty inode that was made (one lstat and one getdents instead of a mkdir + rmdir, which cost
  0.28 ms each here: 14 of them are 4.8 ms of a call on a fresh repository). Once nobody has
  held it for `linger` seconds (a reaper thread), at `release_all()` (the server's shutdown, and
  at exit), or at once with linger 0, it is removed iff still that same empty inode (a file the
  host put there meanwhile keeps it). Journaled in `state_dir` (one append-only file per process)
  so that a crash's leftovers, lingering ones included, are swept by the next run.

While it lingers no sandbox is running on the project, so only the host can change it: a host
process sees an empty directory (or empty file inside `.git`); one that fills or replaces it
makes it the host's own path, which the next call mounts read-only like any real one and which
is never removed.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._types import SandboxInputError

# A trailing "/" marks a directory (read-only with everything under it).
PROTECTED_PATHS: tuple[str, ...] = (
    ".git/config", ".git/config.worktree", ".git/hooks/", ".git/info/",
    ".gitmodules", ".gitconfig",
    ".bashrc", ".bash_profile", ".bash_login", ".zshrc", ".zprofile", ".zshenv", ".profile",
    ".ripgreprc", ".mcp.json", ".claude.json",
    ".claude/", ".vscode/", ".idea/",
)  # fmt: skip
# In each submodule's git directory (.git/modules/<name>/, names may hold slashes).
MODULE_PROTECTED_PATHS = ("config", "hooks/")
MAX_MODULE_DEPTH = 4  # .git/modules/a/modules/b/... deeper than this is not looked at
MAX_MODULES = 64
MAX_EXTRA_PATHS = 64
MAX_GITMODULES_BYTES = 64 * 1024
JOURNAL_DIR = "sandbox-placeholders"
MAX_LINGER_SECONDS = 3600.0  # an unused placeholder is removed after at most this long
CTIME_TRUST_NS = 2_000_000_000  # > a clock tick and a 1 s timestamp unit (see _still_placeholder)


@dataclass
class Plan:
    """What init mounts (path, "pin" | "ro"), parents first; the placeholders this call holds."""

    mounts: list[tuple[str, str]] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)


def check_extra(extra: Sequence[str]) -> tuple[str, ...]:
    """The operator's additional protected paths: relative, inside the project, no `..`."""
    if len(extra) > MAX_EXTRA_PATHS:
        raise ValueError(f"at most {MAX_EXTRA_PATHS} extra protected paths, got {len(extra)}")
    for rel in extra:
        parts = rel.rstrip("/").split("/")
        if not rel or rel.startswith("/") or "\0" in rel or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"protected path {rel!r} must be relative to the project, without '.' or '..'")
    return tuple(extra)


def check_linger(seconds: float) -> float:
    """How long an unused placeholder may stay: 0 (removed at once) to MAX_LINGER_SECONDS."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_LINGER_SECONDS:
        raise ValueError(f"placeholder linger must be between 0 and {MAX_LINGER_SECONDS:g} seconds, got {seconds!r}")
    return float(seconds)


def _targets(project: Path, extra: Sequence[str]) -> list[str]:
    """Every protected relative path for this project (".git" itself decides the .git/* part)."""
    names = [p for p in PROTECTED_PATHS if not p.startswith(".git/")] + list(extra)
    try:
        git = os.lstat(project / ".git")
    except FileNotFoundError:
        return [".git/", *names]  # no repository: a read-only empty .git keeps it so
    if stat.S_ISLNK(git.st_mode):
        raise SandboxInputError("working_dir", "the project's .git is a symbolic link; the sandbox protects only a real .git")
    if not stat.S_ISDIR(git.st_mode):
        return [".git", *names]  # a worktree or submodule pointer: the file itself
    names += [p for p in PROTECTED_PATHS if p.startswith(".git/")]
    names += [f"{module}/{p}" for module in _module_git_dirs(project) for p in MODULE_PROTECTED_PATHS]
    for checkout in _submodule_checkouts(project):
        # A checked-out submodule is a project of its own to the host's tools: the same names,
        # its `.git` pointer file included; only where the checkout exists (no placeholders).
        names += [f"{checkout}/{p}" for p in (".git", *PROTECTED_PATHS) if not p.startswith(".git/")
                  and os.path.lexists(project / checkout / p.rstrip("/"))]  # fmt: skip
    return names


def _submodule_checkouts(project: Path) -> list[str]:
    """`path = ...` entries of .gitmodules that are directories inside the project."""
    try:
        with open(project / ".gitmodules", encoding="utf-8", errors="replace") as f:
            text = f.read(MAX_GITMODULES_BYTES)
    except OSError:
        return []  # missing, or a placeholder directory
    found = []
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        rel = value.strip().strip('"').rstrip("/")
        if key.strip() != "path" or not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        if os.path.isdir(project / rel) and not os.path.islink(project / rel):
            found.append(rel)
    return found[:MAX_MODULES]


def _module_git_dirs(project: Path) -> list[str]:
    found: list[str] = []
    pending = [(".git/modules", 0)]
    while pending and len(found) < MAX_MODULES:
        rel, depth = pending.pop()
        try:
            entries = list(os.scandir(project / rel))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and depth < MAX_MODULE_DEPTH:
                sub = f"{rel}/{entry.name}"
                if os.path.isfile(project / sub / "HEAD"):
                    found.append(sub)
                    pending.append((f"{sub}/modules", depth + 1))
                else:
                    pending.append((sub, depth + 1))  # a module name with a slash
    return found[:MAX_MODULES]


def prepare(project: Path, extra: Sequence[str], state_dir: Path | None) -> Plan:
    """Mounts for every protected path; placeholders for the missing ones. Raises ValueError."""
    plan = Plan()
    created: list[dict[str, object]] = []
    with _lock:
        _sweep_once(state_dir)
    try:
        _plan_all(project, extra, plan, created, create=True)
    except BaseException:
        _log_created(state_dir, created)
        release(plan, state_dir)
        raise
    _log_created(state_dir, created)
    return plan


def prepare_nowait(project: Path, extra: Sequence[str], state_dir: Path | None) -> Plan | None:
    """`prepare` without blocking, for the event loop: None (nothing held) if it would have to
    wait for the lock, sweep a journal, or create a placeholder; call `prepare` in a thread then.
    With placeholders that linger, that is only the first call on a project. Raises ValueError."""
    if not _lock.acquire(blocking=False):
        return None
    try:
        if state_dir is not None and str(state_dir) not in _swept:
            return None
        plan = Plan()
        try:
            _plan_all(project, extra, plan, [], create=False)
        except _WouldCreate:
            _unhold(plan)
            return None
        except BaseException:
            _unhold(plan)
            raise
        return plan
    finally:
        _lock.release()


class _WouldCreate(Exception):
    """prepare_nowait found a missing protected path with no placeholder to hold."""


def _plan_all(project: Path, extra: Sequence[str], plan: Plan, created: list[dict[str, object]], *, create: bool) -> None:
    pins: set[str] = set()
    # Plain strings, not Path objects: this runs on every call, ~20 paths of a few parts each,
    # and pathlib's parsing was most of its time (BENCHMARKS.md, session 5).
    root = str(project).rstrip("/") + "/"
    for rel in _targets(project, extra):
        _plan_one(root, rel, plan, pins, created, create)
    plan.mounts = sorted(set(plan.mounts), key=lambda m: (m[0].count("/"), m[1] != "pin", m[0]))


def _unhold(plan: Plan) -> None:
    """Under _lock: give back holds prepare_nowait took (all on existing placeholders, which
    keep their linger deadline)."""
    for key in plan.placeholders:
        hold = _held.get(key)
        if hold is not None and hold.users > 0:
            hold.users -= 1
    plan.placeholders.clear()


def _log_created(state_dir: Path | None, created: list[dict[str, object]]) -> None:
    with _lock:
        _log(state_dir, created)


def _plan_one(
    root: str, rel: str, plan: Plan, pins: set[str], created: list[dict[str, object]], create: bool
) -> None:
    """``root``: the project's real path with a trailing slash."""
    parts = rel.rstrip("/").split("/")
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        path = root + sub
        last = depth == len(parts)
        # Inside .git, git expects a file where a file name is; elsewhere a directory hides it.
        as_file = last and not rel.endswith("/") and parts[0] == ".git" and depth > 1
        st = _lstat_or_hold(path, as_file, created, create)
        if st is None:
            plan.placeholders.append(path)
            plan.mounts.append((path, "ro"))
            return
        if stat.S_ISLNK(st.st_mode):
            raise ValueError(
                f"the project's {sub} is a symbolic link, which the sandbox cannot keep read-only; "
                "replace it with the real file or directory"
            )
        if last:
            plan.mounts.append((path, "ro"))
            return
        if not stat.S_ISDIR(st.st_mode):
            return  # a file where a directory would be: nothing can live under it
        if path not in pins:
            pins.add(path)
            plan.mounts.append((path, "pin"))


# --- placeholders ----------------------------------------------------------------------------

@dataclass
class _Hold:
    """A placeholder this process made: its inode, its users, and once unused, until when it stays."""

    users: int
    dev: int
    ino: int
    state_dir: Path | None  # where its removal is journaled
    idle_until: float = 0.0  # time.monotonic() deadline while users == 0
    # A directory's st_ctime_ns when it was last seen empty, long enough after that ctime for
    # any later change to show as another ctime (see _still_placeholder); None: list it.
    empty_at_ctime: int | None = None


_lock = threading.RLock()  # re-entered by prepare_nowait, which holds it throughout
_reaped = threading.Condition(_lock)  # notified when a placeholder starts to linger
_reaper: threading.Thread | None = None
_reaper_due: float | None = None  # when the reaper next wakes up by itself; None: not sleeping
_held: dict[str, _Hold] = {}
_swept: set[str] = set()
_journals: dict[str, int] = {}  # state_dir -> fd of this process's append-only journal


def _log(state_dir: Path | None, entries: list[dict[str, object]]) -> None:
    """Append to this process's journal, `<state_dir>/sandbox-placeholders/<pid>.jsonl`: one
    write per call (a file per placeholder cost a create and an unlink each, on every call)."""
    if state_dir is None or not entries:
        return
    fd = _journals.get(str(state_dir))
    if fd is None:
        directory = state_dir / JOURNAL_DIR
        directory.mkdir(mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = _journals[str(state_dir)] = os.open(directory / f"{os.getpid()}.jsonl", flags, 0o600)
    os.write(fd, "".join(json.dumps(e) + "\n" for e in entries).encode())


def _lstat_or_hold(path: str, as_file: bool, created: list[dict[str, object]], create: bool) -> os.stat_result | None:
    """The path's lstat if something real is there; None once this call holds a placeholder there.

    A placeholder another call holds is held again under the same lock that `release` removes it
    under: looked at outside the lock, it could be taken for a real path and then removed by that
    call's release before this call's init binds it.
    """
    for _ in range(3):  # a real path the host removes meanwhile: look again
        if _hold_placeholder(path, as_file, created, create):
            return None
        try:
            return os.lstat(path)
        except FileNotFoundError:
            continue
    raise ValueError(f"{path} keeps appearing and disappearing; try again")


def _hold_placeholder(path: str, as_file: bool, created: list[dict[str, object]], create: bool = True) -> bool:
    """Hold the placeholder at ``path``, ours already or made now; False if a real path is there."""
    key = path
    with _lock:
        hold = _held.get(key)
        if hold is not None and (hold.users > 0 or _still_placeholder(key, hold)):
            hold.users += 1
            return True
        if not create:
            if os.path.lexists(path):
                return False
            raise _WouldCreate(key)
        if hold is not None:  # lingered, and the host changed it meanwhile: the host's now
            del _held[key]
            _log(hold.state_dir, [{"del": key}])
        try:
            if as_file:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
            else:
                os.mkdir(path, 0o755)
        except FileExistsError:
            return False
        st = os.lstat(path)
        _held[key] = _Hold(1, st.st_dev, st.st_ino, None)
        created.append({"add": key, "dev": st.st_dev, "ino": st.st_ino})
        return True


def release(plan: Plan, state_dir: Path | None = None, linger: float = 0.0) -> None:
    """Drop this call's hold on its placeholders. Those nobody holds any more are removed at
    once (linger 0), or stay for `linger` seconds for the next call on the project to hold again."""
    with _lock:
        _release_locked(plan, state_dir, linger)


def release_nowait(plan: Plan, state_dir: Path | None, linger: float) -> bool:
    """`release` without blocking, for the event loop: False (nothing done) if it would wait for
    the lock or remove a placeholder (linger 0); call `release` in a thread then."""
    if linger <= 0 or not _lock.acquire(blocking=False):
        return False
    try:
        _release_locked(plan, state_dir, linger)
    finally:
        _lock.release()
    return True


def _release_locked(plan: Plan, state_dir: Path | None, linger: float) -> None:
    linger = min(max(linger, 0.0), MAX_LINGER_SECONDS)  # checked by `check_linger` before the call
    removed: list[dict[str, object]] = []
    until = time.monotonic() + linger
    for key in plan.placeholders:
        hold = _held.get(key)
        if hold is None or hold.users == 0:
            continue
        hold.users -= 1
        if hold.users > 0:
            continue
        hold.state_dir = state_dir
        if linger > 0:
            hold.idle_until = until
            continue
        del _held[key]
        _remove_if_untouched(key, hold.dev, hold.ino)
        removed.append({"del": key})
    plan.placeholders.clear()
    _log(state_dir, removed)
    if linger > 0:
        _start_reaper(until)


def release_all() -> None:
    """Remove every placeholder no call holds, lingering or not: the server is shutting down."""
    with _lock:
        _reap(float("inf"))


def _still_placeholder(path: str, hold: _Hold) -> bool:
    """The lingering placeholder is as made: same inode, and empty (the host may have filled it).

    A directory is listed only if its ctime moved since it was last seen empty (a dozen
    listings were ~0.15 ms of every call): adding, removing or renaming an entry sets the
    directory's ctime to the kernel's (coarse) clock, which nobody can set back without root
    changing the system clock. Trusted only once that ctime is CTIME_TRUST_NS old, so a change
    within the same clock tick, or within one timestamp unit on a coarse filesystem, still shows.
    Either way init binds a placeholder read-only, and its removal refuses a non-empty one.
    """
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) != (hold.dev, hold.ino):
            return False
        if stat.S_ISDIR(st.st_mode):
            if hold.empty_at_ctime == st.st_ctime_ns:
                return True
            with os.scandir(path) as entries:
                empty = next(entries, None) is None
            if empty and time.time_ns() - st.st_ctime_ns > CTIME_TRUST_NS:
                hold.empty_at_ctime = st.st_ctime_ns
            return empty
        return stat.S_ISREG(st.st_mode) and st.st_size == 0
    except OSError:
        return False


def _reap(now: float) -> float | None:
    """Under _lock: remove the unused placeholders due by `now`; when the next one is due."""
    removed: dict[Path | None, list[dict[str, object]]] = {}
    for key, hold in list(_held.items()):
        if hold.users == 0 and hold.idle_until <= now:
            del _held[key]
            try:
                _remove_if_untouched(key, hold.dev, hold.ino)
            except OSError:
                continue  # left in the journal: the next run's sweep tries again
            removed.setdefault(hold.state_dir, []).append({"del": key})
    for state_dir, entries in removed.items():
        _log(state_dir, entries)
    return min((h.idle_until for h in _held.values() if h.users == 0), default=None)


def _start_reaper(due: float) -> None:
    """Under _lock: make sure a thread removes lingering placeholders when they are due.

    The reaper is woken only if it sleeps past `due`: with one linger for all, a call's
    placeholders are due after those already lingering, and waking it on every call put a
    thread switch (and the GIL) in the middle of the next call."""
    global _reaper
    if _reaper is not None and _reaper_due is not None and _reaper_due <= due:
        return
    _reaped.notify()
    if _reaper is None:
        _reaper = threading.Thread(target=_reap_forever, name="contextd-placeholder-reaper", daemon=True)
        _reaper.start()


def _reap_forever() -> None:
    global _reaper, _reaper_due
    with _lock:
        while True:
            due = _reap(time.monotonic())
            if due is None:
                _reaper, _reaper_due = None, None  # the next lingering placeholder starts a new one
                return
            _reaper_due = due
            _reaped.wait(max(0.0, due - time.monotonic()))
            _reaper_due = None


atexit.register(release_all)


def _remove_if_untouched(path: str, dev: int, ino: int) -> None:
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) != (dev, ino):
            return  # replaced by the host meanwhile: not ours any more
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)  # fails, and keeps it, if the host put something in it
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
            raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_once(state_dir: Path | None) -> None:
    """Remove the placeholders a crashed process left: replay each journal of a dead pid (or of
    our own pid, before we wrote ours: a predecessor's, pid reused) and delete it."""
    if state_dir is None or str(state_dir) in _swept:
        return
    _swept.add(str(state_dir))
    directory = state_dir / JOURNAL_DIR
    for journal in directory.glob("*.jsonl") if directory.is_dir() else ():
        try:
            pid = int(journal.stem)
            if pid != os.getpid() and _alive(pid):
                continue
            live: dict[str, tuple[int, int]] = {}
            for line in journal.read_text().splitlines():
                entry = json.loads(line)
                if "add" in entry:
                    live[entry["add"]] = (entry["dev"], entry["ino"])
                else:
                    live.pop(entry.get("del"), None)
            for path, (dev, ino) in live.items():
                _remove_if_untouched(path, dev, ino)
            journal.unlink()
        except (OSError, ValueError, KeyError, TypeError):
            continue
