"""The peer comparison embeds with our model: the pre-filled fastembed cache loads offline, by name.

Checked with the fastembed in our own venv (the peer's venv needs PyPI; `python -m bench --quick`
covers the whole peer run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.peers import PEER_MODEL, _cosine, fill_fastembed_cache
from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

pytestmark = pytest.mark.slow


def test_prefilled_cache_loads_our_model_offline_under_the_peer_name(tmp_path: Path, embedder: FastEmbedEmbedder) -> None:
    from fastembed import TextEmbedding

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    described = next(m for m in TextEmbedding.list_supported_models() if m["model"] == PEER_MODEL)
    snapshot = fill_fastembed_cache(tmp_path / "cache", described["sources"]["hf"], described["model_file"])

    model = TextEmbedding(PEER_MODEL, cache_dir=str(tmp_path / "cache"), local_files_only=True)

    assert Path(model.model._model_dir).resolve() == snapshot.resolve()
    text = "pytest fails writing its cache in a read-only checkout"
    theirs = next(iter(model.passage_embed([text]))).tolist()
    assert _cosine(theirs, embedder.embed_documents([text])[0]) > 0.999
    assert _cosine(next(iter(model.query_embed([text]))).tolist(), embedder.embed_query(text)) > 0.999
