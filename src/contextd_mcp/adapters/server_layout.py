"""How collections are created on a Qdrant server or cluster: the defaults, in one place.

Standard library only, so settings.py can take its defaults from here without importing
qdrant_client; ``ServerCollectionSettings`` (CONTEXTD_QDRANT_*) reads, bounds and documents
each field, and the qdrant-client adapter creates collections with them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLayout:
    shard_number: int = 3
    replication_factor: int = 2
    write_consistency_factor: int = 1
    on_disk_payload: bool = True
    quantization: bool = True
    oversampling: float = 2.0
    hnsw_m: int = 16
    hnsw_payload_m: int = 16
    hnsw_ef_construct: int = 100
