"""Who is on the other end of the daemon's socket: its own user, outside any sandbox.

The socket file is owner-only, but that keeps out only other users. A sandboxed ``bash``
command runs as the same user; should it ever reach the socket (a data directory inside
the project, a leaked descriptor) it could open sessions in any scope. So each connection's
peer, as the kernel reports it (``SO_PEERCRED``), must be the daemon's own uid and live in
the daemon's own pid and user namespaces; the sandbox always puts commands in new ones.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
CHECKED_NAMESPACES = ("pid", "user")


class PeerRefused(Exception):
    """The peer may not use this daemon; the message says why (and is safe to show it)."""


@dataclass(frozen=True)
class Peer:
    pid: int  # 0: the peer's pid namespace is not below the daemon's (it cannot be named here)
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid)


def _namespace(pid: int | str, kind: str) -> tuple[int, int]:
    info = os.stat(Path("/proc") / str(pid) / "ns" / kind)
    return info.st_dev, info.st_ino


def check_peer(peer: Peer, own_uid: int | None = None) -> None:
    """Raise PeerRefused unless ``peer`` is this daemon's user, in this daemon's namespaces.

    Root may connect only to a root daemon: a user's daemon serves that user alone.
    """
    own_uid = os.geteuid() if own_uid is None else own_uid
    if peer.uid != own_uid:
        raise PeerRefused(f"this daemon serves uid {own_uid} only; the connecting process runs as uid {peer.uid}")
    if peer.pid <= 0:
        raise PeerRefused("the connecting process is in another pid namespace (a sandbox or container)")
    for kind in CHECKED_NAMESPACES:
        try:
            theirs = _namespace(peer.pid, kind)
        except OSError:
            # Unreadable: it may have exited, or be something we cannot inspect; either way, no.
            raise PeerRefused(f"cannot read the connecting process's {kind} namespace") from None
        if theirs != _namespace("self", kind):
            raise PeerRefused(
                f"the connecting process is in another {kind} namespace (a sandboxed command); "
                "the daemon serves only processes outside any sandbox"
            )
