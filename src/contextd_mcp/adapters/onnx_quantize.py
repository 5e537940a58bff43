"""Re-quantizes the shipped model for onnxruntime's int8 kernels, once per machine.

The shipped all-MiniLM-L6-v2 keeps its weights as int8 but casts them to float32 inside the
graph, so at load onnxruntime folds them into ~90 MB of float32 (+160 MiB RSS) and runs float
MatMuls. Dynamic quantization of the folded graph (per-channel int8 weights, the same values)
keeps the weights int8 in memory: +41 MiB at load, a query in 2.0 ms instead of 3.3 ms, and
vectors at cosine 0.992 (min 0.985) to the original's (measured in BENCHMARKS.md).

The weights are quantized to 7 bits (``reduce_range``) so that every x86 CPU computes the same
vectors. onnxruntime multiplies uint8 activations by int8 weights; on AVX2 its kernel adds pairs
of products in 16 bits, which saturate with 8-bit weights (255 * 127 * 2 > 32767), while SSE4.1
and AVX-512 VNNI kernels do not. With 8-bit weights the same text got vectors at cosine 0.992
from one machine to the next, so a store embedded on one CPU and searched from another, or
filled by daemons on two hosts, ranked by noise as large as the quantization's; with 7 bits no
pair can saturate and the vectors agree to 1e-7 (tests/adapters/test_embedding_portable.py runs
the model under emulated CPUs of each kind).

The result is cached under a key of the source file and the onnxruntime version; a failure
leaves the caller on the source model, slower and bigger but correct. Every install, upgrade or
checkout makes its own build (23 MB); builds no install has loaded for ``UNUSED_DAYS`` are
removed when a new one is made, so the cache does not grow with every upgrade.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Bump when the conversion below changes, so caches rebuild.
_CONVERTER = 2
# A build no install has loaded for this long is removed at the next conversion: long enough
# for a checkout left a few weeks to start without a ~10 s rebuild.
UNUSED_DAYS = 30
# A build's "last loaded" stamp is refreshed at most this often (a start costs a stat, no write).
_USED_STAMP_EVERY_S = 86_400
_USED = ".used"


def _key(source: Path) -> str:
    import onnxruntime

    stat = source.stat()
    return f"{stat.st_size}-{int(stat.st_mtime)}-ort{onnxruntime.__version__}-v{_CONVERTER}"


class _QuietRoot(logging.Filter):
    """onnxruntime's quantizer logs through the root logger itself (logging.info / warning): ~40
    lines per conversion ("Quantization parameters for tensor ... not specified", "consider
    pre-processing"), none of them actionable. Records of named loggers are not filtered here
    (a logger's filters see only what is logged on it), so the daemon's own lines pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _convert(source: Path, target: Path) -> None:
    quiet, root = _QuietRoot(), logging.getLogger()
    root.addFilter(quiet)
    try:
        _quantize(source, target)
    finally:
        root.removeFilter(quiet)


def _quantize(source: Path, target: Path) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        # Basic level = constant folding, which turns Cast(int8) * scale into float weights
        # that quantize_dynamic can see; higher levels emit ops it does not know.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        out = Path(tmp) / "model.onnx"
        # Per channel, as the source's weights are; 7 bits (see the module's docstring).
        quantize_dynamic(str(folded), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        os.replace(out, target)  # atomic: a reader sees no file or a whole one


def quantized_model(source: Path, cache_dir: Path) -> Path | None:
    """The int8-kernel version of ``source`` (built on first use), or None if it cannot be built."""
    try:
        folder = cache_dir / "q8" / _key(source)
        target = folder / "model.onnx"
        if target.exists():
            _stamp_used(folder)
            return target
        folder.mkdir(parents=True, exist_ok=True)
        # Two daemons starting together convert once: the second waits, then finds the file.
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.exists():
                started = time.perf_counter()
                _convert(source, target)
                log.info("built the int8-kernel copy of the embedding model in %.1fs (once per user)",
                         time.perf_counter() - started)
                _stamp_used(folder)
                remove_unused_builds(folder.parent, keep=folder)
        return target
    except Exception as exc:  # noqa: BLE001 - any failure degrades to the source model
        log.warning("could not build the int8-kernel model (%s: %s); using the source model", type(exc).__name__, exc)
        return None


def _stamp_used(folder: Path) -> None:
    stamp = folder / _USED
    try:
        if time.time() - stamp.stat().st_mtime < _USED_STAMP_EVERY_S:
            return
        os.utime(stamp)
    except FileNotFoundError:
        stamp.touch()
    except OSError:  # a read-only cache still serves; the build just looks unused
        pass


def _last_used(folder: Path) -> float:
    """When an install last loaded this build (a build from before the stamps: when it was made)."""
    for probe in (folder / _USED, folder / "model.onnx", folder):
        try:
            return probe.stat().st_mtime
        except OSError:
            continue
    return 0.0


def remove_unused_builds(builds: Path, keep: Path, now: float | None = None) -> list[str]:
    """Removes the builds under ``builds`` (other than ``keep``) no install has loaded for
    ``UNUSED_DAYS``; returns their names. A build being made holds its lock and is skipped."""
    cutoff = (time.time() if now is None else now) - UNUSED_DAYS * 86_400
    removed = []
    for folder in sorted(builds.iterdir()):
        if folder == keep or not folder.is_dir() or _last_used(folder) >= cutoff:
            continue
        try:
            with open(folder / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder)
        except OSError:  # in use (its lock held) or not ours to remove: left for a later sweep
            continue
        removed.append(folder.name)
    if removed:
        log.info("removed %d int8 model builds unused for %d days: %s", len(removed), UNUSED_DAYS, ", ".join(removed))
    return removed
