"""Record ids derived from a scope and a content digest.

Storing the same text twice in one scope must give back the first record, not a second one.
With the id a function of (kind, scope, digest), that check is a read by id: no filtered scan
and no payload index on the digest (each index costs ~5 MiB resident in the embedded store).
Another scope's identical text gets another id, so no caller can reach or overwrite a record
outside its own scope by storing a lookalike.
"""

from __future__ import annotations

import hashlib
import uuid

from contextd_mcp.models.scope import Scope

_NAMESPACE = uuid.UUID("6f1c3c52-8f4e-4a8e-9d0b-6b1f3f0a2c71")


def digest(*parts: str) -> str:
    """A short, stable digest of the texts that make a record the same record."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def content_id(kind: str, scope: Scope, content_digest: str) -> str:
    # Scope names cannot hold \x1f (models/scope.py), so the key is unambiguous.
    key = "\x1f".join((kind, scope.tenant, scope.team, scope.project, content_digest))
    return str(uuid.uuid5(_NAMESPACE, key))
