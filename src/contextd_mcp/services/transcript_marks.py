"""How far each transcript has been distilled, so a resumed session learns only its new turns.

``claude --resume`` keeps the session id and appends to the same transcript file; its
SessionEnd hook then names the whole file again. Distilling it whole a second time found the
same lessons and "strengthened" them with no new evidence (confidence 0.60 → 0.71 after two
resumes, issue 15). So a mark per (scope, Claude session, transcript path) remembers, in the
store, the byte offset queued so far, the file's inode, and a digest of the bytes just before
that offset (the anchor). At the next end:

- same inode, the file at least as long, the anchor unchanged → appended: distil
  ``[offset, end)``; when nothing follows the offset, queue nothing;
- anything else (another inode, shorter, the anchor changed) → rewritten or truncated: a
  mark cannot say which turns are new, so the whole file is read again, but the distiller
  treats the memories that this transcript's earlier sessions made as already known
  (``Slice.earlier_sessions``): they are neither duplicated nor strengthened, and a lesson
  that only the rewritten text holds is still learnt. Never skipped forever, never re-learnt
  wholesale.

The mark moves when the job is queued, not when it finishes: two ends in a row must not both
take the same turns. A job that then fails for good loses its slice (the queue retries it
``max_attempts`` times first); learning the same turns twice is the failure this prevents.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.content_ids import content_id, digest

COLLECTION = "transcript_marks"
ANCHOR_BYTES = 4096
# A line longer than this is not a transcript event boundary we will look for.
SCAN_BACK_BYTES = 16 << 20
SCAN_CHUNK = 64 << 10
# Sessions remembered per transcript (each resume adds one): enough for any real resume chain.
LINEAGE_MAX = 64


@dataclass(frozen=True)
class Slice:
    """The bytes of a transcript one distillation job reads: ``[start, end)``, whole lines."""

    path: str
    start: int
    end: int
    inode: int
    rewritten: bool = False
    earlier_sessions: list[str] = field(default_factory=list)


def valid_transcript(path: str) -> Path | None:
    file = Path(path)
    # Only the hook (the local user, over the owner-only socket) can name a path; still, look
    # at nothing but a regular .jsonl file.
    if not file.is_absolute() or file.suffix != ".jsonl" or not file.is_file():
        return None
    return file


def _line_end(f: BinaryIO, size: int) -> int:
    """The offset just past the file's last newline (a line being written is left for later)."""
    position = size
    while position > 0 and size - position < SCAN_BACK_BYTES:
        start = max(0, position - SCAN_CHUNK)
        f.seek(start)
        chunk = f.read(position - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        position = start
    return 0


def _anchor(f: BinaryIO, offset: int) -> str:
    start = max(0, offset - ANCHOR_BYTES)
    f.seek(start)
    return hashlib.sha256(f.read(offset - start)).hexdigest()[:32]


class TranscriptMarks:
    def __init__(self, backing: Backing) -> None:
        self._stores = backing.stores
        backing.stores.ensure(backing.spec(COLLECTION))

    @staticmethod
    def _id(scope: Scope, session_key: str, path: str) -> str:
        return content_id("transcript_mark", scope, digest(session_key, os.path.realpath(path)))

    def next_slice(self, scope: Scope, session_key: str, path: str) -> Slice | None:
        """What of ``path`` is not yet distilled; None when nothing is (or it is no transcript)."""
        file = valid_transcript(path)
        if file is None:
            return None
        found = self._stores.of(scope).get(COLLECTION, [self._id(scope, session_key, path)])
        mark = found[0].payload if found else None
        with file.open("rb") as f:
            inode = os.fstat(f.fileno()).st_ino
            size = f.seek(0, os.SEEK_END)
            end = _line_end(f, size)
            if mark is None:
                return Slice(str(file), 0, end, inode) if end > 0 else None
            offset = int(mark["offset"])
            earlier = list(mark.get("sessions", []))
            appended = int(mark["inode"]) == inode and end >= offset and _anchor(f, offset) == mark["anchor"]
        if appended:
            return Slice(str(file), offset, end, inode, earlier_sessions=earlier) if end > offset else None
        return Slice(str(file), 0, end, inode, rewritten=True, earlier_sessions=earlier) if end > 0 else None

    def advance(self, scope: Scope, session_key: str, part: Slice, session_id: str) -> None:
        """Remember that ``part`` is queued for distillation by ``session_id``."""
        with open(part.path, "rb") as f:
            anchor = _anchor(f, part.end)
        sessions = [*part.earlier_sessions, session_id][-LINEAGE_MAX:]
        payload = {
            **scope.fields(),
            "offset": part.end,
            "inode": part.inode,
            "anchor": anchor,
            "sessions": sessions,
        }
        self._stores.of(scope).upsert(COLLECTION, [Record(id=self._id(scope, session_key, part.path), payload=payload)])
