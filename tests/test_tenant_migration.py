"""``contextd-mcp migrate-tenant`` on a real embedded store: data stored under the first tenant
derivation (remote owner without its host) is moved to the current scope, and nothing else is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.container import build
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.services.error_text import normalise, sparse_vector
from contextd_mcp.scope_resolver import resolve_scope
from contextd_mcp.tenant_migration import legacy_scope
from tests.helpers import connected, data, error_text, run_cli
from tests.test_scope_resolver import git_repo

pytestmark = pytest.mark.anyio


# The remediation's own terms: a lexical-only search for them finds it, in its tenant's layout.
REMEDY_TERMS = sparse_vector(normalise("ModuleNotFoundError: yaml No module named 'yaml'"))


def _lexical(container: Any, scope: Scope) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in Stores(container.store).of(scope).sparse_search("remediations", REMEDY_TERMS, 5)]


def caller(scope: Scope) -> Caller:
    return Caller(scope=scope, transport="memory", connection_id="c1")


async def _seed(data_dir: Path, embedder: FastEmbedEmbedder, old: Scope, victim: Scope) -> dict[str, Any]:
    container = build(DataPaths(data_dir), embedder=embedder)
    try:
        async with connected(container, caller(old)) as client:
            call = lambda tool, **args: client.call_tool(tool, args)  # noqa: E731
            seeded = {
                "memory": data(await call("memory_store", title="Pin boto3 below 1.36", content="1.36 rejects ContentMD5.")),
                "skill": data(await call("skill_create", name="review", description="Review.", prompt_template="Review {{f}}")),
                "org_skill": data(await call("skill_create", name="org-wide", description="Org.", prompt_template="Org",
                                             scope="org")),
                "agent": data(await call("agent_create", name="helper", description="Helps.", system_prompt="Help.",
                                         skills=["review"])),
                "policy": data(await call("policy_set", title="No force push", scope="project", severity="critical",
                                          rule={"kind": "command_regex", "pattern": "git push --force"})),
                "remedy": data(await call("remediation_record", title="ModuleNotFoundError: yaml",
                                          problem="No module named 'yaml'", solution="pip install PyYAML")),
                "session": data(await call("session_start", task="upgrade boto3")),
            }
            seeded["checkpoint"] = data(await call("checkpoint_save", summary="Halfway through the upgrade."))
        async with connected(container, caller(victim)) as client:  # another host's acme/other
            seeded["other"] = data(await client.call_tool("memory_store", {"title": "Other", "content": "Not theirs."}))
        seeded["lexical"] = _lexical(container, old)
    finally:
        container.close()
    return seeded


async def test_migrate_tenant_moves_the_checkouts_records_and_nothing_else(tmp_path: Path, embedder: FastEmbedEmbedder) -> None:
    repo = git_repo(tmp_path / "app", "https://github.com/Acme/App.git")
    old, new = legacy_scope(repo, {}), resolve_scope(repo, {})
    assert (old.tenant, old.project) == ("acme", "App") and new.tenant.startswith("github.com_acme-") and new.project == "app"
    victim = Scope(tenant="acme", project="other")
    data_dir = tmp_path / "data"
    seeded = await _seed(data_dir, embedder, old, victim)

    dry = run_cli(data_dir, "migrate-tenant", "--path", str(repo))
    assert dry.returncode == 0, dry.stderr
    for line in ("would move 1 record(s) in memories", "would move 1 record(s) in skills", "would move 1 record(s) in agents",
                 "would move 1 record(s) in policies", "would move 1 record(s) in remediations",
                 "would move 1 record(s) in checkpoints", "would move 1 record(s) in sessions", "dry run"):
        assert line in dry.stdout, dry.stdout
    assert "left 1 team/org-level record(s) of tenant acme in skills" in dry.stdout

    container = build(DataPaths(data_dir), embedder=embedder)
    try:  # the dry run changed nothing
        async with connected(container, caller(new)) as client:
            assert error_text(await client.call_tool("memory_get", {"memory_id": seeded["memory"]["id"]})).startswith("not_found")
    finally:
        container.close()

    applied = run_cli(data_dir, "migrate-tenant", "--path", str(repo), "--apply")
    assert applied.returncode == 0 and "moved 1 record(s) in memories" in applied.stdout, applied.stdout + applied.stderr

    container = build(DataPaths(data_dir), embedder=embedder)
    try:
        async with connected(container, caller(new)) as client:
            call = lambda tool, **args: client.call_tool(tool, args)  # noqa: E731
            assert data(await call("memory_get", memory_id=seeded["memory"]["id"]))["title"] == "Pin boto3 below 1.36"
            found = data(await call("memory_search", query="boto3 ContentMD5"))["memories"]
            assert [m["id"] for m in found] == [seeded["memory"]["id"]]
            # Its terms moved with it, into the new tenant's layout: the same lexical match as before.
            # (Scores to float32 rounding: the engine sums a query's terms in index order, which
            # differs between the two tenants' term spaces.)
            moved = _lexical(container, new)
            assert seeded["lexical"] != [] and [i for i, _ in moved] == [i for i, _ in seeded["lexical"]]
            assert [s for _, s in moved] == pytest.approx([s for _, s in seeded["lexical"]], rel=1e-6)
            assert _lexical(container, old) == []
            assert data(await call("skill_get", name="review"))["id"] == seeded["skill"]["id"]
            helper = data(await call("agent_get", name="helper"))
            assert [s["name"] for s in helper["skills"]] == ["review"] and helper["missing_skills"] == []
            assert data(await call("policy_get", policy_id=seeded["policy"]["id"]))["title"] == "No force push"
            assert data(await call("remediation_get", remediation_id=seeded["remedy"]["id"]))["id"] == seeded["remedy"]["id"]
            listed = data(await call("checkpoint_list", session_id=seeded["session"]["session_id"]))["checkpoints"]
            assert [c["id"] for c in listed] == [seeded["checkpoint"]["checkpoint_id"]]
            # The org-level skill was shared by every project of the old tenant: it stayed.
            assert error_text(await call("skill_get", name="org-wide")).startswith("not_found")
        async with connected(container, caller(old)) as client:
            assert error_text(await client.call_tool("memory_get", {"memory_id": seeded["memory"]["id"]})).startswith("not_found")
        async with connected(container, caller(victim)) as client:
            assert data(await client.call_tool("memory_get", {"memory_id": seeded["other"]["id"]}))["title"] == "Other"
            assert data(await client.call_tool("skill_get", {"name": "org-wide"}))["id"] == seeded["org_skill"]["id"]
    finally:
        container.close()

    again = run_cli(data_dir, "migrate-tenant", "--path", str(repo), "--apply")
    assert "nothing stored under acme/default/App" in again.stdout
    shared = run_cli(data_dir, "migrate-tenant", "--path", str(repo), "--apply", "--include-shared")
    assert "moved 1 record(s) in skills" in shared.stdout, shared.stdout
    container = build(DataPaths(data_dir), embedder=embedder)
    try:
        async with connected(container, caller(new)) as client:
            assert data(await client.call_tool("skill_get", {"name": "org-wide"}))["id"] == seeded["org_skill"]["id"]
    finally:
        container.close()


def test_a_scope_the_first_derivation_gave_alike_has_nothing_to_move(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    shown = run_cli(tmp_path / "data", "migrate-tenant", "--path", str(plain))
    assert shown.returncode == 0 and "nothing to move" in shown.stdout
