"""The default model gives the same vectors on every x86 CPU (adapters/onnx_quantize.py).

onnxruntime picks its int8 kernel by what the CPU has, and its AVX2 kernel saturated with 8-bit
weights where the SSE4.1 and AVX-512 VNNI kernels did not: the same text got vectors at cosine
0.992 from one machine to the next (BENCHMARKS.md, "Session 11: vectors that do not depend on
the CPU"). Here the model runs natively and under qemu's user-mode emulation of two older CPUs,
one per kernel family (SandyBridge: AVX, no AVX2; Haswell: AVX2), on the per-user model cache
the native run built. Emulation is ~10 s of CPU a run, hence slow.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

TEXTS = [
    "pytest hangs forever at the end of the run in CI",
    "Wrap each test in a nested transaction that rolls back",
    "A session-scoped db fixture shared one transaction, so tests depended on order. Use a "
    "function-scoped fixture with conn.begin_nested() and roll back on teardown.",
]
# What a CPU of each kernel family computes: SandyBridge runs the SSE4.1 kernel, Haswell AVX2's.
CPUS = ("SandyBridge", "Haswell")
CHILD = """
import json, sys
from pathlib import Path
from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.settings import DEFAULT_MODEL
embedder = FastEmbedEmbedder(DEFAULT_MODEL, Path(sys.argv[1]), threads=1)
print(json.dumps([embedder.embed_query(t) for t in json.loads(sys.argv[2])]))
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the kernels compared are x86's"),
    pytest.mark.skipif(
        shutil.which("qemu-x86_64") is None,
        reason="needs qemu-x86_64 (Debian's qemu-user; scripts/setup.sh installs it as root)",
    ),
]


def _emulated(cpu: str, cache: Path) -> np.ndarray:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        ["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", CHILD, str(cache), json.dumps(TEXTS)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return np.array(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.timeout(900)
def test_every_cpu_kind_gives_the_same_vectors(embedder: FastEmbedEmbedder, model_cache: Path) -> None:
    native = np.array([embedder.embed_query(text) for text in TEXTS])
    for cpu in CPUS:
        # Before: 0.0227 between the two families, cosine 0.992 for the same text.
        np.testing.assert_allclose(_emulated(cpu, model_cache), native, rtol=0, atol=1e-6, err_msg=cpu)
