"""What each kind's vector is made from, so an import recomputes it as the service that stored
the record did (the file carries no vectors). ``None``: the kind stores a placeholder vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contextd_mcp.ports.vector_store import Sparse
from contextd_mcp.services.error_text import dense_text, normalise, sparse_vector
from contextd_mcp.services.remediation import TEXTS as REMEDIATION_TEXTS
from contextd_mcp.services.skills import _embed_text as skill_text

__all__ = ["REMEDIATION_TEXTS", "embedded_text", "sparse_of"]


def embedded_text(kind: str, payload: Mapping[str, Any], texts: Mapping[str, Any] | None) -> str | None:
    if kind == "skill":
        return skill_text(payload)
    if kind == "checkpoint":
        return str(payload.get("summary", ""))
    if kind == "remediation":  # as RemediationService.record_many: the title, then the error's signature
        t = texts or {}
        return f"{t.get('title', payload.get('title', ''))}\n{dense_text(normalise(str(t.get('problem', ''))))}"
    return None


def sparse_of(kind: str, payload: Mapping[str, Any], texts: Mapping[str, Any] | None) -> Sparse | None:
    if kind != "remediation":
        return None
    t = texts or {}
    lexical = normalise("\n".join([str(t.get("title", "")), str(t.get("problem", "")), *map(str, t.get("symptoms", []))]))
    return sparse_vector(lexical, unit=True)
