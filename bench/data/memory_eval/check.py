"""Validates the memory-retrieval evaluation splits (dev.json, heldout.json) and prints their statistics.

Run from the repository root: ``.venv/bin/python bench/data/memory_eval/check.py [--partial] [split ...]``.
Exit status 1 and one line per problem when a rule is broken; the rules are in this directory's
README.md. ``--partial`` skips the minimum counts (a split being written in chunks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SPLITS = ("dev", "heldout")
MIN_LESSONS = {"dev": 150, "heldout": 80}
MIN_NEGATIVES_PER_LESSON = 4

# A query shares few words with its lesson and with its sibling query (Jaccard of lowercase word sets).
MAX_QUERY_OVERLAP = 0.25
QUERY_PAIRS = ("title", "description", "content", "sibling")
# Keys the storing agent gives (applies_when, task, error) are reported, and held to a looser bound:
# they describe the same situation as the query, so some shared words are honest, a paraphrase is not.
MAX_KEY_OVERLAP = 0.34
KEY_PAIRS = ("applies_when", "task", "error")
# Two records whose title+description+content share more than this are near-duplicates.
MAX_RECORD_OVERLAP = 0.5

CONTENT_SENTENCES = (2, 5)
MAX_APPLIES_WHEN = 3
MAX_APPLIES_WHEN_WORDS = 12
MAX_TAGS = 8
FAILURE_SHARE = (0.12, 0.30)  # "about 20%" of records record what did not work
TASK_SHARE = (0.35, 0.70)  # "about half" carry the session's task and/or the error text they answer

REQUIRED = ("key", "title", "description", "content", "outcome", "tags", "applies_when")
OPTIONAL = ("task", "error")
LESSON_ONLY = ("phrasing_a", "phrasing_b")
NEGATIVE_ONLY = ("negative_of",)

_WORD = re.compile(r"[a-z0-9_]+")
# A sentence ends at . ! or ? followed by a space and an upper-case letter, a digit or a quote/backtick,
# so the dots inside `pip install -e .`, versions and file names do not count.
_SENTENCE_END = re.compile(r"[.!?][)\"'`]?\s+(?=[A-Z0-9`\"'(])")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def jaccard(a: str | set[str], b: str | set[str]) -> float:
    wa = words(a) if isinstance(a, str) else a
    wb = words(b) if isinstance(b, str) else b
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def sentences(text: str) -> int:
    return len(_SENTENCE_END.split(text.strip()))


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    overlaps: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    counts: dict[str, dict[str, float]] = field(default_factory=dict)

    def fail(self, where: str, rule: str) -> None:
        self.problems.append(f"{where}: {rule}")


def load(split: str) -> dict[str, Any]:
    return json.loads((HERE / f"{split}.json").read_text())


def _texts(record: dict[str, Any]) -> Iterator[str]:
    for value in record.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))


def _check_record(record: dict[str, Any], lesson: bool, report: Report) -> None:
    key = record.get("key", "?")
    allowed = set(REQUIRED) | set(OPTIONAL) | set(LESSON_ONLY if lesson else NEGATIVE_ONLY)
    needed = set(REQUIRED) | set(LESSON_ONLY if lesson else NEGATIVE_ONLY)
    for name in sorted(needed - record.keys()):
        report.fail(key, f"missing field {name}")
    for name in sorted(record.keys() - allowed):
        report.fail(key, f"unexpected field {name}")
    for name in ("key", "title", "description", "content", *OPTIONAL, *LESSON_ONLY, *NEGATIVE_ONLY):
        value = record.get(name)
        if name in record and (not isinstance(value, str) or not value.strip() or "\n" in value):
            report.fail(key, f"{name} must be a non-empty single-line string")
    if record.get("outcome") not in ("success", "failure"):
        report.fail(key, "outcome must be success or failure")
    n = sentences(record.get("content", ""))
    if not CONTENT_SENTENCES[0] <= n <= CONTENT_SENTENCES[1]:
        report.fail(key, f"content has {n} sentences, wants {CONTENT_SENTENCES[0]}-{CONTENT_SENTENCES[1]}")
    tags = record.get("tags", [])
    if not (isinstance(tags, list) and 1 <= len(tags) <= MAX_TAGS and all(isinstance(t, str) and t == t.lower() and t.strip() for t in tags)):
        report.fail(key, f"tags must be 1-{MAX_TAGS} lowercase strings")
    phrases = record.get("applies_when", [])
    if not (isinstance(phrases, list) and 1 <= len(phrases) <= MAX_APPLIES_WHEN):
        report.fail(key, f"applies_when must hold 1-{MAX_APPLIES_WHEN} phrases")
    elif any(not isinstance(p, str) or not p.strip() or len(p.split()) > MAX_APPLIES_WHEN_WORDS for p in phrases):
        report.fail(key, f"each applies_when phrase must be a string of at most {MAX_APPLIES_WHEN_WORDS} words")


def _check_queries(lesson: dict[str, Any], report: Report, overlaps: dict[str, list[float]]) -> None:
    key = lesson["key"]
    a, b = lesson.get("phrasing_a", ""), lesson.get("phrasing_b", "")
    if words(a) == words(b):
        report.fail(key, "phrasing_a and phrasing_b are the same words")
    for q_name, query in (("phrasing_a", a), ("phrasing_b", b)):
        for target in QUERY_PAIRS:
            other = b if target == "sibling" else lesson.get(target, "")
            if target == "sibling" and q_name == "phrasing_b":
                continue  # symmetric: counted once
            j = jaccard(query, other)
            overlaps[target].append(j)
            if j >= MAX_QUERY_OVERLAP:
                report.fail(key, f"{q_name} overlaps {target} {j:.2f} (max {MAX_QUERY_OVERLAP})")
        for target in KEY_PAIRS:
            values = lesson.get(target)
            if values is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                j = jaccard(query, value)
                overlaps[target].append(j)
                if j >= MAX_KEY_OVERLAP:
                    report.fail(key, f"{q_name} overlaps {target} {j:.2f} (max {MAX_KEY_OVERLAP})")


def _check_near_duplicates(records: list[dict[str, Any]], report: Report) -> float:
    bags = [(r["key"], words(" ".join((r.get("title", ""), r.get("description", ""), r.get("content", ""))))) for r in records]
    worst = 0.0
    for (ka, wa), (kb, wb) in itertools.combinations(bags, 2):
        j = len(wa & wb) / len(wa | wb)
        worst = max(worst, j)
        if j >= MAX_RECORD_OVERLAP:
            report.fail(f"{ka}/{kb}", f"near-duplicate records (word overlap {j:.2f})")
    return worst


def _check_secrets(records: list[dict[str, Any]], report: Report) -> None:
    # The server scrubs what it stores: a text the scrubber changes would make the eval measure redaction.
    from contextd_mcp.adapters.secret_scrubber import RegexScrubber

    scrubber = RegexScrubber()
    for record in records:
        for text in _texts(record):
            result = scrubber.scrub(text)
            if result.text != text:
                report.fail(record.get("key", "?"), f"the scrubber redacts {', '.join(result.kinds)} in {text[:60]!r}")


def check_split(split: str, report: Report, partial: bool = False) -> list[dict[str, Any]]:
    data = load(split)
    if data.get("split") != split:
        report.fail(split, f"split field is {data.get('split')!r}")
    lessons, negatives = data.get("lessons", []), data.get("negatives", [])
    records = lessons + negatives
    for record in lessons:
        _check_record(record, True, report)
    for record in negatives:
        _check_record(record, False, report)
    lesson_keys = {r["key"] for r in lessons}
    per_lesson = Counter(r.get("negative_of") for r in negatives)
    for r in negatives:
        if r.get("negative_of") not in lesson_keys:
            report.fail(r["key"], f"negative_of {r.get('negative_of')!r} is no lesson of {split}")
    for k in sorted(lesson_keys):
        if per_lesson[k] < MIN_NEGATIVES_PER_LESSON:
            report.fail(k, f"{per_lesson[k]} hard negatives, wants at least {MIN_NEGATIVES_PER_LESSON}")
    if not partial and len(lessons) < MIN_LESSONS[split]:
        report.fail(split, f"{len(lessons)} lessons, wants at least {MIN_LESSONS[split]}")
    titles = Counter(r.get("title", "").lower() for r in records)
    for title, n in titles.items():
        if n > 1:
            report.fail(split, f"title used {n} times: {title!r}")
    overlaps: dict[str, list[float]] = {t: [] for t in (*QUERY_PAIRS, *KEY_PAIRS)}
    for lesson in lessons:
        _check_queries(lesson, report, overlaps)
    queries = Counter(q.lower() for r in lessons for q in (r.get("phrasing_a", ""), r.get("phrasing_b", "")))
    for q, n in queries.items():
        if n > 1:
            report.fail(split, f"query used {n} times: {q!r}")
    worst_record = _check_near_duplicates(records, report)
    _check_secrets(records, report)
    failures = sum(r.get("outcome") == "failure" for r in records) / max(len(records), 1)
    with_task = sum("task" in r or "error" in r for r in records) / max(len(records), 1)
    if records and not FAILURE_SHARE[0] <= failures <= FAILURE_SHARE[1]:
        report.fail(split, f"failure share {failures:.2f}, wants {FAILURE_SHARE[0]}-{FAILURE_SHARE[1]}")
    if records and not TASK_SHARE[0] <= with_task <= TASK_SHARE[1]:
        report.fail(split, f"share with task or error {with_task:.2f}, wants {TASK_SHARE[0]}-{TASK_SHARE[1]}")
    report.overlaps[split] = overlaps
    report.counts[split] = {
        "lessons": len(lessons),
        "negatives": len(negatives),
        "queries": 2 * len(lessons),
        "failure_share": round(failures, 3),
        "task_or_error_share": round(with_task, 3),
        "task_share": round(sum("task" in r for r in records) / max(len(records), 1), 3),
        "error_share": round(sum("error" in r for r in records) / max(len(records), 1), 3),
        "max_record_overlap": round(worst_record, 3),
    }
    return records


def check(splits: tuple[str, ...] = SPLITS, partial: bool = False) -> Report:
    report = Report()
    keyed: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        if (HERE / f"{split}.json").exists() or not partial:
            keyed[split] = check_split(split, report, partial)
    every = [r for records in keyed.values() for r in records]
    for key, n in Counter(r.get("key") for r in every).items():
        if n > 1:
            report.fail(str(key), f"key used {n} times")
    if len(keyed) == 2:  # the held-out lessons are other lessons, not rewordings of dev ones
        for a, b in itertools.product(keyed["dev"], keyed["heldout"]):
            j = jaccard(" ".join((a["title"], a["description"])), " ".join((b["title"], b["description"])))
            if j >= MAX_RECORD_OVERLAP:
                report.fail(f"{a['key']}/{b['key']}", f"dev and held-out records near-duplicate ({j:.2f})")
    return report


def summary(report: Report) -> str:
    lines = []
    for split, counts in report.counts.items():
        lines.append(f"{split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for target, values in report.overlaps[split].items():
            if values:
                lines.append(f"  query vs {target:<12} Jaccard mean {statistics.mean(values):.3f}  max {max(values):.3f}  (n={len(values)})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("splits", nargs="*", choices=[*SPLITS, []], help="default: both")
    parser.add_argument("--partial", action="store_true", help="skip the minimum counts (a split being written)")
    args = parser.parse_args()
    report = check(tuple(args.splits) or SPLITS, args.partial)
    print(summary(report))
    for problem in report.problems:
        print("PROBLEM", problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
