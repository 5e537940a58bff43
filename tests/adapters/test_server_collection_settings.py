"""Collection settings for a Qdrant server or cluster: typed, from the environment, and what
create_collection is given (no server here; the contract tests run the adapter in local mode)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contextd_mcp.ports.vector_store import CollectionSpec
from contextd_mcp.settings import ServerCollectionSettings

SPEC = CollectionSpec(name="memory_keys", dim=384, model="m", sparse=True)
# qdrant_client is imported by the tests that use it: at collection it cost every xdist worker ~1.6 s.


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTEXTD_QDRANT_SHARD_NUMBER", "6")
    monkeypatch.setenv("CONTEXTD_QDRANT_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CONTEXTD_QDRANT_QUANTIZATION", "false")
    layout = ServerCollectionSettings()
    from contextd_mcp.adapters.qdrant_client_store import _collection_args

    args = _collection_args(SPEC, layout)
    assert (args["shard_number"], args["replication_factor"], args["quantization_config"]) == (6, 3, None)


def test_out_of_range_settings_are_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTEXTD_QDRANT_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError, match="replication_factor"):
        ServerCollectionSettings()


def test_defaults_suit_a_cluster() -> None:
    from qdrant_client import models

    from contextd_mcp.adapters.qdrant_client_store import _collection_args, _keyword_index

    args = _collection_args(SPEC, ServerCollectionSettings())
    assert args["shard_number"] == 3 and args["replication_factor"] == 2 and args["write_consistency_factor"] == 1
    assert args["on_disk_payload"] is True and args["vectors_config"].on_disk is True
    scalar = args["quantization_config"].scalar
    assert scalar.type == models.ScalarType.INT8 and scalar.always_ram is True
    assert args["hnsw_config"].payload_m == 16 and args["hnsw_config"].m == 16
    assert args["sparse_vectors_config"]["lexical"].modifier == models.Modifier.IDF
    assert _keyword_index("project").is_tenant and _keyword_index("tenant").is_tenant
    assert not _keyword_index("kind").is_tenant
