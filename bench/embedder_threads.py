"""The shipped model's query and batch cost by thread setting, interleaved in one process.

    .venv/bin/python -m bench.embedder_threads [--rounds 3] [--queries 100] [--json FILE]

Settings: one intra-op thread; onnxruntime's default threads (one per core) as shipped (they spin
between the ops of a run and stop when it ends: ``session.force_spinning_stop``); the same never
spinning; the same spinning on after each run (onnxruntime's own default, what the daemon ran
before session 9). Each round times every setting in turn: ``--queries`` distinct short
queries one by one with a pause between them (``--gap-ms``, 5 by default; an agent's calls are
seconds apart, a session start's few searches milliseconds), then
one batch of 32 ~40-word documents (what a store of a few memories' keys or a distillation sends).
Wall p50 per query, process CPU per query, batch wall and CPU. On 2 cores shared with other work
the load average is printed with the figures: read rows of one run side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import onnxruntime as ort

from contextd_mcp.adapters.fastembed_embedder import default_model_dir
from contextd_mcp.adapters.onnx_mean_pooled import MeanPooledModel
from contextd_mcp.settings import Settings

# name: (threads, session config entries replacing the shipped one; None keeps the shipped session)
SETTINGS: dict[str, tuple[int, dict[str, str] | None]] = {
    "one thread": (1, None),
    "default threads, stop spinning after a run (shipped)": (0, None),
    "default threads, never spinning": (0, {"session.intra_op.allow_spinning": "0"}),
    "default threads, spinning after a run (before)": (0, {}),
}
BATCH = [f"Lesson {i}: retry the S3 upload with exponential backoff, then check the checksum header of part {i}" * 2
         for i in range(32)]


def _model(model_dir: Path, threads: int, entries: dict[str, str] | None) -> MeanPooledModel:
    model = MeanPooledModel(model_dir, threads=threads)
    if entries is not None:  # the shipped session options, with other thread-pool entries
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = False
        for key, value in entries.items():
            options.add_session_config_entry(key, value)
        model._session = ort.InferenceSession(
            str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"], sess_options=options
        )
    return model


def _time(model: MeanPooledModel, queries: int, round_no: int, gap_s: float) -> dict[str, float]:
    walls = []
    cpu = time.process_time()
    for i in range(queries):
        started = time.perf_counter()
        next(model.query_embed(f"pytest fixture scope leaks the database between modules, case {round_no}-{i}"))
        walls.append(time.perf_counter() - started)
        time.sleep(gap_s)
    query_cpu = (time.process_time() - cpu) / queries
    started, cpu = time.perf_counter(), time.process_time()
    list(model.embed(BATCH, batch_size=32))
    return {
        "query_p50_ms": statistics.median(walls) * 1000, "query_cpu_ms": query_cpu * 1000,
        "batch_ms": (time.perf_counter() - started) * 1000, "batch_cpu_ms": (time.process_time() - cpu) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause between two queries")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_dir = default_model_dir(Settings().embedding.cache_dir)
    models = {name: _model(model_dir, *setting) for name, setting in SETTINGS.items()}
    for model in models.values():  # warm: the first runs allocate
        list(model.embed(BATCH[:4], batch_size=4))
    load = [os.getloadavg()[0]]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for round_no in range(args.rounds):
        for name, model in models.items():
            rows[name].append(_time(model, args.queries, round_no, args.gap_ms / 1000))
    load.append(os.getloadavg()[0])
    result: dict[str, Any] = {"load": load, "rows": {}}
    print(f"load {load[0]:.2f} -> {load[1]:.2f}; gap {args.gap_ms} ms; medians over {args.rounds} rounds")
    for name, runs in rows.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        result["rows"][name] = {"median": med, "runs": runs}
        print(f"{name:28s} query p50 {med['query_p50_ms']:6.2f} ms, CPU {med['query_cpu_ms']:6.2f} ms | "
              f"batch of 32 {med['batch_ms']:6.0f} ms, CPU {med['batch_cpu_ms']:6.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
