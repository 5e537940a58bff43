"""Error normalisation and lexical terms: volatile parts go, the signature stays."""

from __future__ import annotations

import time

from contextd_mcp.services.error_text import dense_text, infer_category, normalise, sparse_vector, term_index, terms


def test_two_occurrences_of_one_failure_normalise_alike() -> None:
    first = (
        '2024-12-18T03:06:35.0440000Z Traceback (most recent call last):\n'
        '  File "/home/alice/projects/shop/shop/cli.py", line 628, in <module>\n'
        "    import yaml\n"
        "ModuleNotFoundError: No module named 'yaml'"
    )
    second = (
        'Traceback (most recent call last):\n'
        '  File "/srv/builds/x9/shop/cli.py", line 12, in <module>\n'
        "    import yaml\n"
        "ModuleNotFoundError: No module named 'yaml'"
    )
    assert normalise(first) == normalise(second)
    assert "ModuleNotFoundError: No module named 'yaml'" in normalise(first)
    assert "alice" not in normalise(first) and "628" not in normalise(first)


def test_volatile_parts_become_placeholders() -> None:
    text = normalise(
        "worker failed [2025-05-03 15:35:41.960 UTC] pid 57942 request 3f2a9c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b at 0x7ffd5e8c "
        "from 10.2.3.4 took 1532 ms; python 3.12.5 wrote /tmp/tmpab12cd9x/out.json (commit 41d23e7f9a)"
    )
    for gone in ("57942", "3f2a9c1e", "0x7ffd5e8c", "10.2.3.4", "1532", "3.12.5", "tmpab12cd9x", "41d23e7f9a", "2025"):
        assert gone not in text, gone
    for kept in ("<ts>", "<uuid>", "<hex>", "<ip>", "<ver>", "out.json"):
        assert kept in text, (kept, text)


def test_signature_tokens_survive() -> None:
    text = normalise(
        "error[E0382]: borrow of moved value: `order`\n"
        "npm ERR! code ERESOLVE\n"
        "Error: connect ECONNREFUSED 127.0.0.1:5432\n"
        "psycopg2.errors.UniqueViolation: duplicate key value (SQLSTATE 23505)\n"
        "  File \"/usr/lib/python3.11/site-packages/django/db/utils.py\", line 91"
    )
    for kept in ("E0382", "ERESOLVE", "ECONNREFUSED", "ipv4-loopback :5432", "psycopg2.errors.UniqueViolation", "23505", "django", "utils.py"):
        assert kept in text, (kept, text)


def test_loopback_addresses_keep_their_family() -> None:
    assert "ipv6-loopback :6379" in normalise("connect ECONNREFUSED ::1:6379")
    assert "ipv4-loopback :6379" in normalise("connect ECONNREFUSED 127.0.0.1:6379")


def test_ci_trailers_and_repeats_are_dropped() -> None:
    text = normalise("fatal: not a git repository\nfatal: not a git repository\nError: Process completed with exit code 1.")
    assert text == "fatal: not a git repository"


def test_terms_keep_whole_identifiers_and_their_parts() -> None:
    found = terms(normalise("psycopg2.errors.QueryCanceled: canceling statement due to statement timeout"))
    assert {"=psycopg2.errors.querycanceled", "psycopg2", "querycanceled", "query", "canceled", "statement+timeout"} <= set(found)
    assert found["statement"] == 2
    assert "to" not in found and "due" in found


def test_sparse_vector_is_hashed_and_unit_when_asked() -> None:
    vector = sparse_vector("npm ERR! code ERESOLVE", unit=True)
    assert term_index("eresolve") in vector and all(0 <= i < 2**32 for i in vector)
    assert abs(sum(v * v for v in vector.values()) - 1.0) < 1e-9
    assert sparse_vector("") == {}


def test_dense_text_leads_with_the_decisive_line_and_is_capped() -> None:
    lines = [f"  frame {i} in module_{i}" for i in range(200)] + ["KeyError: 'DATABASE_URL'"]
    text = dense_text(normalise("Traceback (most recent call last):\n" + "\n".join(lines)))
    assert text.startswith("KeyError: 'DATABASE_URL'") and len(text) <= 400


def test_huge_input_is_bounded_and_fast() -> None:
    started = time.perf_counter()
    normalise("a/" * 500_000 + "x" * 100_000)
    terms(normalise("(" * 200_000))
    assert time.perf_counter() - started < 2.0


def test_category_rules() -> None:
    assert infer_category("npm ERR! code ERESOLVE could not resolve dependency tree") == "dependency"
    assert infer_category("psycopg2.errors.UndefinedTable: relation \"users\" does not exist") == "database"
    assert infer_category("curl: (6) Could not resolve host: api.example.com") == "network"
    assert infer_category("undefined reference to `pthread_create'") == "build"
    assert infer_category("pytest: fixture 'db' not found") == "test"
    assert infer_category("TypeError: Cannot read properties of undefined") == "runtime"
    assert infer_category("everything is fine") == "unknown"
