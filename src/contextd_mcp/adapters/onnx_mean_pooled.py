"""A mean-pooled, L2-normalised sentence model run on onnxruntime and tokenizers directly.

What fastembed does for a custom model added with ``PoolingType.MEAN, normalization=True``
(the shipped all-MiniLM-L6-v2 and any local model directory), step for step, without importing
fastembed: its package imports its image, sparse and late-interaction models and huggingface_hub
(with httpx, requests, PIL) on the way to its text model, ~0.4 s of CPU at every daemon start
(BENCHMARKS.md "Session 7: the daemon's start-up"). tests/adapters/test_onnx_mean_pooled.py
checks that the vectors equal fastembed's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import AddedToken, Tokenizer


def _limit(value: Any) -> int | None:
    # transformers writes 1e30 for an unknown limit, some repos 0 or null: none is a limit
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= sys.maxsize else None


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """fastembed's ``load_tokenizer``: truncation at the stricter of the config's limits, the
    special tokens map added, padding to the batch's longest."""
    config = _json(model_dir / "config.json")
    tokenizer_config = _json(model_dir / "tokenizer_config.json")
    limits = [v for v in (_limit(tokenizer_config.get(k)) for k in ("model_max_length", "max_length")) if v is not None]
    if not limits:
        raise ValueError(f"no maximum context length in {model_dir}/tokenizer_config.json")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    truncation = tokenizer.truncation or {}
    tokenizer.enable_truncation(
        max_length=min(limits), direction=tokenizer_config.get("truncation_side") or truncation.get("direction", "right")
    )
    for token in _special_tokens(_json(model_dir / "special_tokens_map.json")):
        tokenizer.add_special_tokens([token if isinstance(token, str) else AddedToken(**token)])
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token") or tokenizer_config.get("pad_token")
    if pad_token is None:
        raise ValueError(f"no pad token for {model_dir}")
    pad_id = padding.get("pad_id", config.get("pad_token_id"))
    if pad_id is None:
        pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"no id for the pad token {pad_token!r} in {model_dir}")
    tokenizer.enable_padding(
        direction=tokenizer_config.get("padding_side") or padding.get("direction", "right"),
        pad_id=pad_id, pad_type_id=padding.get("pad_type_id", 0), pad_token=pad_token,
        pad_to_multiple_of=padding.get("pad_to_multiple_of"), length=None,
    )
    return tokenizer


def _special_tokens(tokens_map: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
    for value in tokens_map.values():
        yield from value if isinstance(value, list) else [value]


SPINNING_STOP = "session.force_spinning_stop"


class MeanPooledModel:
    """``embed``/``query_embed`` as fastembed's ``TextEmbedding`` (the two the embedder uses)."""

    def __init__(self, model_dir: Path, model_file: str = "model.onnx", threads: int = 0) -> None:
        self._tokenizer = load_tokenizer(model_dir)
        options = ort.SessionOptions()
        if threads:  # 0 leaves onnxruntime's default (settings.EmbeddingSettings.threads)
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The intra-op threads spin between the ops of a run (what makes two threads fast) and
        # stop when it ends: left spinning after each run, a query cost ~50 ms of CPU instead of
        # ~7; not spinning at all cost ~1.3 ms a query (BENCHMARKS.md, "Session 9: the model's threads").
        options.add_session_config_entry(SPINNING_STOP, "1")
        # the arena keeps the biggest batch's buffers for the life of the process (fastembed_embedder.py)
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(str(model_dir / model_file), providers=["CPUExecutionProvider"], sess_options=options)
        self._inputs = {node.name for node in self._session.get_inputs()}

    def embed(self, texts: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(texts), batch_size):
            yield from self._batch(list(texts[start : start + batch_size]))

    def query_embed(self, text: str) -> Iterator[np.ndarray]:
        yield from self._batch([text])

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        # mean over real tokens, summed in float64; normalised before the cast back (as fastembed)
        summed = np.sum(hidden, axis=1, where=mask[:, :, np.newaxis].astype(bool), dtype=np.float64)
        pooled = summed / np.maximum(np.sum(mask, axis=1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, ord=2, axis=1, keepdims=True), 1e-12)
        result: np.ndarray = (pooled / norm).astype(hidden.dtype, copy=False)
        return result
