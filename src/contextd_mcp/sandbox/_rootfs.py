"""The filesystem the command sees, built by the namespace's init before it spawns the command.

Layout (every path not listed here simply does not exist inside):

    /                 tmpfs skeleton, read-only once built
    /usr /bin /sbin /lib* read-only binds (merged-/usr symlinks are recreated as symlinks)
    /etc              tmpfs holding read-only binds of an allowlist (no shadow, ssh, sudoers)
    /dev              null zero full random urandom tty (binds), fd/std* links, private /dev/shm
    /proc             a fresh procfs of the new pid namespace; /proc/sys & co read-only
    /tmp              private tmpfs, size-limited
    <project>         the project, read-write, at its real path (mounted last, so it wins)
      .git/config ...  read-only binds of the protected paths (see `_protect`), parents pinned
    <daemon files>    an empty read-only tmpfs (directory) or /dev/null (file) over each one

`prepare` builds everything but the request's parts while a pre-forked worker waits (off the
critical path); `finish` adds /tmp, the project and the limits once the request is known.
`prepare_project` makes `finish`'s mounts ahead too, for the project the server expects; then
`finish` only re-checks them against the call's request and mounts what differs. A bind
pins what it binds, so a host file replaced by rename (say /etc/passwd after useradd) shows its
old content in a warm worker: for at most helper.MAX_WARM_SECONDS.

The server may run as root, and root inside the user namespace is still the owner of root's files
on disk (DAC is by kernel uid), so hiding is the only protection for root-only files: hence the
/etc allowlist rather than a read-only bind of all of /etc.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _libc as c

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_ALLOWLIST = (
    "passwd", "group", "hosts", "host.conf", "nsswitch.conf", "networks", "protocols",
    "services", "gai.conf", "shells", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "localtime", "timezone", "alternatives", "ca-certificates", "ca-certificates.conf",
    "ssl/certs", "ssl/openssl.cnf", "pki/tls/certs", "pki/ca-trust", "crypto-policies",
    "bash.bashrc", "profile", "profile.d", "inputrc", "environment", "os-release",
    "debian_version", "lsb-release", "mime.types", "magic", "magic.mime", "locale.alias",
    "locale.conf", "locale.gen", "manpath.config", "python3", "perl", "gitconfig",
    "vim", "nanorc", "terminfo", "fonts",
)  # fmt: skip
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}  # fmt: skip
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus")
# Where the skeleton is assembled. Only our private mount namespace sees the tmpfs there, and
# after pivot_root the host's /tmp is reachable again under OLD_ROOT.
STAGING = "/tmp"
OLD_ROOT = "/.oldroot"
# /etc, /dev and /proc inside are not the host's: a project cannot live there.
FORBIDDEN_PROJECT_PARENTS = ("/etc", "/dev", "/proc", "/sys")
RO = c.MOUNT_ATTR_RDONLY | c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR_NODEV


class SetupError(Exception):
    """A step of the sandbox set-up failed; the message names the step and, if known, the fix."""


class StaleView(Exception):
    """What got bound is not the project the server saw: this worker's copy of the host's
    mounts predates a mount (or unmount) of the project (possible only where the host's mounts
    are private; where they are shared, OLD_ROOT follows them, see `prepare`), or a component of
    the path was swapped meanwhile. Nothing has run; the caller retries once on a fresh worker."""


def _setattr(path: str, attrs: int, *, recursive: bool) -> None:
    try:
        c.mount_setattr(path, attrs, recursive=recursive)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        # Kernel < 5.12: remount the top mount only, keeping flags the kernel locked on it.
        st = os.statvfs(path)
        keep = st.f_flag & (c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_RDONLY)
        flags = keep | c.MS_REMOUNT | c.MS_BIND
        flags |= c.MS_RDONLY if attrs & c.MOUNT_ATTR_RDONLY else 0
        flags |= c.MS_NOSUID if attrs & c.MOUNT_ATTR_NOSUID else 0
        flags |= c.MS_NODEV if attrs & c.MOUNT_ATTR_NODEV else 0
        c.mount(None, path, None, flags)


def _bind(src: str, dst: str, attrs: int = RO) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        os.close(os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    c.mount(src, dst, None, c.MS_BIND | c.MS_REC)
    _setattr(dst, attrs, recursive=True)


def _copy_entry(src: str, dst: str) -> None:
    """Recreate a symlink as a symlink (it resolves inside the new root), bind anything else."""
    if os.path.islink(src):
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        os.symlink(os.readlink(src), dst)
    elif os.path.exists(src):
        _bind(src, dst)


def _tmpfs(path: str, options: str, flags: int = c.MS_NOSUID | c.MS_NODEV) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
    c.mount("tmpfs", path, "tmpfs", flags, options)


def _mount_dev(root: str) -> None:
    dev = root + "/dev"
    _tmpfs(dev, "mode=0755,size=64k,nr_inodes=64", c.MS_NOSUID | c.MS_NOEXEC)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            _bind("/dev/" + name, f"{dev}/{name}", c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR_NOEXEC)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{dev}/{name}")
    _tmpfs(dev + "/shm", "mode=1777,size=64m")


def _mount_proc(root: str) -> None:
    proc = root + "/proc"
    os.mkdir(proc)
    try:
        c.mount("proc", proc, "proc", c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC)
    except OSError as exc:
        raise SetupError(
            f"cannot mount a private /proc ({exc.strerror}); this happens when the host's /proc "
            "is partly masked, as inside an unprivileged container"
        ) from exc


def prepare() -> int | None:
    """Everything that does not depend on the request: done while a warm worker waits.

    Leaves the process in the new root, with the host's tree reachable for the project bind
    either through the returned fd (a detached copy, see `_clone_host`) or, where the kernel
    cannot clone from one, at OLD_ROOT until `finish` detaches it. Nothing untrusted runs in
    between. The caller keeps the fd until it exits (see `_clone_host`).
    """
    # Slave, not private: nothing of ours reaches the host, but the host's later mounts reach
    # OLD_ROOT, so a project on a filesystem mounted after this worker warmed up is still seen.
    # (The detached copy gets no such events: then StaleView has the call retried on a fresh
    # worker.)
    c.mount(None, "/", None, c.MS_REC | c.MS_SLAVE)
    host = _clone_host()
    root = STAGING
    c.mount("tmpfs", root, "tmpfs", c.MS_NOSUID | c.MS_NODEV, "mode=0755,size=1m")
    for name in SYSTEM_DIRS:
        _copy_entry("/" + name, f"{root}/{name}")
    _tmpfs(root + "/etc", "mode=0755,size=256k")
    for name in ETC_ALLOWLIST:
        _copy_entry("/etc/" + name, f"{root}/etc/{name}")
    _setattr(root + "/etc", RO, recursive=False)
    _mount_dev(root)
    _setattr(root + "/dev", RO | c.MOUNT_ATTR_NOEXEC, recursive=False)
    _mount_proc(root)
    os.mkdir(root + "/tmp", 0o1777)
    os.mkdir(root + OLD_ROOT, 0o700)
    # The sandbox's own tree, though, stays as built: no host mount event may land in it.
    c.mount(None, root, None, c.MS_REC | c.MS_PRIVATE)
    os.chdir(root)
    c.pivot_root(".", OLD_ROOT.lstrip("/"))
    os.chdir("/")
    # These depend on no request, so a warm worker does them ahead; /proc/sys waits for `finish`,
    # which writes the namespace's pid_max first.
    _proc_readonly(tuple(name for name in PROC_READONLY if name != "sys"))
    if host is not None:
        _detach_old_root()
    return host


def _proc_readonly(names: tuple[str, ...]) -> None:
    for name in names:
        path = f"/proc/{name}"
        if os.path.exists(path):
            c.mount(path, path, None, c.MS_BIND | c.MS_REC)
            _setattr(path, RO | c.MOUNT_ATTR_NOEXEC, recursive=True)


def _clone_host() -> int | None:
    """A detached copy of the host's mount tree, or None where the kernel cannot clone from one.

    Unmounting the old root waits for an RCU grace period (1.5-5 ms here, more under load): with
    the copy, `finish` clones the project out of it and the old root goes in `prepare`, off the
    request's path. Closing the copy's fd would pay the same wait, so init keeps it until it
    exits. It cannot reach the command: it is close-on-exec and the spawn closes every fd but
    0-2; /proc/1/fd of init (not dumpable) needs CAP_SYS_PTRACE, which the command never has;
    and the seccomp filter refuses open_tree, move_mount, mount and pidfd_getfd. Cloning from a
    detached copy needs Linux 6.15 or so; before, the probe below fails and OLD_ROOT is used.
    """
    flags = c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC
    try:
        host = c.open_tree(c.AT_FDCWD, "/", flags | c.AT_RECURSIVE)
    except OSError:
        return None
    try:
        # Recursive: a lone copy of a mount with locked children (all of them, in our user
        # namespace) is refused whatever the kernel.
        os.close(c.open_tree(host, "", flags | c.AT_EMPTY_PATH | c.AT_RECURSIVE))
    except OSError:
        os.close(host)
        return None
    return host


def _detach_old_root() -> None:
    c.umount2(OLD_ROOT, c.MNT_DETACH)
    os.rmdir(OLD_ROOT)


def _bind_project(host: int | None, project: str) -> None:
    """The host's project (with its submounts) at the same path inside."""
    if host is None:
        c.mount(OLD_ROOT + project, project, None, c.MS_BIND | c.MS_REC)
        return
    tree = c.open_tree(host, project.lstrip("/"), c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC | c.AT_RECURSIVE)
    try:
        c.move_mount_fd(tree, project)
    finally:
        os.close(tree)  # attached now: closing unmounts nothing


def finish(
    project: str,
    project_id: tuple[int, int] | None,
    tmp_bytes: int,
    pid_max: int,
    protected: list[tuple[str, str]] = [],  # noqa: B006 - never mutated
    masked: list[str] = [],  # noqa: B006 - never mutated
    host: int | None = None,
    prepared: Prepared | None = None,
) -> bool:
    """The request's part: /tmp, pid_max, the project; then cut the way back to the host, and
    make the protected paths read-only and the daemon's own files invisible. With `prepared`
    (see `prepare_project`) only what differs from it is done. True if `prepared` was used."""
    key = (project, project_id, tmp_bytes, pid_max)
    used = prepared is not None and prepared.key == key and _still_the_project(project, project_id)
    if prepared is not None and not used:
        _undo_prepared(prepared.project)
    if used:
        assert prepared is not None
        protect(_changed_binds(protected, prepared.binds))
        mask([path for path in masked if prepared.masks.get(path) != _identity(path)])
    else:
        _request_mounts(project, project_id, tmp_bytes, pid_max, host)
        protect(protected)
        mask(masked)
    _setattr("/", RO, recursive=False)
    return used


def _request_mounts(project: str, project_id: tuple[int, int] | None, tmp_bytes: int, pid_max: int, host: int | None) -> None:
    _tmpfs("/tmp", f"mode=1777,size={tmp_bytes},nr_inodes=65536")
    try:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(str(pid_max))
    except OSError:
        pass  # kernel < 6.14 has no per-namespace pid_max; RLIMIT_NPROC still bounds non-root
    _proc_readonly(("sys",))
    # The project last, so it shows through whatever is mounted on its parents (/tmp, /usr).
    os.makedirs(project, mode=0o755, exist_ok=True)
    _bind_project(host, project)
    if project_id is not None:
        # Checked on what was bound, not before: also defeats a path swapped in between.
        st = os.stat(project)
        if (st.st_dev, st.st_ino) != project_id:
            raise StaleView(project)
    c.mount(None, project, None, c.MS_REC | c.MS_PRIVATE)
    _setattr(project, c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR_NODEV, recursive=True)
    if host is None:
        _detach_old_root()


# --- the per-project part ahead of the call ----------------------------------------------------

Identity = tuple[int, int, int, int]  # see _libc.mount_identity


@dataclass
class Prepared:
    """What `prepare_project` mounted while the worker waited, for the project the daemon
    expects (`project`): key (project, project_id, tmp_bytes, pid_max), None if preparing failed
    midway; and the identity of each protected bind and mask as made."""

    project: str
    key: tuple[str, tuple[int, int] | None, int, int] | None
    binds: dict[tuple[str, str], Identity] = field(default_factory=dict)
    masks: dict[str, Identity] = field(default_factory=dict)


def prepare_project(
    project: str,
    project_id: tuple[int, int] | None,
    tmp_bytes: int,
    pid_max: int,
    protected: list[tuple[str, str]],
    masked: list[str],
    host: int | None,
    pending: Callable[[], bool] = lambda: False,
) -> Prepared | None:
    """`finish`'s mounts for the last call's project, made ahead (None: not possible here).

    The call's own plan stays authoritative: `finish` re-checks each bind against it. Only with
    a detached copy of the host (`host`): then nothing of the host but the project is reachable
    from here, as in `finish`; with OLD_ROOT attached a symlink could lead out of the sandbox.
    Stops as soon as `pending()` says the call has come: it would wait for the rest, which it
    does itself at the same cost (what is left is simply not recorded as made).
    """
    if host is None or pending():
        return None
    prepared = Prepared(project, key=None)
    try:
        _request_mounts(project, project_id, tmp_bytes, pid_max, host)
    except (OSError, SetupError, StaleView):
        return prepared  # the call undoes what was done, then does it all
    prepared.key = (project, project_id, tmp_bytes, pid_max)
    for path, how in protected:
        if pending():
            return prepared
        try:
            protect([(path, how)])
            prepared.binds[(path, how)] = c.mount_identity(path)
        except (OSError, SetupError):
            continue  # missing now (a placeholder not made yet), or a symlink: left to the call
    for path in masked:
        if pending():
            return prepared
        try:
            mask([path])
            prepared.masks[path] = c.mount_identity(path)
        except OSError:
            continue
    return prepared


def _identity(path: str) -> Identity | None:
    try:
        return c.mount_identity(path)
    except OSError:
        return None


def _still_the_project(project: str, project_id: tuple[int, int] | None) -> bool:
    """The prepared project bind still shows the project the daemon saw (the host may have
    replaced the directory, which detaches a bind on it)."""
    try:
        st = os.stat(project)
    except OSError:
        return False
    return project_id is None or (st.st_dev, st.st_ino) == project_id


def _changed_binds(protected: list[tuple[str, str]], binds: dict[tuple[str, str], Identity]) -> list[tuple[str, str]]:
    """The call's protected paths whose prepared bind is missing or no longer in place.

    Since Linux 3.18 a bind on a file or directory that the host renames over or unlinks is
    detached in every other mount namespace: the path then resolves through the mount below
    (the project's), so its mount id differs from the one recorded; a new file in its place
    has a new inode. Everything under a changed path is bound again too: a new bind of a
    parent would otherwise cover the prepared binds below it. All identities are read before
    any new bind, so a new mount cannot take a detached one's id.
    """
    now = [(path, how, _identity(path)) for path, how in protected]
    changed: list[tuple[str, str]] = []
    for path, how, identity in now:
        prepared = binds.get((path, how))
        under = any(path.startswith(parent.rstrip("/") + "/") for parent, _ in changed)
        if prepared is None or identity != prepared or under:
            changed.append((path, how))
    return changed


def _undo_prepared(project: str) -> None:
    """Remove what `prepare_project` mounted (the project with its binds, /proc/sys, /tmp) so the
    call's own mounts can be made: the call is not for the prepared project."""
    for path in (project, "/proc/sys", "/tmp"):
        try:
            c.umount2(path, c.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise


def protect(mounts: list[tuple[str, str]]) -> None:
    """Bind each path onto itself: "pin" keeps it writable, "ro" makes it read-only throughout.

    After the way back to the host is cut, so a path swapped for a symlink can reach nothing but
    the sandbox's own tree; and the bind goes through an O_PATH descriptor opened without
    following symlinks, so it lands on what was checked, never on a link's target.
    """
    for path, how in mounts:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise SetupError(f"protected path {path} is a symbolic link")
            c.mount(f"/proc/self/fd/{fd}", f"/proc/self/fd/{fd}", None, c.MS_BIND | c.MS_REC)
        finally:
            os.close(fd)
        attrs = RO if how == "ro" else c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR_NODEV
        _setattr(path, attrs, recursive=how == "ro")


def mask(paths: list[str]) -> None:
    """Hide each path that exists in the sandbox: an empty read-only tmpfs over a directory,
    /dev/null (read-only) over anything else. A path outside every bind does not exist here."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            flags = c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_RDONLY
            c.mount("tmpfs", path, "tmpfs", flags, "size=4k,nr_inodes=1,mode=0500")
        elif not stat.S_ISLNK(mode):
            c.mount("/dev/null", path, None, c.MS_BIND)
            _setattr(path, RO | c.MOUNT_ATTR_NOEXEC, recursive=False)
