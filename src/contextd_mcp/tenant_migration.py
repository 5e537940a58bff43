"""Moving a project's records from the scope an older derivation gave it to the current one.

An explicitly named admin path: it works on the raw store, every collection, outside any
caller's scope. Only the CLI (``contextd-mcp migrate-tenant``) and tests use it.
"""

from __future__ import annotations

import json
from pathlib import Path

from contextd_mcp.ports.vector_store import CollectionSpec

# What the embedded store writes beside each collection (adapters/qdrant_edge_store.py).
_META = "contextd-collection.json"


def existing_collections(store_dir: Path) -> list[CollectionSpec]:
    """The collections an embedded store holds, with the model and size their vectors have."""
    specs = []
    for meta in sorted(store_dir.glob(f"*/{_META}")):
        described = json.loads(meta.read_text())
        specs.append(CollectionSpec(name=meta.parent.name, dim=int(described["dim"]), model=str(described["model"])))
    return specs
