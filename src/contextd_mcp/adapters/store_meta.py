"""The record of which embedding model made a collection's vectors."""

from __future__ import annotations

from contextd_mcp.errors import Unavailable
from contextd_mcp.ports.vector_store import CollectionSpec


def check_model(spec: CollectionSpec, stored_model: str | None, stored_dim: int | None) -> None:
    if stored_model is not None and (stored_model != spec.model or stored_dim != spec.dim):
        raise Unavailable(
            f"collection {spec.name!r} holds vectors from embedding model {stored_model!r} ({stored_dim}-d), "
            f"but the configured model is {spec.model!r} ({spec.dim}-d); configure the original model "
            "or use a new data directory"
        )
