"""The per-user cache of int8 model builds: one per install, and old ones do not pile up."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from contextd_mcp.adapters import onnx_quantize
from contextd_mcp.adapters.onnx_quantize import UNUSED_DAYS, quantized_model, remove_unused_builds

DAY = 86_400


def _build(builds: Path, name: str, used_days_ago: float | None, made_days_ago: float = 400) -> Path:
    folder = builds / name
    folder.mkdir(parents=True)
    model = folder / "model.onnx"
    model.write_bytes(b"onnx")
    made = time.time() - made_days_ago * DAY
    os.utime(model, (made, made))
    if used_days_ago is not None:
        (folder / ".used").touch()
        used = time.time() - used_days_ago * DAY
        os.utime(folder / ".used", (used, used))
    return folder


def test_builds_unused_for_the_limit_are_removed_the_others_kept(tmp_path: Path) -> None:
    builds = tmp_path / "q8"
    old = _build(builds, "a-v1", used_days_ago=UNUSED_DAYS + 5)
    recent = _build(builds, "b-v1", used_days_ago=UNUSED_DAYS - 5)
    unstamped_new = _build(builds, "c-v1", used_days_ago=None, made_days_ago=2)  # before the stamps
    unstamped_old = _build(builds, "d-v1", used_days_ago=None, made_days_ago=UNUSED_DAYS + 1)
    keep = _build(builds, "e-v2", used_days_ago=UNUSED_DAYS + 50)  # the caller's own

    assert remove_unused_builds(builds, keep=keep) == ["a-v1", "d-v1"]
    assert not old.exists() and not unstamped_old.exists()
    assert recent.exists() and unstamped_new.exists() and keep.exists()


def test_a_build_whose_lock_is_held_is_not_removed(tmp_path: Path) -> None:
    builds = tmp_path / "q8"
    busy = _build(builds, "a-v1", used_days_ago=UNUSED_DAYS + 5)
    with open(busy / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another daemon converting into it
        assert remove_unused_builds(builds, keep=builds / "none") == []
    assert (busy / "model.onnx").exists()


def test_a_new_build_sweeps_old_ones_and_a_loaded_build_is_stamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    builds = cache / "q8"
    old = _build(builds, "1-1-ort0-v1", used_days_ago=UNUSED_DAYS + 1)
    source = tmp_path / "model.onnx"
    source.write_bytes(b"source")
    # Stands in for the ~10 s conversion, which test_embedder runs for real.
    monkeypatch.setattr(onnx_quantize, "_convert", lambda src, target: target.write_bytes(b"int8"))

    built = quantized_model(source, cache)
    assert built is not None and built.read_bytes() == b"int8"
    assert not old.exists()  # swept by the new build
    stamp = built.parent / ".used"
    stale = time.time() - 3 * DAY
    os.utime(stamp, (stale, stale))

    assert quantized_model(source, cache) == built
    assert time.time() - stamp.stat().st_mtime < 60  # loading marks it used again
    assert sorted(p.name for p in builds.iterdir()) == [built.parent.name]
