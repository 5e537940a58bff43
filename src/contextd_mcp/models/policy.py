"""Policies: rules an action (a shell command, a write, a commit) is checked against, without an LLM.

A policy lives at one scope (``org`` = the whole tenant, ``team``, ``project``) and applies to
every caller inside it. A policy at a lower scope may override one above it by id
(``policy_set(overrides=<id>, scope=...)``): its ``severity``, ``enabled``, ``suggestion`` and,
if given, ``rule`` replace the parent's for callers in that scope; ``policy_check`` lists every
override it applied. Setting a policy whose title already exists at that scope replaces it.

Rules (``rule`` is one JSON object, at most 4096 bytes, nested at most 3 levels):
- ``{"kind": "command_regex", "pattern": "..."}`` — the action text matches the regex.
- ``{"kind": "path_glob", "globs": ["*.pem", "secrets/**"]}`` — a path in ``context.paths`` or a
  word of the action (other than an option or operator) matches a glob (``*`` within a name, ``**`` across directories; a
  glob without ``/`` matches a file name anywhere).
- ``{"kind": "forbidden_content", "detector": "secrets"}`` — the action or ``context.content``
  holds a secret-like string (the server's secret scrubber: keys, tokens, passwords, private
  keys); or ``{"kind": "forbidden_content", "pattern": "..."}`` — it matches the regex.
- ``{"kind": "requires", "when": "...", "must_include": "..."}`` — when the action matches
  ``when``, the action or one of ``context.history`` (earlier commands) must match
  ``must_include``, e.g. tests run before a commit.
- ``{"kind": "write_outside_project", "allow": ["/tmp/**"]}`` — the action writes outside
  ``context.project_dir``: targets of ``>``/``>>``, ``tee``, ``touch``, ``mkdir``, ``rm``,
  ``rmdir``, ``truncate``, ``shred``, ``unlink``, ``chmod``/``chown`` files, the destination of
  ``cp``/``mv``/``install``/``ln``/``rsync``/``scp``, ``dd of=``, ``sed -i`` files,
  ``curl -o``/``wget -O``, the start paths of ``find … -delete``/``-exec``, and ``context.paths``.
  Paths resolve against ``context.working_dir`` and the ``cd``s earlier on the line; ``~`` and
  ``$HOME`` are outside; symlinks are not followed.
- ``{"kind": "all", "rules": [...]}`` / ``{"kind": "any", "rules": [...]}`` — every / some rule matches.

A policy is violated when its rule matches. Rules on the action read it as written *and* as it
will really run: quotes and backslashes removed, ``$'…'`` decoded, variables assigned on the line
or given in ``context.env`` substituted, ``$(echo x)`` replaced by its output; without wrappers
(``sudo``, ``env``, ``command``, ``exec``, ``nohup``, ``nice``, ``timeout``, ``xargs`` with what is piped to
it), path prefixes (``/bin/rm``), git's global options (``-c``, ``-C``, ``--git-dir``; ``-c alias.x=…``
expanded); with the flags of ``rm``/``cp``/``chmod``/``chown``/``git push`` merged (``--recursive --force``
→ ``-rf``); and the same for every piece of shell the action runs: ``eval`` and ``sh``/``bash``/``zsh -c``
arguments, ``find -exec`` commands, command substitutions, text piped or here-string'd into a shell (``echo … | base64 -d | sh``),
and values in ``context.env`` that programs run (``PAGER``, ``EDITOR``, ``GIT_SSH_COMMAND``, …). A rule
matches if it matches any of these variants (at most 32, unfolded 3 levels deep), and the reason
names the variant when it is not the text as written. This catches common obfuscations of a
cooperative agent; it is not a shell, and the sandbox, not a policy, is the security boundary.
Regexes use RE2 syntax (no backreferences or
lookaround) and run in linear time, so no pattern can hang the server; ``"ignore_case": true``
makes a regex rule case-insensitive. A bad pattern is refused when the policy is set, naming
the field (e.g. ``rule.pattern``).

Starter pack ``security`` (all critical, category ``security``): no secrets in commands, commits or
written files; no private keys or .env files committed; no piping a download into a shell
(``curl | sh``); no force-push to main or master; no writes outside the project (``/tmp`` and
``/dev/null`` allowed). Enable it for a scope with ``policy_pack_enable(pack="security", scope=...)``,
or for every tenant of a server with ``CONTEXTD_POLICY_PACKS=security``: configured packs sit above
each org, so an org, team or project can still override their policies by id. ``bash`` checks
policies before it runs a command and refuses a critical violation with its reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator
from typing_extensions import TypeAliasType

from contextd_mcp import limits
from contextd_mcp.models.requests import MemoryId, Tag
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.models.shell import ENV_MAX_ITEMS, ENV_VALUE_MAX
from contextd_mcp.models.strict import Strict

PATTERN_MAX = 500
GLOB_MAX = 300
GLOBS_MAX = 32
CHILDREN_MAX = 8
RULE_BYTES_MAX = 4096
RULE_DEPTH_MAX = 3
SUGGESTION_MAX = 500
ACTION_MAX = 16000
CONTENT_MAX = 200_000
PATH_MAX = 1000
PATHS_MAX = 200
HISTORY_MAX = 50
HISTORY_ITEM_MAX = 2000
ENV_NAME_MAX = 64
POLICIES_PER_SCOPE_MAX = 500
LIST_LIMIT_MAX = 200
class PackName(StrEnum):
    security = "security"


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


Pattern = Annotated[str, StringConstraints(min_length=1, max_length=PATTERN_MAX)]
Glob = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=GLOB_MAX)]
_IGNORE_CASE = Field(default=False, description="Case-insensitive match")


class CommandRegex(Strict):
    kind: Literal["command_regex"]
    pattern: Pattern
    ignore_case: bool = _IGNORE_CASE


class PathGlob(Strict):
    kind: Literal["path_glob"]
    globs: list[Glob] = Field(min_length=1, max_length=GLOBS_MAX)


class ForbiddenContent(Strict):
    kind: Literal["forbidden_content"]
    detector: Literal["secrets"] | None = None
    pattern: Pattern | None = None
    ignore_case: bool = _IGNORE_CASE

    @model_validator(mode="after")
    def _one_test(self) -> ForbiddenContent:
        if (self.detector is None) == (self.pattern is None):
            raise ValueError("give exactly one of detector or pattern")
        return self


class Requires(Strict):
    kind: Literal["requires"]
    when: Pattern
    must_include: Pattern
    ignore_case: bool = _IGNORE_CASE


class WriteOutsideProject(Strict):
    kind: Literal["write_outside_project"]
    allow: list[Glob] = Field(default_factory=list, max_length=GLOBS_MAX, description="Absolute path globs that are fine")


class AllOf(Strict):
    kind: Literal["all"]
    rules: list[Rule] = Field(min_length=1, max_length=CHILDREN_MAX)


class AnyOf(Strict):
    kind: Literal["any"]
    rules: list[Rule] = Field(min_length=1, max_length=CHILDREN_MAX)


# A named alias: the schema lists the seven rule kinds once, as $defs/Rule, instead of again
# inside "all" and "any" (about 500 characters of every policy_set listing).
Rule = TypeAliasType(
    "Rule",
    Annotated[
        CommandRegex | PathGlob | ForbiddenContent | Requires | WriteOutsideProject | AllOf | AnyOf,
        Field(discriminator="kind"),
    ],
)
AllOf.model_rebuild()
AnyOf.model_rebuild()

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.TITLE_MAX)]
Suggestion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SUGGESTION_MAX)]
Category = Annotated[Tag, Field(description="A label such as 'security' or 'git'")]


class SetPolicy(Strict):
    title: Title | None = Field(default=None, description="Required unless overrides is set; unique per scope")
    rule: Rule | None = Field(default=None, description="Required unless overrides is set; see 'Policy rules'")
    severity: Severity | None = Field(default=None, description="critical blocks bash; required unless overrides is set")
    scope: ScopeLevel = Field(description="Where the policy lives: org (whole tenant), your team, or your project")
    category: Category | None = None
    suggestion: Suggestion | None = Field(default=None, description="What to do instead, shown with a violation")
    enabled: bool | None = Field(default=None, description="Default true; false disables (an overridden policy, too)")
    overrides: MemoryId | None = Field(
        default=None, description="Id of a higher-scope policy to override here; omitted fields keep its values"
    )

    @model_validator(mode="after")
    def _complete(self) -> SetPolicy:
        if self.overrides is None:
            missing = [name for name in ("title", "rule", "severity") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} required for a new policy (or set overrides)")
        return self


class PolicyById(Strict):
    policy_id: MemoryId


class ListPolicies(Strict):
    scope: ScopeLevel | None = Field(default=None, description="Only policies living at this scope")
    category: Category | None = None
    limit: int = Field(default=50, ge=1, le=LIST_LIMIT_MAX)


class PolicyContext(Strict):
    kind: Annotated[str, StringConstraints(max_length=32)] | None = Field(default=None, description="e.g. bash, write, commit")
    project_dir: Annotated[str, StringConstraints(max_length=PATH_MAX)] | None = Field(
        default=None, description="Absolute project root, for write_outside_project"
    )
    working_dir: Annotated[str, StringConstraints(max_length=PATH_MAX)] | None = None
    paths: list[Annotated[str, StringConstraints(max_length=PATH_MAX)]] = Field(
        default_factory=list, max_length=PATHS_MAX, description="Files the action writes or touches"
    )
    content: Annotated[str, StringConstraints(max_length=CONTENT_MAX)] | None = Field(
        default=None, description="Text being written or committed (a file, a diff)"
    )
    history: list[Annotated[str, StringConstraints(max_length=HISTORY_ITEM_MAX)]] = Field(
        default_factory=list, max_length=HISTORY_MAX, description="Earlier commands of this task, for requires rules"
    )
    env: dict[Annotated[str, StringConstraints(max_length=ENV_NAME_MAX)], Annotated[str, StringConstraints(max_length=ENV_VALUE_MAX)]] = Field(
        default_factory=dict, max_length=ENV_MAX_ITEMS,  # bash's env; described in the rules' docs (TOOL.md)
    )


class CheckPolicies(Strict):
    action: Annotated[str, StringConstraints(min_length=1, max_length=ACTION_MAX)] = Field(
        description="The command or action to check, e.g. 'git push --force origin main'"
    )
    context: PolicyContext | None = None


class EnablePack(Strict):
    pack: PackName = Field(description="security: no secrets, no curl | sh, no force-push to main, no writes outside the project")
    scope: ScopeLevel = Field(default=ScopeLevel.org, description="Where the pack's policies live")


class Policy(BaseModel):
    id: str
    title: str
    rule: dict[str, Any] | None = Field(description="None for an override that keeps its parent's rule")
    severity: Severity | None
    scope: ScopeLevel = Field(description="Where it lives, relative to the caller")
    category: str | None
    suggestion: str | None
    enabled: bool | None
    overrides: str | None
    source: str = Field(description="stored, or config (CONTEXTD_POLICY_PACKS)")
    pack: str | None = None


class PolicySummary(BaseModel):
    id: str
    title: str
    severity: Severity | None
    scope: ScopeLevel
    category: str | None
    enabled: bool | None
    overrides: str | None
    source: str


class PolicyList(BaseModel):
    policies: list[PolicySummary]


class PolicySaved(BaseModel):
    id: str
    replaced_existing: bool = Field(description="A policy with this title (or override) already lived at this scope")


class PolicyDeleted(BaseModel):
    id: str
    deleted_overrides: int


class PackEnabled(BaseModel):
    pack: str
    scope: ScopeLevel
    policy_ids: list[str]


class Violation(BaseModel):
    policy_id: str
    title: str
    reason: str
    severity: Severity
    scope: ScopeLevel
    category: str | None = None


class AppliedOverride(BaseModel):
    policy_id: str
    title: str
    by: str = Field(description="The overriding policy's id")
    scope: ScopeLevel = Field(description="Where the override lives")
    change: str = Field(description="e.g. 'disabled', 'severity critical → warning'")


class PolicyCheckResult(BaseModel):
    compliant: bool = Field(description="No policy is violated")
    blocking: bool = Field(description="A critical policy is violated: the action must not run")
    violations: list[Violation]
    suggestions: list[str]
    overridden: list[AppliedOverride]
    checked: int = Field(description="How many enabled policies were evaluated")
