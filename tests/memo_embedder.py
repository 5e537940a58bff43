"""The session's real model, each distinct text embedded once per test process.

In-process containers share one model (tests/conftest.py); many tests store and search the same
texts again (the learning test stores one set for two tenants and replays its queries four
times; the scrubbing and bad-input sweeps store the tools' examples over and over). The vectors
are the model's own, computed the first time a text is seen: what a test asserts about ranking
or isolation holds for the model's real output, it is only not recomputed. Tests of the embedder
itself (tests/adapters/test_embedder*.py) use the model directly, never this memo.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence

from contextd_mcp.ports.embedder import Embedder

# A bound on what the memo holds (a 384-float vector as float32 is 1.5 kB: ~60 MB at most);
# past it, new texts are embedded and not kept. The isolation sweep alone sends ~30 000
# distinct probe texts, none of them twice: keeping those would buy nothing.
MAX_TEXTS = 40_000


class MemoEmbedder:
    """An Embedder that remembers the vectors of the texts it has embedded (documents and queries
    apart: the model embeds a query differently)."""

    def __init__(self, model: Embedder, max_texts: int = MAX_TEXTS) -> None:
        self._model = model
        self._max = max_texts
        # float32 arrays: the model's vectors are float32, so they round-trip exactly.
        self._documents: dict[str, array[float]] = {}
        self._queries: dict[str, array[float]] = {}
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._model.model_name

    @property
    def dim(self) -> int:
        return self._model.dim

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._documents))
        fresh = dict(zip(missing, self._model.embed_documents(missing), strict=True)) if missing else {}
        self._keep(self._documents, fresh)
        return [list(self._documents[t]) if t in self._documents else fresh[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        known = self._queries.get(text)
        if known is not None:
            return list(known)
        vector = self._model.embed_query(text)
        self._keep(self._queries, {text: vector})
        return vector

    def _keep(self, memo: dict[str, array[float]], fresh: dict[str, list[float]]) -> None:
        with self._lock:
            for text, vector in fresh.items():
                if len(self._documents) + len(self._queries) >= self._max:
                    return
                memo[text] = array("f", vector)
