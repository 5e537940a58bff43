"""The seccomp profile: allow by default, refuse with EPERM what a build or test never needs.

Default-allow keeps ordinary tools working; the list below removes the kernel surface that could
undo the namespaces (mount, unshare, setns, ptrace), reach the network (sockets other than
AF_UNIX) or attack the kernel itself (modules, bpf, io_uring, userfaultfd, keyrings). The
namespaces and the dropped capabilities already make most of these fail; the filter is the second
wall, and it makes them fail the same way (EPERM) everywhere.

It also refuses to make a setuid or setgid file or directory (`_restrict_suid_sgid`): the bit is
harmless inside (nosuid, no_new_privs) but stays on disk, where any host user could run the file
as its owner.

pyseccomp (libseccomp) builds the filter and compiles it to classic BPF once per helper process
(`compile_program`, ~20 ms); each sandbox then installs those bytes with one prctl (what
seccomp_load does after compiling every time, ~0.6 ms). Other ABIs of the machine (32-bit x86,
x32) are not in the filter, so libseccomp's default kills a process that uses them.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any

from . import _libc

DENIED_SYSCALLS: tuple[str, ...] = (
    # debugging / reading other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    # filesystem view
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "open_by_handle_at", "name_to_handle_at",
    # namespaces
    "unshare", "setns",
    # kernel code, tracing and attack surface
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    # host administration
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "iopl", "ioperm", "uselib", "lookup_dcookie",
)  # fmt: skip

# clone(2) with any of these creates namespaces; unshare is refused above, so refuse this door too.
_NAMESPACE_FLAGS = (
    _libc.CLONE_NEWNS,
    _libc.CLONE_NEWUSER,
    _libc.CLONE_NEWPID,
    _libc.CLONE_NEWNET,
    _libc.CLONE_NEWIPC,
    _libc.CLONE_NEWUTS,
    _libc.CLONE_NEWCGROUP,
)
# Pushing bytes into a terminal's input queue (classic sandbox escape when a tty is shared).
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C



def build_filter() -> Any:
    """Return a loadable pyseccomp.SyscallFilter; raises ImportError/RuntimeError/OSError."""
    import pyseccomp as sc  # type: ignore[import-untyped]  # optional, see module docstring

    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    native = sc.system_arch()
    for name in DENIED_SYSCALLS:
        if sc.resolve_syscall(native, name) < 0:
            continue  # not on this architecture (e.g. iopl on aarch64)
        flt.add_rule(eperm, name)
    for name in ("socket", "socketpair"):
        flt.add_rule(eperm, name, sc.Arg(0, sc.NE, socket.AF_UNIX))
    for flag in _NAMESPACE_FLAGS:
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (_TIOCSTI, _TIOCLINUX):
        flt.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    _restrict_suid_sgid(flt, sc)
    return flt


# Syscall -> index of its mode argument. The set of systemd's RestrictSUIDSGID=
# (src/shared/seccomp-util.c, seccomp_restrict_suid_sgid).
_MODE_ARG = {
    "chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2,
    "mkdir": 1, "mkdirat": 2, "mknod": 1, "mknodat": 2, "creat": 1,
}  # fmt: skip
# open-style calls: (index of the flags, index of the mode); the mode counts only when creating.
_OPEN_ARGS = {"open": (1, 2), "openat": (2, 3)}
_FCHMODAT2_NR = 452  # Linux 6.6, one number on every architecture; libseccomp < 2.5.5 lacks its name


def _restrict_suid_sgid(flt: Any, sc: Any) -> None:
    """No file or directory may get a setuid or setgid bit: what a command sets on disk, any user
    on the host may execute later, as the file's owner (root when the server runs as root)."""
    eperm = sc.ERRNO(errno.EPERM)
    native = sc.system_arch()
    for bit in (stat.S_ISUID, stat.S_ISGID):
        for name, index in _MODE_ARG.items():
            nr = sc.resolve_syscall(native, name)
            if nr < 0 and name == "fchmodat2":
                nr = _FCHMODAT2_NR
            if nr < 0:
                continue  # not on this architecture (aarch64 has no chmod, mkdir, open, ...)
            flt.add_rule(eperm, nr, sc.Arg(index, sc.MASKED_EQ, bit, bit))
        for name, (flags, mode) in _OPEN_ARGS.items():
            if sc.resolve_syscall(native, name) < 0:
                continue
            for creating in (os.O_CREAT, os.O_TMPFILE):
                flt.add_rule(
                    eperm, name, sc.Arg(flags, sc.MASKED_EQ, creating, creating), sc.Arg(mode, sc.MASKED_EQ, bit, bit)
                )
    # openat2 passes flags and mode in a struct a filter cannot read: ENOSYS, so callers fall
    # back to openat (glibc's own open never uses openat2).
    if sc.resolve_syscall(native, "openat2") >= 0:
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "openat2")


def compile_program() -> bytes:
    """The filter as a BPF program, ready for `_libc.load_seccomp_program`."""
    flt = build_filter()
    fd = os.memfd_create("contextd-seccomp", os.MFD_CLOEXEC)
    with open(fd, "w+b") as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()
