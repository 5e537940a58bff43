"""Policies at org, team and project scope, with overrides by id, checked without an LLM.

``check`` is a plain method so that other services (the ``bash`` tool) call it before acting:
``PolicyService.check(scope, action, context) -> PolicyCheckResult``; a result with
``blocking`` (a critical violation) means the action must not run.
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from contextd_mcp.errors import Conflict, Denied, InvalidInput, NotFound
from contextd_mcp.models.policy import (
    POLICIES_PER_SCOPE_MAX,
    AppliedOverride,
    CheckPolicies,
    EnablePack,
    ListPolicies,
    PackEnabled,
    Policy,
    PolicyById,
    PolicyCheckResult,
    PolicyContext,
    PolicyDeleted,
    PolicyList,
    PolicySaved,
    PolicySummary,
    Rule,
    SetPolicy,
    Severity,
    Violation,
)
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.policy_pack import PACKS, PackPolicy
from contextd_mcp.services.policy_rules import Check, RuleCompiler, Subject

COLLECTION = "policies"
_RULE: TypeAdapter[Any] = TypeAdapter(Rule)
# Packs enabled by configuration sit above every tenant's org: an org may override them too.
_RANK = {ScopeLevel.project: 0, ScopeLevel.team: 1, ScopeLevel.org: 2}
_CONFIG_RANK = 3
_SEVERITY_ORDER = {Severity.critical: 0, Severity.warning: 1, Severity.info: 2}
_PACK_NAMESPACE = uuid.UUID("8f0f5c2e-6a57-4f53-9a43-2b1c7c1f0e11")
_COMPILED_CACHE_MAX = 4096
# This process is the store's only writer (DESIGN.md §1), so a write clears the cache of the
# policies that apply to each scope; the TTL bounds staleness when several daemons share one
# Qdrant server.
_APPLICABLE_TTL_S = 2.0


@dataclass(frozen=True)
class _Entry:
    id: str
    level: ScopeLevel
    rank: int
    payload: dict[str, Any]
    source: str  # "stored" | "config"

    @property
    def overrides(self) -> str | None:
        return self.payload.get("overrides")


def _audience(scope: Scope, level: ScopeLevel) -> str:
    """Who a policy living at ``level`` of ``scope`` applies to, as one key: the policies that
    apply to a caller are then one scan (any of its three keys) instead of three."""
    return f"{level.value}:" + "/".join(scope.read_filter(level).values())


def _config_entry(pack: str, item: PackPolicy) -> _Entry:
    payload = {
        "title": item.title,
        "rule": item.rule,
        "severity": item.severity.value,
        "category": item.category,
        "suggestion": item.suggestion,
        "enabled": True,
        "overrides": None,
        "pack": pack,
        "pack_key": f"{pack}:{item.key}",
        "updated_ts": 0.0,
    }
    ident = str(uuid.uuid5(_PACK_NAMESPACE, f"config:{pack}:{item.key}"))
    return _Entry(ident, ScopeLevel.org, _CONFIG_RANK, payload, "config")


class PolicyService:
    def __init__(
        self,
        backing: Backing,
        config_packs: Sequence[str] = (),
    ) -> None:
        unknown = sorted(set(config_packs) - set(PACKS))
        if unknown:
            raise InvalidInput("CONTEXTD_POLICY_PACKS", f"unknown pack(s) {', '.join(unknown)}; known: {', '.join(PACKS)}")
        self._stores = backing.stores
        self._scrubber = backing.scrubber
        self._compiler = RuleCompiler(backing.scrubber)
        self._now = backing.now
        self._lock = threading.Lock()  # set-by-title is read-then-write
        self._compiled: dict[tuple[str, float], Check] = {}
        self._applicable_cache: dict[tuple[str, str, str], tuple[float, list[_Entry]]] = {}
        self._config = [_config_entry(pack, item) for pack in dict.fromkeys(config_packs) for item in PACKS[pack]]
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=(
                    "tenant", "team", "project", "level", "audience", "category", "overrides", "title_key", "pack_key",
                ),
                float_fields=("created_ts",),
            )
        )

    # ---- reading -------------------------------------------------------------------------

    def _applicable(self, scope: Scope) -> list[_Entry]:
        key = (scope.tenant, scope.team, scope.project)
        cached = self._applicable_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < _APPLICABLE_TTL_S:
            return list(cached[1])
        entries = self._load_applicable(scope)
        if len(self._applicable_cache) >= _COMPILED_CACHE_MAX:
            self._applicable_cache.clear()
        self._applicable_cache[key] = (time.monotonic(), entries)
        return list(entries)

    def _load_applicable(self, scope: Scope) -> list[_Entry]:
        levels = (ScopeLevel.org, ScopeLevel.team, ScopeLevel.project)
        where = {"audience": [_audience(scope, level) for level in levels]}
        records = self._stores.of(scope).scan(COLLECTION, 3 * POLICIES_PER_SCOPE_MAX, ScopeLevel.org, where)
        stored = []
        for record in records:
            level = ScopeLevel(record.payload["level"])
            stored.append(_Entry(record.id, level, _RANK[level], record.payload, "stored"))
        stored.sort(key=lambda e: (-e.rank, float(e.payload.get("created_ts", 0.0)), e.id))  # widest, then oldest
        kept_keys = {e.payload.get("pack_key") for e in stored if e.payload.get("pack_key")}
        return [e for e in self._config if e.payload["pack_key"] not in kept_keys] + stored

    def _find(self, scope: Scope, policy_id: str) -> _Entry:
        for entry in self._applicable(scope):
            if entry.id == policy_id:
                return entry
        raise NotFound("policy", policy_id)

    def _policy(self, entry: _Entry) -> Policy:
        p = entry.payload
        return Policy(
            id=entry.id,
            title=p["title"],
            rule=p.get("rule"),
            severity=p.get("severity"),
            scope=entry.level,
            category=p.get("category"),
            suggestion=p.get("suggestion"),
            enabled=p.get("enabled"),
            overrides=entry.overrides,
            source=entry.source,
            pack=p.get("pack"),
        )

    def get(self, scope: Scope, request: PolicyById) -> Policy:
        return self._policy(self._find(scope, request.policy_id))

    def list(self, scope: Scope, request: ListPolicies) -> PolicyList:
        entries = self._applicable(scope)
        if request.scope is not None:
            entries = [e for e in entries if e.level == request.scope]
        if request.category is not None:
            entries = [e for e in entries if e.payload.get("category") == request.category]
        entries.sort(key=lambda e: (-e.rank, e.overrides is not None, e.payload["title"].lower()))
        return PolicyList(
            policies=[
                PolicySummary(**self._policy(e).model_dump(include=set(PolicySummary.model_fields)))
                for e in entries[: request.limit]
            ]
        )

    # ---- writing -------------------------------------------------------------------------

    def _compile(self, rule: BaseModel | dict[str, Any], cache_key: tuple[str, float] | None = None) -> Check:
        if cache_key is not None and cache_key in self._compiled:
            return self._compiled[cache_key]
        model = _RULE.validate_python(rule) if isinstance(rule, dict) else rule
        compiled = self._compiler.compile(model)
        if cache_key is not None:
            if len(self._compiled) >= _COMPILED_CACHE_MAX:
                self._compiled.clear()
            self._compiled[cache_key] = compiled
        return compiled

    def set(self, scope: Scope, request: SetPolicy, pack: PackPolicy | None = None, pack_name: str = "") -> PolicySaved:
        if request.rule is not None:
            self._compile(request.rule)  # refuses bad patterns and oversize rules, naming the field
        # The policies living at the request's level of the caller's scope.
        store, reach, owner = self._stores.of(scope), request.scope, {"level": request.scope.value}
        def scrub(text: str | None) -> str | None:
            return self._scrubber.scrub(text).text if text else text

        with self._lock:
            if request.overrides is not None:
                parent = self._find(scope, request.overrides)
                if parent.overrides is not None:
                    raise InvalidInput("overrides", "names an override; name the policy it overrides")
                if parent.rank <= _RANK[request.scope]:
                    raise InvalidInput(
                        "overrides",
                        f"a {request.scope.value}-scope policy can only override one of a wider scope "
                        f"(this one lives at {parent.level.value} scope)",
                    )
                key = {**owner, "overrides": parent.id}
                title = request.title or parent.payload["title"]
            else:
                key = {**owner, "title_key": (request.title or "").lower()}
                title = request.title or ""
            existing = store.scan(COLLECTION, 1, reach, key)
            if not existing and store.count(COLLECTION, reach, owner) >= POLICIES_PER_SCOPE_MAX:
                raise Conflict(f"this {request.scope.value} scope already holds {POLICIES_PER_SCOPE_MAX} policies")
            now = self._now()
            payload: dict[str, Any] = {
                **scope.fields(),
                "level": request.scope.value,
                "audience": _audience(scope, request.scope),
                "title": scrub(title),
                "title_key": title.lower() if request.overrides is None else None,
                "rule": request.rule.model_dump(mode="json", exclude_defaults=True) if request.rule is not None else None,
                "severity": request.severity.value if request.severity else None,
                "category": request.category,
                "suggestion": scrub(request.suggestion),
                "enabled": request.enabled if request.overrides is not None else request.enabled is not False,
                "overrides": request.overrides,
                "pack": pack_name or None,
                "pack_key": f"{pack_name}:{pack.key}" if pack else None,
                "created_ts": existing[0].payload.get("created_ts", now) if existing else now,
                "updated_ts": now,
            }
            ident = existing[0].id if existing else str(uuid.uuid4())
            store.upsert(COLLECTION, [Record(id=ident, payload=payload)])
            self._applicable_cache.clear()
        return PolicySaved(id=ident, replaced_existing=bool(existing))

    def delete(self, scope: Scope, request: PolicyById) -> PolicyDeleted:
        entry = self._find(scope, request.policy_id)
        if entry.source == "config":
            raise Denied(
                "this policy is enabled by the server's configuration (CONTEXTD_POLICY_PACKS); "
                "disable it for your scope with policy_set(overrides=<id>, enabled=false)"
            )
        with self._lock:
            # Overrides of a deleted policy would point at nothing: they go too, tenant-wide.
            store = self._stores.of(scope)
            children = store.scan(COLLECTION, 10_000, ScopeLevel.org, {"overrides": entry.id})
            store.delete(COLLECTION, [entry.id, *(c.id for c in children)], ScopeLevel.org)
            self._applicable_cache.clear()
        return PolicyDeleted(id=entry.id, deleted_overrides=len(children))

    def enable_pack(self, scope: Scope, request: EnablePack) -> PackEnabled:
        ids = []
        for item in PACKS[request.pack.value]:
            rule = _RULE.validate_python(item.rule)
            policy = SetPolicy(
                title=item.title, rule=rule, severity=item.severity, scope=request.scope,
                category=item.category, suggestion=item.suggestion,
            )
            ids.append(self.set(scope, policy, pack=item, pack_name=request.pack.value).id)
        return PackEnabled(pack=request.pack.value, scope=request.scope, policy_ids=ids)

    # ---- checking ------------------------------------------------------------------------

    def check(
        self, scope: Scope, action: str, context: PolicyContext | Mapping[str, Any] | None = None
    ) -> PolicyCheckResult:
        """Evaluate every enabled policy that applies to ``scope`` against ``action``."""
        if context is None:
            context = PolicyContext()
        elif not isinstance(context, PolicyContext):
            known = {k: v for k, v in context.items() if k in PolicyContext.model_fields and v not in (None, "")}
            context = PolicyContext.model_validate(known)
        subject = Subject(action, context)
        entries = self._applicable(scope)
        overrides: dict[str, list[_Entry]] = {}
        for entry in entries:
            if entry.overrides is not None:
                overrides.setdefault(entry.overrides, []).append(entry)
        violations: list[tuple[Violation, str | None]] = []
        applied: list[AppliedOverride] = []
        checked = 0
        for base in (e for e in entries if e.overrides is None):
            effective = dict(base.payload)
            rule_key = (base.id, float(base.payload.get("updated_ts", 0.0)))
            # Wider overrides first, so the narrowest scope has the last word.
            for override in sorted(overrides.get(base.id, []), key=lambda e: -e.rank):
                changes = self._apply(effective, override.payload)
                if override.payload.get("rule") is not None:
                    rule_key = (override.id, float(override.payload.get("updated_ts", 0.0)))
                applied.append(
                    AppliedOverride(
                        policy_id=base.id, title=base.payload["title"], by=override.id, scope=override.level,
                        change=", ".join(changes) or "no change",
                    )
                )
            if effective.get("enabled") is False:
                continue
            checked += 1
            reason = self._compile(effective["rule"], rule_key)(subject)
            if reason is None:
                continue
            severity = Severity(effective["severity"])
            violation = Violation(
                policy_id=base.id, title=effective["title"], reason=reason, severity=severity,
                scope=base.level, category=effective.get("category"),
            )
            violations.append((violation, effective.get("suggestion")))
        violations.sort(key=lambda pair: _SEVERITY_ORDER[pair[0].severity])  # stable: widest scope first within a severity
        return PolicyCheckResult(
            compliant=not violations,
            blocking=any(v.severity is Severity.critical for v, _ in violations),
            violations=[v for v, _ in violations],
            suggestions=list(dict.fromkeys(s for _, s in violations if s)),
            overridden=applied,
            checked=checked,
        )

    def check_request(self, scope: Scope, request: CheckPolicies) -> PolicyCheckResult:
        return self.check(scope, request.action, request.context)

    @staticmethod
    def _apply(effective: dict[str, Any], override: Mapping[str, Any]) -> builtins.list[str]:
        changes: builtins.list[str] = []
        enabled = override.get("enabled")
        if enabled is not None and enabled != effective.get("enabled", True):
            changes.append("disabled" if not enabled else "enabled")
            effective["enabled"] = enabled
        severity = override.get("severity")
        if severity and severity != effective.get("severity"):
            changes.append(f"severity {effective.get('severity')} → {severity}")
            effective["severity"] = severity
        if override.get("rule") is not None:
            changes.append("rule replaced")
            effective["rule"] = override["rule"]
        if override.get("suggestion"):
            changes.append("suggestion replaced")
            effective["suggestion"] = override["suggestion"]
        return changes

    def counts(self, scope: Scope) -> int:
        return self._stores.of(scope).count(COLLECTION)
