"""The real default model, offline; a bad model name fails fast and clearly."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.errors import Unavailable


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_default_model_embeds_offline(embedder: FastEmbedEmbedder) -> None:
    assert embedder.dim == 384 and embedder.model_name == "contextd/all-MiniLM-L6-v2-int8"
    query = embedder.embed_query("pytest fixture has the wrong scope")
    docs = embedder.embed_documents(["A pytest fixture scoped to the session leaks state", "Kubernetes pod in CrashLoopBackOff"])
    assert math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-3)
    assert cosine(query, docs[0]) > cosine(query, docs[1]) + 0.2
    assert embedder.embed_documents([]) == []


def test_unknown_model_fails_within_a_second(model_cache: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(Unavailable, match="cannot be loaded offline"):
        FastEmbedEmbedder("BAAI/bge-small-en-v1.5", model_cache / "empty")
    assert time.perf_counter() - started < 1.0


def test_local_model_directory_loads(model_cache: Path, embedder: FastEmbedEmbedder) -> None:
    local = FastEmbedEmbedder(str(model_cache / "all-MiniLM-L6-v2-int8"), model_cache)
    assert local.model_name == "local/all-MiniLM-L6-v2-int8" and local.dim == 384
    assert cosine(local.embed_query("hello world"), embedder.embed_query("hello world")) > 0.999


def test_token_counter_truncates_at_word_boundaries() -> None:
    counter = WordPieceTokenCounter()
    text = "Configure the connection pool size before raising worker concurrency"
    assert len(text.split()) <= counter.count(text) <= 2 * len(text.split())
    cut = counter.truncate(text, 4)
    assert text.startswith(cut) and counter.count(cut) <= 4 and text[len(cut)] == " "
    assert counter.truncate(text, 100) == text and counter.truncate(text, 0) == ""
