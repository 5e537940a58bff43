"""What a store costs the model, by how its texts are grouped into runs, interleaved in one process.

    .venv/bin/python -m bench.embed_batches [--rounds 3] [--threads 1,0] [--json FILE]

Workloads: the keys of 20 long memories as ``memory_store``/``store_many`` send them (title,
description, 8 kB content, a situation, per memory, in that order); 64 short texts (an import
of titles); one memory's keys (one ``memory_store``). Groupings: in the order given by 8 (what
the embedder did before session 10), one text per run (shipped). Per workload and grouping: wall
and process CPU, and how far each text's vector is from the one it gets alone (max absolute
coordinate difference). On 2 cores shared with other work the load average is printed with the
figures: read rows of one run side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from contextd_mcp.adapters.fastembed_embedder import default_model_dir
from contextd_mcp.adapters.onnx_mean_pooled import MeanPooledModel
from contextd_mcp.settings import Settings

WORDS = "upload retries multipart checksum boto3 S3 bucket region signature timeout backoff throttled".split()


def _long(n: int) -> str:
    body = " ".join(WORDS[(n + i) % len(WORDS)] + ("." if i % 12 == 11 else "") for i in range(1100))
    return body[:7990].rsplit(" ", 1)[0]


def workloads() -> dict[str, list[str]]:
    memories = []
    for n in range(20):
        memories += [f"S3 upload lesson {n} about {WORDS[n % len(WORDS)]} handling in production",
                     f"retry {WORDS[n % len(WORDS)]} uploads with a checksum", _long(n), f"uploading to S3, case {n}"]
    short = [f"title {i}: fix the {WORDS[i % len(WORDS)]} error after the upgrade" for i in range(64)]
    return {"20 long memories (80 texts)": memories, "64 short titles": short, "one memory (4 texts)": memories[:4]}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(model: MeanPooledModel, texts: list[str], batch: int) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), _cpu()
    vectors = np.stack(list(model.embed(texts, batch_size=batch)))
    return time.perf_counter() - wall, _cpu() - cpu, vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,0", help="intra-op threads to measure (0: onnxruntime's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_dir = default_model_dir(Settings().embedding.cache_dir)
    figures: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    for threads in (int(t) for t in args.threads.split(",")):
        model = MeanPooledModel(model_dir, threads=threads)
        for name, texts in workloads().items():
            alone = np.stack([next(model.query_embed(t)) for t in texts])
            rows: dict[str, dict[str, list[float]]] = {"in order by 8 (before)": {}, "one per run (shipped)": {}}
            for _ in range(args.rounds):
                for label, batch in (("in order by 8 (before)", 8), ("one per run (shipped)", 1)):
                    wall, cpu, vectors = run(model, texts, batch)
                    row = rows[label]
                    row.setdefault("wall_s", []).append(wall)
                    row.setdefault("cpu_s", []).append(cpu)
                    row["max_diff_from_alone"] = [float(np.abs(vectors - alone).max())]
            for label, row in rows.items():
                summary = {k: round(float(np.median(v)), 4) for k, v in row.items()}
                figures[f"threads={threads or 'default'} | {name} | {label}"] = summary
                print(f"threads={threads or 'default':7} {name:28} {label:24} wall {summary['wall_s']:7.3f} s  "
                      f"cpu {summary['cpu_s']:7.3f} s  max diff from alone {summary['max_diff_from_alone']:.4f}")
    figures["load_after"] = os.getloadavg()[0]
    print(f"load {figures['load_before']:.1f} -> {figures['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
