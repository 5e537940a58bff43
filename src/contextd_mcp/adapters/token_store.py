"""Bearer tokens for HTTP/SSE callers, kept hashed in a JSON file (owner-only).

A token is ``ctxd_`` + 32 random bytes (url-safe base64); only its SHA-256 is stored.
A plain hash is enough here because the secret has 256 bits of entropy: a slow,
salted hash (bcrypt, argon2) protects *guessable* passwords from offline guessing,
and no dictionary or brute force reaches a 2^256 space. It keeps verification a
dictionary lookup, cheap on every HTTP request.

A token's agent is bound by identity: ``token create --agent NAME`` resolves NAME where the
token is made and stores the agent's id (``agent_id``) and owner (``agent_owner``) beside its
name; requests load that id within the token's tenant. Files written before this hold only
``agent`` (a name): they are still read, and such a token is refused with a message to recreate
it (``needs_agent_rebind``), never resolved by name in a project the client picks.

The daemon re-reads the file when it changes (its mtime, size or inode), so a token
created or revoked by the CLI takes effect without a restart. Writers replace the
file atomically under a lock. Standard library only: the CLI imports it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contextd_mcp import env as environment

PREFIX = "ctxd_"
FILE_NAME = "tokens.json"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_path(data_dir: Path, env: dict[str, str] | None = None) -> Path:
    """``CONTEXTD_TOKENS_FILE`` if set, else ``tokens.json`` in the data directory."""
    configured = env.get("CONTEXTD_TOKENS_FILE") if env is not None else environment.tokens_file()
    return Path(configured).expanduser() if configured else data_dir / FILE_NAME


@dataclass(frozen=True)
class TokenEntry:
    """What a token grants. ``team`` / ``project`` unset: the caller may pick them per request."""

    id: str
    hash: str
    tenant: str
    team: str | None = None
    project: str | None = None
    agent: str | None = None  # the agent's name when the token was made: for listings and the audit log
    read_only: bool = False
    name: str | None = None
    created_at: float = field(default_factory=time.time)
    revoked_at: float | None = None
    expires_at: float | None = None  # None: until revoked
    agent_id: str | None = None  # the agent's record id, loaded within ``tenant`` on every request
    agent_owner: str | None = None  # "tenant/team/project" of the agent ("*": any), for listings

    @property
    def needs_agent_rebind(self) -> bool:
        """Made before agents were bound by id: it names an agent but holds no id."""
        return self.agent is not None and self.agent_id is None

    @property
    def active(self) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and not self.expired

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def public(self) -> dict[str, Any]:
        """Everything but the hash, for listings."""
        data = asdict(self)
        data.pop("hash")
        return data


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = (-1, -1, -1)  # never a real stat: first lookup reads
        self._by_hash: dict[str, TokenEntry] = {}

    # --- reading -------------------------------------------------------------------------

    def _read(self) -> list[TokenEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [TokenEntry(**item) for item in raw.get("tokens", [])]

    def entries(self) -> list[TokenEntry]:
        return self._read()

    def active_count(self) -> int:
        return sum(1 for e in self._read() if e.active)

    def lookup(self, token: str) -> TokenEntry | None:
        """The active entry for a presented token, re-reading the file if it changed."""
        if not token.startswith(PREFIX) or len(token) > 128:
            return None
        with self._lock:
            self._refresh()
            entry = self._by_hash.get(token_hash(token))
        # Expiry is checked per request: the file does not change when a token runs out.
        return entry if entry is not None and not entry.expired else None

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            entries = self._read()
        except (OSError, ValueError, TypeError):
            # A half-edited file must not lock everyone out, nor let anyone in: keep the last good map.
            return
        self._by_hash = {e.hash: e for e in entries if e.revoked_at is None}
        self._stamp = stamp

    # --- writing (the CLI) ---------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[list[TokenEntry]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            yield entries
            self._write(entries)

    def _write(self, entries: list[TokenEntry]) -> None:
        body = json.dumps({"tokens": [asdict(e) for e in entries]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create(
        self,
        tenant: str,
        team: str | None = None,
        project: str | None = None,
        agent: str | None = None,
        read_only: bool = False,
        name: str | None = None,
        expires_in: float | None = None,
        agent_id: str | None = None,
        agent_owner: str | None = None,
    ) -> tuple[str, TokenEntry]:
        """A new token; the plain value is returned here and never stored."""
        if expires_in is not None and expires_in <= 0:
            raise ValueError("expires_in must be positive")
        if (agent is None) != (agent_id is None):
            raise ValueError("an agent is bound by its name and its id, resolved when the token is made")
        token = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        entry = TokenEntry(
            id=uuid.uuid4().hex[:12],
            hash=token_hash(token),
            tenant=tenant,
            team=team,
            project=project,
            agent=agent,
            read_only=read_only,
            name=name,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            agent_id=agent_id,
            agent_owner=agent_owner,
        )
        with self._locked() as entries:
            if name and any(e.name == name and e.active for e in entries):
                raise ValueError(f"an active token is already named {name!r}")
            entries.append(entry)
        return token, entry

    def revoke(self, id_or_name: str) -> TokenEntry:
        with self._locked() as entries:
            for index, entry in enumerate(entries):
                if entry.revoked_at is None and id_or_name in (entry.id, entry.name):
                    revoked = TokenEntry(**{**asdict(entry), "revoked_at": time.time()})
                    entries[index] = revoked
                    return revoked
        raise KeyError(f"no unrevoked token with id or name {id_or_name!r}")
