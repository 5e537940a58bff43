"""ctypes bindings for the few Linux calls that Python 3.11's `os` lacks.

Used only on the helper side (the zygote and its forked children). Everything here is a thin
wrapper that raises `OSError` with the real errno, so callers can turn failures into a precise
`SandboxUnavailable` message.

Why ctypes and not python-prctl for prctl/capset: python-prctl builds (with `libcap-dev` and a C
compiler), but it is an sdist-only package last released in 2020, has no ambient-capability API,
and would cover only the prctl half: unshare, mount, pivot_root and mount_setattr need a libc
handle anyway. The five prctl options and capset used here are a few lines on that same handle,
and tests check their effect from /proc/self/status inside the sandbox.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

# The running interpreter already links libc; CDLL(None) reuses it without the slow
# ctypes.util.find_library (which runs ldconfig in a subprocess).
_libc = ctypes.CDLL(None, use_errno=True)

# Syscall numbers glibc 2.36 has no wrapper for. Numbers >= 424 are shared by all architectures.
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442, "open_tree": 428, "move_mount": 429, "rt_sigaction": 13},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442, "open_tree": 428, "move_mount": 429, "rt_sigaction": 134},
}

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_SYMLINK_NOFOLLOW = 0x100
STATX_INO = 0x100
STATX_MNT_ID = 0x1000  # Linux 5.8
STATX_MNT_ID_UNIQUE = 0x4000  # Linux 6.8: never reused; older kernels ignore the bit
_STATX_BYTES = 256
_STATX_INO_AT, _STATX_DEV_AT, _STATX_MNT_ID_AT = 32, 136, 144  # offsets in struct statx

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Root in the namespace gains no capabilities on execve, and that can never be switched back.
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7
LOCKED_SECUREBITS = (
    SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _KernelSigaction(ctypes.Structure):
    """struct sigaction as the rt_sigaction syscall takes it (x86_64 and arm64 alike)."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("restorer", ctypes.c_void_p),
        ("mask", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _syscall_nr(name: str) -> int:
    table = _SYSCALLS.get(platform.machine())
    if table is None:
        raise OSError(38, f"{name}: unsupported architecture {platform.machine()}")
    return table[name]


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _syscall_nr("pivot_root")
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root", new_root)


def mount_setattr(path: str, attr_set: int, *, recursive: bool) -> None:
    """Set per-mount flags; recursive covers submounts, which MS_REMOUNT cannot (kernel >= 5.12)."""
    attr = _MountAttr(attr_set, 0, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    nr = _syscall_nr("mount_setattr")
    result = _libc.syscall(
        ctypes.c_long(nr),
        ctypes.c_int(AT_FDCWD),
        _b(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(result, "mount_setattr", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """A file descriptor for the mount at `path` (a detached copy with OPEN_TREE_CLONE; 5.2+)."""
    nr = _syscall_nr("open_tree")
    return _check(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags)), "open_tree", path)


def move_mount_fd(fd: int, target: str) -> None:
    """Attach the detached mount tree `fd` at `target`."""
    nr = _syscall_nr("move_mount")
    result = _libc.syscall(
        ctypes.c_long(nr),
        ctypes.c_int(fd),
        b"",
        ctypes.c_int(AT_FDCWD),
        _b(target),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )
    _check(result, "move_mount", target)


def mount_identity(path: str) -> tuple[int, int, int, int]:
    """(mount id, device major, minor, inode) of `path` itself, symlinks not followed.

    The mount id says which mount the path resolves through: a bind that the kernel detached
    (its host file renamed over or unlinked) leaves the path resolving through the mount below.
    """
    buf = ctypes.create_string_buffer(_STATX_BYTES)
    mask = STATX_INO | STATX_MNT_ID | STATX_MNT_ID_UNIQUE
    _check(_libc.statx(AT_FDCWD, _b(path), AT_SYMLINK_NOFOLLOW, mask, buf), "statx", path)
    raw = buf.raw
    (ino,) = struct.unpack_from("=Q", raw, _STATX_INO_AT)
    major, minor, mnt_id = struct.unpack_from("=IIQ", raw, _STATX_DEV_AT)
    return mnt_id, major, minor, ino


GLIBC_INTERNAL_SIGNALS = (32, 33)  # SIGCANCEL, SIGSETXID: below glibc's SIGRTMIN (34)
_SIG_IGN = 1


def reset_ignored_internal_signals() -> None:
    """Give glibc's internal signals their default disposition if they are ignored.

    glibc's sigaction() refuses them (EINVAL), so Python's signal module cannot reset them; an
    ignored one survives execve like any other (a parent may ignore it with the raw syscall).
    A handler glibc installed for itself is left alone: execve resets handlers anyway.
    """
    nr = ctypes.c_long(_syscall_nr("rt_sigaction"))
    size = ctypes.c_size_t(8)  # the kernel's sigset_t
    for sig in GLIBC_INTERNAL_SIGNALS:
        old = _KernelSigaction()
        _check(_libc.syscall(nr, ctypes.c_int(sig), None, ctypes.byref(old), size), "rt_sigaction")
        if old.handler == _SIG_IGN:
            default = _KernelSigaction(None, 0, None, 0)
            _check(_libc.syscall(nr, ctypes.c_int(sig), ctypes.byref(default), None, size), "rt_sigaction")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option})")


def lock_out_capabilities() -> None:
    """Empty the bounding set and lock root out of regaining capabilities on execve.

    Needs CAP_SETPCAP but leaves the effective set alone, so the namespace's init can still
    mount after this; `clear_capabilities` finishes the job.
    """
    prctl(PR_SET_SECUREBITS, LOCKED_SECUREBITS)
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        prctl(PR_CAPBSET_DROP, cap)


def clear_capabilities() -> None:
    """Empty the ambient, inheritable, permitted and effective sets of this thread."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def load_seccomp_program(program: bytes) -> None:
    """Install a compiled classic-BPF seccomp program (what seccomp_load does, minus compiling).

    Requires no_new_privs (or CAP_SYS_ADMIN). Inherited by every child and kept across execve.
    """
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
