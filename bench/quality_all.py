"""Retrieval quality on the labelled sets, through the real model and store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench import quality
from contextd_mcp.container import build
from contextd_mcp.paths import DataPaths


def run(work_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    container = build(DataPaths(work_dir / "memory"))
    try:
        results["memory"] = dataclasses.asdict(quality.memory_quality(container.memory))
    finally:
        container.close()
    remediation = getattr(quality, "remediation_quality", None)
    if remediation is not None:  # dense-only vs hybrid, once the remediation service exists
        container = build(DataPaths(work_dir / "remediation"))
        try:
            results["remediation"] = _plain(remediation(container))
        finally:
            container.close()
    return results


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
