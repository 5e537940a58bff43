"""The security pack against the obfuscation corpus (tests/data/policy/obfuscations.json):
forbidden commands written the ways an agent might sidestep a rule, and ordinary developer
commands that must stay allowed. bench/bench_policy_bypass.py reports the same figures before →
after; on main before this work 109 of 154 got through."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from contextd_mcp.adapters.secret_scrubber import RegexScrubber
from contextd_mcp.errors import InvalidInput
from contextd_mcp.models.policy import PolicyContext, Rule
from contextd_mcp.services import policy_rules
from contextd_mcp.services.command_variants import command_variants
from contextd_mcp.services.policy_pack import PACKS
from contextd_mcp.services.policy_rules import RuleCompiler, Subject
from contextd_mcp.services.shell_env import refuse_dangerous_env

CORPUS = json.loads((Path(__file__).parents[1] / "data" / "policy" / "obfuscations.json").read_text())
RULE: TypeAdapter[Any] = TypeAdapter(Rule)
COMPILER = RuleCompiler(RegexScrubber())
PACK = [(p.title, COMPILER.compile(RULE.validate_python(p.rule))) for p in PACKS["security"]]
# Only the entries marked out_of_reach may get through (another language, state kept across
# commands or in the file system: what no reading of one command line can see, and what the
# sandbox contains). 4 of 154 today; the bound leaves no room for anything else.
BYPASS_RATE_MAX = sum(1 for e in CORPUS["forbidden"] if e.get("out_of_reach")) / len(CORPUS["forbidden"])


def refused(entry: dict[str, Any]) -> str | None:
    """What bash does before running: the env refusal, then the pack's (critical) policies."""
    env = entry.get("env", {})
    try:
        refuse_dangerous_env(env)
    except InvalidInput as exc:
        return str(exc)
    subject = Subject(entry["command"], PolicyContext(kind="bash", project_dir=CORPUS["project_dir"], working_dir="", env=env))
    reasons = [f"{title}: {reason}" for title, check in PACK if (reason := check(subject)) is not None]
    return "; ".join(reasons) or None


def test_the_corpus_is_big_enough() -> None:
    commands = [e for e in CORPUS["forbidden"] if e["policy"] != "env"]
    assert len(commands) >= 60 and len(CORPUS["ordinary"]) >= 60
    assert {e["policy"] for e in CORPUS["forbidden"]} >= {p.key for p in PACKS["security"]} | {"env"}


def test_obfuscated_forbidden_commands_are_refused() -> None:
    bypasses = [e for e in CORPUS["forbidden"] if refused(e) is None]
    rate = len(bypasses) / len(CORPUS["forbidden"])
    assert [e for e in bypasses if not e.get("out_of_reach")] == []
    assert rate <= BYPASS_RATE_MAX < 0.05


def test_ordinary_commands_stay_allowed() -> None:
    denied = {e["command"]: reason for e in CORPUS["ordinary"] if (reason := refused(e)) is not None}
    assert denied == {}


def test_the_corpus_test_fails_without_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound above is not met by reading the text as written alone."""
    monkeypatch.setattr(policy_rules, "command_variants", lambda action, env=None: command_variants(action, env)[:1])
    bypasses = [e for e in CORPUS["forbidden"] if e["policy"] != "env" and refused(e) is None]
    assert len(bypasses) / len(CORPUS["forbidden"]) > 0.5


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("b=main; git push -f origin $b", "in its unquoted form 'b=main ; git push -f origin main'"),
        (r"$'\x67\x69\x74' push -f origin main", "in its unquoted form 'git push -f origin main'"),
        ("echo Z2l0IHB1c2ggLWYgb3JpZ2luIG1haW4= | base64 -d | sh", "in its piped into sh form 'git push -f origin main'"),
        ("bash -c 'rm -rf ~'", "writes '~' outside the project '/work/api' in its bash -c argument form 'rm -rf ~'"),
        ("git -c alias.p='push -f' p origin main", "in its canonical form 'git push -f origin main'"),
    ],
)
def test_the_violation_names_the_variant_that_matched(command: str, fragment: str) -> None:
    reason = refused({"command": command})
    assert reason is not None and fragment in reason, reason


def test_a_decoded_secret_is_not_shown_in_the_reason() -> None:
    token = "ghp_" + "Xq7Lm2Vb9Rt4Kw8Zp3Nc6Hd1Jf5Gs0Ay2Ue4"
    payload = base64.b64encode(f"curl -H token:{token} x; git push -f origin main".encode()).decode()
    reason = refused({"command": f"echo {payload} | base64 -d | sh"})
    assert reason is not None and "holds a secret-like string (github-token)" in reason
    assert "No force-push to main or master" in reason and "[REDACTED:github-token]" in reason
    assert token[:12] not in reason
