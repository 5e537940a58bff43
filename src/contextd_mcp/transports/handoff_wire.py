"""The stdio hand-off's wire, shared by the bridge (standard library only) and the daemon.

The bridge relays an MCP line twice per call (client → bridge → socket → daemon and back):
two socket hops and two wake-ups of the bridge, ~0.6 ms of a `bash("true")` call. With the
hand-off, the bridge passes its stdin and stdout to the daemon (SCM_RIGHTS) right after the
hello, and the daemon reads and writes the client's pipes itself. The bridge stays the process
the client manages, and keeps what it needs to take the pipes back when the daemon goes away:

- the daemon sends it, on the socket, a copy of every chunk it reads from the client (``IN``,
  before it acts on it) and, after writing each reply or request to the client, a summary of
  it (``OUT``: its id, and whether it is a result, an error or a request), so the bridge knows
  the requests in flight, a partial last line, and the client's ``initialize`` to replay;
- before writing a line longer than ``PIPE_BUF`` (which a pipe does not write atomically) it
  sends ``BIG``: should the daemon die mid-line, the bridge ends the line before its own;
- when the client closes stdin, ``EOF``; when the daemon ends the session itself for another
  reason (the client stopped reading), ``END``. A socket that closes without either means the
  daemon went away: the bridge takes the pipes back and reconnects (relay.py).

Frames: one kind byte, a 4-byte big-endian length, the payload.
"""

from __future__ import annotations

import json
import os
import stat
import struct

# The hello field (bridge → daemon: "I can hand off"; daemon → bridge: "send them").
FIELD = "handoff"
VERSION = 1

IN = b"I"
OUT = b"O"
BIG = b"P"
EOF = b"E"
END = b"X"
HEADER = struct.Struct(">cI")
# A frame's payload is one read of the client's stdin (65536) or a small summary: anything
# larger is a broken peer.
MAX_FRAME = 1 << 20
# Lines up to this are written to a pipe atomically (POSIX PIPE_BUF on Linux).
ATOMIC_WRITE = 4096
# The hand-off message (bridge → daemon, with the descriptors): a JSON line, then ``prefix``
# bytes: the start of a client line the previous daemon had read but not finished.
MAX_HEADER = 64 * 1024


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def summary(message_id: object, kind: str, is_error: bool = False, method: str = "") -> bytes:
    """What the bridge's bookkeeping needs of a line the daemon wrote (relay.py ``_settle``)."""
    body: dict[str, object] = {"id": message_id}
    if kind == "request":
        body["method"] = method
    elif kind == "result":
        body["result"] = {"isError": is_error}
    else:
        body["error"] = {}
    return json.dumps(body).encode()


def stream_kind(fd: int) -> str | None:
    """"pipe" or "socket" when ``fd`` may carry a client's MCP lines, else None.

    Only those: a regular file or a directory handed in by some same-user process must never
    become where the daemon writes replies, and a terminal or other character device is left
    to the relay (making it non-blocking would change the user's terminal, which shares it).
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None
