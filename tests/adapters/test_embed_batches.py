"""Documents are embedded one text per run: a text's vector does not depend on what it was stored
beside, and a short text is never run padded to a long one's length."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.adapters.onnx_mean_pooled import MeanPooledModel

LONG = " ".join(f"step {i}: boto3 put_object failed with a checksum error, retried with backoff." for i in range(120))
# What one memory_store embeds at once: its title, description, content and situations.
MEMORY = [
    "Use ChecksumAlgorithm with boto3 1.36",
    "put_object rejects ContentMD5 since boto3 1.36",
    LONG,
    "uploading to S3 after upgrading boto3",
    "a",
    "fix the failing S3 upload in CI after the dependency bump",
]


def test_a_text_gets_the_vector_it_gets_alone_whatever_it_is_stored_beside(embedder: FastEmbedEmbedder) -> None:
    together = np.array(embedder.embed_documents(MEMORY))
    alone = np.array([embedder.embed_documents([text])[0] for text in MEMORY])
    # In batches the int8 model scaled a run's activations to the whole batch's range: the
    # title's vector moved by up to 0.045 in a coordinate with its neighbours.
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    # ... and a memory's own title, searched for, meets the vector it was stored with.
    np.testing.assert_allclose(np.array(embedder.embed_query(MEMORY[0])), together[0], rtol=0, atol=1e-6)


def test_short_texts_are_not_run_at_a_long_texts_length(embedder: FastEmbedEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    real = MeanPooledModel._batch

    def counted(self: MeanPooledModel, texts: list[str]) -> Any:
        runs.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(MeanPooledModel, "_batch", counted)
    embedder.embed_documents(MEMORY * 3)
    # In order, by 8, the content's 512 tokens set the length of the runs its title and
    # situations were in: 7x the tokens of the texts themselves.
    assert runs == [1] * len(MEMORY) * 3
