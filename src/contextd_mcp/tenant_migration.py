"""Moving a project's records from the scope the first derivation gave it to the current one.

The first derivation made the tenant the remote's owner without its host (the last two path
parts: ``gitlab.com/orgA/backend/api`` → ``backend``), so projects of different hosts or
groups could share a tenant; the current one (``scope_resolver``) is the full owner identity.
Data stored before is then out of reach under the new tenant. ``contextd-mcp migrate-tenant``
moves one checkout's project from the old scope to the new, in every collection:

- what moves: the records owned by exactly the old (tenant, team, project) — project-level.
  Team- and org-level records of the old tenant (``project`` is ``*``) were shared by every
  project that derived that tenant, possibly unrelated ones (the collision itself): they stay
  unless ``include_shared`` is asked, once the operator knows they all belong to the new tenant;
- how: ``set_fields`` on the owner fields (and the fields derived from them: a policy's
  ``audience``, a named record's ``origin_project``); ids stay, so references between records
  (sessions, checkpoints, agents → skills, policy overrides) stay valid. A memory or fix stored
  again with the very same text under the new scope then gets a second copy (its content id
  includes the scope) instead of matching the moved one;
- a record's sparse (lexical) vector is in its tenant's part of the term index space
  (``ports.tenant_terms``): moving it to another tenant re-maps its terms in the same engine
  write as its owner fields (``move_sparse``), so it never holds one tenant's name and another's
  terms. A collection never opened by the per-tenant code holds plain terms: ``set_fields``
  suffices there, its one-time rewrite later reads the (new) owner;
- a named record (skill, agent) whose name is already taken where it would go is left in place
  and reported: rename one, then run again.

An explicitly named admin path: it works on the raw store, outside any caller's scope, with the
daemon stopped (the embedded store has one owner). Only the CLI and tests use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextd_mcp.models.scope import Scope
from contextd_mcp.ports import tenant_terms
from contextd_mcp.ports.vector_store import CollectionSpec, VectorStore
from contextd_mcp.scope_resolver import LOCAL_TENANT, find_repo_root, local_project, remote_urls

# What the embedded store writes beside each collection (adapters/qdrant_edge_store.py).
_META = "contextd-collection.json"
ANY = "*"  # services/levels.py: the owner part of a team- or org-level record
BATCH = 1000

# The first derivation, kept only to find where its data lives.
_LEGACY_REMOTE = re.compile(r"(?:[:/])(?P<owner>[^/:]+)/(?P<repo>[^/]+?)(?:\.git)?/?$")
_LEGACY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _legacy_safe(name: str) -> str:
    return (_LEGACY_UNSAFE.sub("-", name).strip("-.") or "x")[:64]


def legacy_scope(cwd: Path, env: Mapping[str, str]) -> Scope:
    """The scope the first derivation gave ``cwd`` (owner without host → tenant)."""
    directory = cwd.resolve()
    root = find_repo_root(directory) or directory
    tenant, project = LOCAL_TENANT, local_project(root)
    if (root / ".git").exists():
        for _, url in remote_urls(root):
            match = _LEGACY_REMOTE.search(url)
            if match:
                tenant, project = _legacy_safe(match["owner"].lower()), _legacy_safe(match["repo"])
                break
    return Scope(
        tenant=env.get("CONTEXTD_TENANT") or tenant,
        team=env.get("CONTEXTD_TEAM") or "default",
        project=env.get("CONTEXTD_PROJECT") or project,
    )


def existing_collections(store_dir: Path) -> list[CollectionSpec]:
    """The collections an embedded store holds, with the model and size their vectors have."""
    specs = []
    for meta in sorted(store_dir.glob(f"*/{_META}")):
        described = json.loads(meta.read_text())
        # A term layout is recorded only for collections with sparse vectors (ports/scoped_store.py).
        sparse = bool(described.get("terms"))
        specs.append(CollectionSpec(meta.parent.name, int(described["dim"]), str(described["model"]), sparse=sparse))
    return specs


@dataclass
class Move:
    """What moving ``old`` → ``new`` does, per collection."""

    old: Scope
    new: Scope
    include_shared: bool = False
    moved: dict[str, int] = field(default_factory=dict)  # project records (and shared ones when asked)
    shared_left: dict[str, int] = field(default_factory=dict)  # team / org records of the old tenant, left
    conflicts: list[str] = field(default_factory=list)  # "skills/review": the name is taken at the target


def _wheres(old: Scope, include_shared: bool) -> list[dict[str, Any]]:
    wheres: list[dict[str, Any]] = [old.fields()]
    if include_shared:
        wheres += [{"tenant": old.tenant, "team": old.team, "project": ANY}, {"tenant": old.tenant, "team": ANY}]
    return wheres


def _shared_where(old: Scope) -> dict[str, Any]:
    return {"tenant": old.tenant, "project": ANY}


def _target(payload: Mapping[str, Any], old: Scope, new: Scope) -> dict[str, Any]:
    """The owner fields a record gets: each part that was the old scope's becomes the new one's."""
    fields: dict[str, Any] = {"tenant": new.tenant}
    for part in ("team", "project"):
        value = payload.get(part)
        fields[part] = getattr(new, part) if value == getattr(old, part) else value
    if payload.get("origin_project") == old.project:
        fields["origin_project"] = new.project
    if payload.get("origin_team") == old.team:
        fields["origin_team"] = new.team
    if "audience" in payload and "level" in payload:  # services/policy.py: "level:" + the owner parts it reads
        parts = [fields["tenant"], fields["team"], fields["project"]]
        depth = {"org": 1, "team": 2}.get(str(payload["level"]), 3)
        fields["audience"] = f"{payload['level']}:" + "/".join(parts[:depth])
    return fields


def _name_taken(store: VectorStore, collection: str, payload: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    if "name_key" not in payload:
        return False
    where = {"tenant": target["tenant"], "team": target["team"], "project": target["project"], "name_key": payload["name_key"]}
    return bool(store.scan(collection, where, limit=1))


def _move_one(store: VectorStore, spec: CollectionSpec, record_id: str, target: dict[str, Any], where: dict[str, Any]) -> None:
    if not spec.sparse:
        store.set_fields(spec.name, record_id, target, where)
        return
    new, secret = str(target["tenant"]), store.term_key(spec.name)
    store.move_sparse(spec.name, record_id, target, where,
                      lambda payload, sparse: tenant_terms.between(sparse, str(payload["tenant"]), new, secret))


def _move_where(store: VectorStore, spec: CollectionSpec, where: dict[str, Any], move: Move, apply: bool) -> int:
    collection = spec.name
    total = store.count(collection, where)
    if not apply:  # one read: count, and find the names that would clash
        records = store.scan(collection, where, limit=max(total, 1))
        taken = [r for r in records if _name_taken(store, collection, r.payload, _target(r.payload, move.old, move.new))]
        move.conflicts += [f"{collection}/{r.payload.get('name', r.id)}" for r in taken]
        return total - len(taken)
    moved, skipped = 0, set[str]()
    while True:  # a moved record no longer matches ``where``: each round reads the next ones
        batch = [r for r in store.scan(collection, where, limit=BATCH + len(skipped)) if r.id not in skipped]
        if not batch:
            return moved
        for record in batch:
            target = _target(record.payload, move.old, move.new)
            if _name_taken(store, collection, record.payload, target):
                move.conflicts.append(f"{collection}/{record.payload.get('name', record.id)}")
                skipped.add(record.id)
                continue
            _move_one(store, spec, record.id, target, where)
            moved += 1


def plan_or_apply(store: VectorStore, collections: list[CollectionSpec], move: Move, apply: bool) -> Move:
    """Counts (and with ``apply``, moves) what ``move`` covers in every collection."""
    if move.old == move.new:
        return move
    # Shared records only change owner when the tenant does (else they already apply to the new scope).
    shared = move.include_shared and move.old.tenant != move.new.tenant
    for spec in collections:
        store.ensure(spec)
        if spec.sparse and apply:  # finishes an interrupted rewrite first: every term then per tenant
            store.rewrite_sparse(spec.name, tenant_terms.LAYOUT, tenant_terms.from_plain(store.term_key(spec.name)))
        moved = sum(_move_where(store, spec, where, move, apply) for where in _wheres(move.old, shared))
        if moved:
            move.moved[spec.name] = moved
        left = 0 if shared or move.old.tenant == move.new.tenant else store.count(spec.name, _shared_where(move.old))
        if left:
            move.shared_left[spec.name] = left
    if apply:
        store.flush()
    return move


def report(move: Move, applied: bool) -> list[str]:
    old, new = "/".join(move.old.fields().values()), "/".join(move.new.fields().values())
    if move.old == move.new:
        return [f"scope {new}: the first derivation gave the same; nothing to move"]
    verb = "moved" if applied else "would move"
    lines = [f"old scope {old} (first derivation: remote owner without its host)", f"new scope {new}"]
    lines += [f"  {verb} {n} record(s) in {name}" for name, n in sorted(move.moved.items())]
    if not move.moved:
        lines.append(f"  nothing stored under {old}")
    for name, n in sorted(move.shared_left.items()):
        lines.append(
            f"  left {n} team/org-level record(s) of tenant {move.old.tenant} in {name}: shared by every project "
            "that derived that tenant; add --include-shared if they all belong to the new tenant"
        )
    lines += [f"  left {c}: its name is taken in the new scope (rename one, then run again)" for c in move.conflicts]
    if not applied and move.moved:
        lines.append("dry run: nothing changed; run again with --apply (the daemon must be stopped)")
    return lines


def migrate(store_dir: Path, store: VectorStore, cwd: Path, env: Mapping[str, str], apply: bool,
            include_shared: bool = False) -> list[str]:
    """``contextd-mcp migrate-tenant``: the report of moving ``cwd``'s project to its current scope."""
    from contextd_mcp.scope_resolver import resolve_scope

    move = Move(old=legacy_scope(cwd, env), new=resolve_scope(cwd, env), include_shared=include_shared)
    return report(plan_or_apply(store, existing_collections(store_dir), move, apply), apply)
