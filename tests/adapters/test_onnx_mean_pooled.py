"""The embedder's own ONNX pipeline gives the vectors fastembed gives for the same model directory
(stored vectors were made by fastembed: a different vector would be a silent ranking change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder, default_model_dir
from contextd_mcp.adapters.onnx_mean_pooled import SPINNING_STOP, MeanPooledModel

TEXTS = [
    "pytest fixture has the wrong scope",
    "",
    "Kubernetes pod in CrashLoopBackOff after the image upgrade; rolled back with kubectl rollout undo",
    "ünïcødé — 日本語のテキスト, emoji 🚀 and tabs\tand\nnewlines",
    # past the model's 256/512-token limit: the truncation must match too
    " ".join(f"word{i} error: ModuleNotFoundError in build step {i}" for i in range(400)),
    "a",
    "ERROR: Could not find a version that satisfies the requirement torch==9.9",
    "git push rejected (non-fast-forward): pull --rebase first",
    "ninth text so that a batch of eight leaves one over",
]


def _fastembed_model(model_dir: Path) -> object:
    """fastembed's TextEmbedding on the directory, as the embedder loaded it before."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = f"test/{model_dir.name}"
    if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=name, pooling=PoolingType.MEAN, normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"), dim=384, model_file="model.onnx",
        )
    # One thread, as ours below: the thread test shows the vectors do not depend on it, and
    # spinning default threads made this the costliest test of its directory.
    return TextEmbedding(model_name=name, specific_model_path=str(model_dir), enable_cpu_mem_arena=False, threads=1)


def test_vectors_equal_fastembeds(model_cache: Path, embedder: FastEmbedEmbedder) -> None:
    model_dir = default_model_dir(model_cache)
    ours = MeanPooledModel(model_dir, threads=1)
    theirs: object = _fastembed_model(model_dir)
    mine = np.stack(list(ours.embed(TEXTS, batch_size=8)))
    reference = np.stack(list(theirs.embed(TEXTS, batch_size=8)))  # type: ignore[attr-defined]
    assert mine.shape == reference.shape == (len(TEXTS), 384)
    assert mine.dtype == reference.dtype
    np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-6)
    for text in TEXTS[:4]:
        query = next(ours.query_embed(text))
        np.testing.assert_allclose(query, next(iter(theirs.query_embed(text))), rtol=0, atol=1e-6)  # type: ignore[attr-defined]
    # and through the adapter the daemon uses (alone, not padded in a batch: int8 scales differ)
    alone = next(iter(theirs.query_embed(TEXTS[0])))  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.array(embedder.embed_query(TEXTS[0])), alone, rtol=0, atol=1e-6)


def test_the_thread_setting_reaches_the_session_and_not_the_vectors(model_cache: Path) -> None:
    """CONTEXTD_EMBEDDING_THREADS (the suite runs with 1): onnxruntime's session gets it, and one
    thread computes the vectors the default's threads do."""
    model_dir = default_model_dir(model_cache)
    one, default = MeanPooledModel(model_dir, threads=1), MeanPooledModel(model_dir)
    assert one._session.get_session_options().intra_op_num_threads == 1
    assert default._session.get_session_options().intra_op_num_threads == 0
    # threads stop spinning when a run ends: a query's CPU stays its own (bench/embedder_threads.py)
    assert default._session.get_session_options().get_session_config_entry(SPINNING_STOP) == "1"
    # The short texts (the 400-word one alone is most of this file's CPU; the test above has it).
    short = [t for t in TEXTS if len(t) < 200]
    np.testing.assert_allclose(
        np.stack(list(one.embed(short, batch_size=8))), np.stack(list(default.embed(short, batch_size=8))), rtol=0, atol=1e-6
    )
