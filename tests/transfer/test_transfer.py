"""Export and import on the real store and model, in-process (admin.py, as the CLI runs it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextd_mcp.admin import Admin, AdminError
from contextd_mcp.container import Container, build
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from tests.data.secrets import encoded_corpus as ec

HERE = Scope(tenant="acme", team="core", project="api")
OTHER = Scope(tenant="globex", team="core", project="api")
LESSONS = [
    ("Run pytest with -p no:cacheprovider in read-only checkouts", "The cache plugin writes .pytest_cache; disable it.",
     ["tests fail in a read-only checkout"]),
    ("Pin numpy below 2 for the old onnx build", "onnxruntime 1.15 wheels break with numpy 2 ABI.", ["numpy import error"]),
    ("Use uv pip compile for lock files", "It resolves in seconds where pip-compile took minutes.", []),
    ("Never run migrations inside a test transaction", "Alembic DDL commits implicitly and leaks state.", ["flaky db tests"]),
    ("Set PYTHONDONTWRITEBYTECODE in containers", "Avoids .pyc files in read-only images.", ["pyc in docker image"]),
]
QUERIES = ["pytest cache read-only", "numpy 2 breaks onnx", "slow dependency locking", "database tests flaky", "docker pyc"]


@pytest.fixture
def other(tmp_path: Path, embedder: object) -> Iterator[Container]:
    built = build(DataPaths(tmp_path / "other"), embedder=embedder)  # type: ignore[arg-type]
    yield built
    built.close()


def fill(container: Container) -> list[str]:
    stored = container.memory.store_many(
        HERE, [StoreMemory(title=t, content=c, applies_when=a, tags=["py"]) for t, c, a in LESSONS]
    )
    # A rating after a search: a learned key and an event in the history.
    search_id, hits = container.memory.search_logged(HERE, SearchMemories(query="pytest cache read-only"), "cli:x")
    container.memory.feedback(HERE, MemoryFeedback(memory_id=hits[0].id, helpful=True, search_id=search_id), "cli:x")
    return [s.id for s in stored]


def export(container: Container, tenant: str = "acme", **extra: object) -> list[str]:
    return Admin(container).run({"command": "export", "tenant": tenant, **extra})


def import_(container: Container, path: Path, **extra: object) -> dict:
    return json.loads(Admin(container).run({"command": "import", "path": str(path), **extra})[-1])


def top(container: Container) -> list[tuple[str, set[str]]]:
    """Per query: the best memory, and the set of the top 3. Vectors are recomputed from the
    texts, and the int8 model's output moves in the third decimal with the batch it is run in,
    so two unrelated memories scoring ~0.13 may swap places; the order that matters may not."""
    found = [[h.id for h in container.memory.search(HERE, SearchMemories(query=q, limit=3))] for q in QUERIES]
    return [(ids[0], set(ids)) for ids in found]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_round_trip_into_an_empty_store_then_again(container: Container, other: Container, tmp_path: Path) -> None:
    fill(container)
    lines = export(container)
    head = json.loads(lines[0])
    assert head["counts"]["memory"] == len(LESSONS) and "re-scrubbed" in head["scrubbed"]
    memory = json.loads(lines[1])
    learned = [json.loads(line) for line in lines[1:] if json.loads(line)["keys"]]
    assert learned and learned[0]["keys"][0]["kind"] == "learned" and learned[0]["payload"]["events"]
    assert "vector" not in memory
    report = import_(other, write(tmp_path / "x.jsonl", lines))
    assert (report["added"], report["changed"], report["error_count"]) == (len(LESSONS), 0, 0)
    assert export(other)[1:] == lines[1:]  # exact: the same records, keys and history
    assert top(other) == top(container)
    again = import_(other, tmp_path / "x.jsonl")
    assert (again["added"], again["changed"], again["unchanged"]) == (0, 0, len(LESSONS))
    assert again["summary"].startswith("0 added, 0 changed")


def test_merge_and_dry_run(container: Container, other: Container, tmp_path: Path) -> None:
    fill(container)
    full = export(container)
    learned = next(json.loads(line) for line in full[1:] if json.loads(line)["keys"])
    rated = next(json.loads(line)["id"] for line in full[1:] if not json.loads(line)["keys"])
    # An older copy of the learned memory (no rating yet, no learned key) and one other memory.
    older = {**learned, "keys": [], "payload": {k: v for k, v in learned["payload"].items() if k != "events"}}
    older["payload"].update(alpha=2.0, beta=1.0, helpful_count=0)
    rated_line = next(line for line in full[1:] if json.loads(line)["id"] == rated)
    write(tmp_path / "part.jsonl", [full[0], json.dumps(older), rated_line])
    import_(other, tmp_path / "part.jsonl")
    # The store's copy of the other learns on its own meanwhile: the merge keeps that too.
    other.memory.feedback(HERE, MemoryFeedback(memory_id=rated, helpful=False))
    before = export(other)[1:]
    dry = import_(other, write(tmp_path / "full.jsonl", full), dry_run=True)
    assert dry["dry_run"] and (dry["added"], dry["changed"], dry["unchanged"]) == (len(LESSONS) - 2, 1, 1)
    assert export(other)[1:] == before  # the dry run wrote nothing
    done = import_(other, tmp_path / "full.jsonl")
    assert (done["added"], done["changed"]) == (dry["added"], dry["changed"])
    merged = {json.loads(line)["id"]: json.loads(line) for line in export(other)[1:]}
    assert len(merged) == len(LESSONS)
    assert merged[rated]["payload"]["unhelpful_count"] == 1  # the store's own rating stays
    assert merged[learned["id"]]["keys"] == learned["keys"]
    assert merged[learned["id"]]["payload"]["events"] == learned["payload"]["events"]
    assert merged[learned["id"]]["payload"]["confidence"] == learned["payload"]["confidence"]
    assert import_(other, tmp_path / "full.jsonl")["summary"].startswith("0 added, 0 changed")


def test_near_duplicate_is_merged_not_doubled(container: Container, other: Container, tmp_path: Path) -> None:
    fill(container)
    title, content, _ = LESSONS[0]
    other.memory.store(HERE, StoreMemory(title=title + ".", content=content))
    report = import_(other, write(tmp_path / "x.jsonl", export(container)))
    assert report["near_duplicates"] == 1 and report["added"] == len(LESSONS) - 1
    assert other.memory.counts(HERE) == len(LESSONS)


def test_near_duplicates_of_one_file_stay_apart(container: Container, other: Container, tmp_path: Path) -> None:
    """Two near-identical memories of the source are two in an empty target (an exact restore)."""
    title, content, _ = LESSONS[0]
    container.memory.store_many(HERE, [StoreMemory(title=title, content=content),
                                       StoreMemory(title=title + ".", content=content)])
    report = import_(other, write(tmp_path / "x.jsonl", export(container)))
    assert (report["added"], report["near_duplicates"]) == (2, 0)
    assert other.memory.counts(HERE) == 2


def test_into_project(container: Container, other: Container, tmp_path: Path) -> None:
    fill(container)
    report = import_(other, write(tmp_path / "x.jsonl", export(container)), into_project="web")
    assert report["added"] == len(LESSONS)
    moved = HERE.model_copy(update={"project": "web"})
    assert other.memory.counts(moved) == len(LESSONS) and other.memory.counts(HERE) == 0


def test_hostile_file(container: Container, other: Container, tmp_path: Path) -> None:
    """Before: no import existed. Each bad line is named by its number and skipped; nothing
    reaches another tenant; a secret in a field is scrubbed on the way in."""
    fill(container)
    other.memory.store(OTHER, StoreMemory(title="Globex only", content="Their own lesson."))
    victim = other.memory.search(OTHER, SearchMemories(query="globex lesson"))[0].id
    lines = export(container, kinds=["memory"])
    good = json.loads(lines[1])
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    hostile = [
        lines[0],
        "x" * (2 << 20),  # line 2: over the line limit
        "{not json",  # line 3
        json.dumps({**good, "payload": {**good["payload"], "tenant": "globex"}}),  # line 4: another tenant
        json.dumps({"kind": "policy", "id": victim, "payload": {"tenant": "globex", "team": "core", "project": "api"}}),
        json.dumps({**good, "payload": {**good["payload"], "content": f"token {secret} leaked"}}),  # line 6
        json.dumps({**good, "payload": {**good["payload"], "title": "t" * 5000}}),  # line 7: over TITLE_MAX
    ]
    report = import_(other, write(tmp_path / "bad.jsonl", hostile))
    errors = "\n".join(report["errors"])
    assert "line 2:" in errors and "line-limit" not in errors and "byte line limit" in errors
    assert "line 3: not JSON" in errors
    assert "line 4: payload.tenant: must be the file's tenant 'acme'" in errors
    assert "line 5: payload.tenant" in errors
    assert "line 7: title" in errors
    assert report["added"] == 1 and report["redactions"] >= 1
    assert other.memory.counts(OTHER) == 1
    assert other.memory.get(OTHER, GetMemory(memory_id=victim)).title == "Globex only"
    assert secret not in "\n".join(export(other))
    aborted = import_(other, tmp_path / "bad.jsonl", on_error="abort")
    assert aborted["aborted"] and aborted["error_count"] == 1


def test_a_kept_id_never_replaces_another_tenants_record(container: Container, tmp_path: Path) -> None:
    """A policy line whose id is another tenant's policy: imported under a new id, theirs stays."""
    theirs = Record("8b0f6f2e-3a43-4b7a-9d0e-1f2a3b4c5d6e", {**OTHER.fields(), "title": "theirs", "created_ts": 1.0})
    container.store.upsert("policies", [theirs])
    head = json.loads(export(container, kinds=["policy"])[0])
    line = {"kind": "policy", "id": theirs.id, "payload": {**HERE.fields(), "title": "mine", "created_ts": 2.0}}
    report = import_(container, write(tmp_path / "p.jsonl", [json.dumps(head), json.dumps(line)]))
    assert report["added"] == 1
    assert container.store.get("policies", [theirs.id], {})[0].payload["title"] == "theirs"
    mine = [json.loads(x) for x in export(container, kinds=["policy"])[1:]]
    assert [m["payload"]["title"] for m in mine] == ["mine"] and mine[0]["id"] != theirs.id


def test_export_never_prints_a_planted_secret(container: Container) -> None:
    """Secrets written past the scrubber (an older version's store) are scrubbed on the way out,
    in every encoding the scrubber reads (the samples it catches in a field)."""
    scrubber = container.scrubber
    caught = [s for s in ec.samples() if not s.leaks(scrubber.scrub(s.text).text)]
    assert len(caught) > 100
    fill(container)
    record = container.store.get(MEMORIES, [container.memory.search(HERE, SearchMemories(query="docker pyc"))[0].id], {})[0]
    for i, sample in enumerate(caught):
        planted = {**record.payload, "content": sample.text, "tags": [f"t{i}"]}
        ident = f"00000000-0000-4000-8000-{i:012d}"
        container.store.upsert(MEMORIES, [Record(ident, planted, [1.0] + [0.0] * (container.embedder.dim - 1))])
    for fmt in ("jsonl", "markdown"):
        text = "\n".join(export(container, format=fmt))
        leaked = [s.kind + "/" + s.encoding for s in caught if s.secret in text or any(n in text for n in s.needles)]
        assert leaked == [], fmt
    assert json.loads(export(container)[0])["redacted_on_export"] >= len(caught)


def test_unknown_kind_is_refused(container: Container) -> None:
    with pytest.raises(AdminError, match="--kinds: unknown kind 'memo'"):
        export(container, kinds=["memo"])
