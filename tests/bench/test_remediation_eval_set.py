"""The near-miss sets (bench/data/remediation_eval/) hold the shape their README promises, are
what generate.py makes, and pass the secret scrubber unchanged (the bench measures ranking,
not redaction)."""

from __future__ import annotations

import json

from bench.data.remediation_eval.generate import HERE, build
from contextd_mcp.container import make_scrubber


def _load(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


def test_the_committed_sets_are_what_the_generator_makes() -> None:
    dev, heldout = build()
    assert _load("dev") == dev and _load("heldout") == heldout


def test_each_fix_has_near_misses_and_reoccurrences_and_the_splits_share_no_family() -> None:
    dev, heldout = _load("dev"), _load("heldout")
    assert len(dev["remediations"]) >= 150 and len(heldout["remediations"]) >= 60
    assert not set(dev["families"]) & set(heldout["families"])
    for data in (dev, heldout):
        keys = {r["key"] for r in data["remediations"]}
        per_family: dict[str, int] = {}
        for r in data["remediations"]:
            per_family[r["family"]] = per_family.get(r["family"], 0) + 1
        assert min(per_family.values()) >= 2  # every fix has at least one near-miss stored beside it
        per_key: dict[str, int] = {}
        for q in data["queries"]:
            assert q["relevant"] in keys
            per_key[q["relevant"]] = per_key.get(q["relevant"], 0) + 1
        assert set(per_key) == keys and set(per_key.values()) <= {1, 2}
        problems = {r["key"]: r["problem"] for r in data["remediations"]}
        assert all(q["error"] != problems[q["relevant"]] for q in data["queries"])  # reworded, not copied


def test_no_text_of_the_sets_is_altered_by_the_secret_scrubber() -> None:
    scrubber = make_scrubber()
    for name in ("dev", "heldout"):
        data = _load(name)
        texts = [r[f] for r in data["remediations"] for f in ("title", "problem", "solution", "root_cause")]
        texts += [q["error"] for q in data["queries"]] + [q["context"] for q in data["queries"] if q.get("context")]
        altered = [t[:80] for t in texts if scrubber.scrub(t).text != t]
        assert not altered, altered
