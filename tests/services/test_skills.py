"""SkillService and its template syntax, on the real store and model (no MCP)."""

from __future__ import annotations

import pytest

from contextd_mcp.container import Container
from contextd_mcp.errors import Conflict, InvalidInput, NotFound
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.skill import CreateSkill, DeleteSkill, GetSkill, ListSkills, UpdateSkill
from contextd_mcp.services import levels, templates
from contextd_mcp.services.skills import SkillService

API = Scope(tenant="acme", team="core", project="api")
WEB = Scope(tenant="acme", team="core", project="web")
OPS = Scope(tenant="acme", team="ops", project="infra")
GLOBEX = Scope(tenant="globex", team="core", project="api")


@pytest.fixture
def skills(container: Container) -> SkillService:
    return container.skills


def make(skills: SkillService, scope: Scope, name: str, level: str = "project", **extra: object) -> str:
    request = CreateSkill(name=name, description=f"{name} does things.", prompt_template="Do {{thing}}.",
                          scope=ScopeLevel(level), **extra)  # type: ignore[arg-type]
    return skills.create(scope, request).id


# -- template syntax -------------------------------------------------------------------------


def test_placeholders_in_order_with_optional_and_repeats() -> None:
    found = templates.placeholders({"t": "Fix {{ file }} ({{line?}}); again {{file}}", "s": "{{owner}}"})
    assert found == [templates.Placeholder("file", True), templates.Placeholder("line", False),
                     templates.Placeholder("owner", True)]


def test_render_is_one_pass_and_keeps_single_braces() -> None:
    text = 'Use {"k": 1} and \\{{raw\\}} for {{who}}, {{why?}}.'
    assert templates.render(text, {"who": "{{why}}"}) == 'Use {"k": 1} and {{raw}} for {{why}}, .'


@pytest.mark.parametrize("bad", ["{{a", "a}}", "{{a b}}", "{{9}}", "{{}}", "{{" + "x" * 41 + "}}", "{{a?}} {{a}}"])
def test_bad_templates_raise_invalid_input_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        templates.placeholders({"steps.2": bad})
    assert caught.value.field == "steps.2"


def test_too_many_placeholders() -> None:
    many = " ".join(f"{{{{a{i}}}}}" for i in range(templates.MAX_PLACEHOLDERS + 1))
    with pytest.raises(InvalidInput, match="at most 20 distinct placeholders"):
        templates.placeholders({"prompt_template": many})


def test_check_arguments_names_unknown_and_missing() -> None:
    declared = [templates.Placeholder("a", True), templates.Placeholder("b", False)]
    templates.check_arguments("s", declared, {"a": "x"})
    with pytest.raises(InvalidInput, match="needs a"):
        templates.check_arguments("s", declared, {"a": "  "})
    with pytest.raises(InvalidInput, match=r"has no placeholder c, d \(it takes: a, b\)"):
        templates.check_arguments("s", declared, {"a": "x", "c": "1", "d": "2"})


# -- levels ----------------------------------------------------------------------------------


def test_owner_fields_and_reach_filters_always_hold_the_tenant() -> None:
    assert levels.owner_fields(API, ScopeLevel.org) == {"tenant": "acme", "team": "*", "project": "*"}
    assert levels.owner_fields(API, ScopeLevel.team) == {"tenant": "acme", "team": "core", "project": "*"}
    for reach in ScopeLevel:
        assert levels.visible_where(API, reach)["tenant"] == "acme"
    assert levels.split_ref("review@team") == ("review", ScopeLevel.team)
    assert levels.split_ref("mail@example") == ("mail@example", None)


# -- service ---------------------------------------------------------------------------------


def test_name_resolution_prefers_the_closest_level(skills: SkillService) -> None:
    org = make(skills, API, "review", "org")
    team = make(skills, API, "review", "team")
    own = make(skills, API, "review")
    assert skills.resolve(API, "review").id == own
    assert skills.resolve(WEB, "review").id == team  # web has no project skill of that name
    assert skills.resolve(OPS, "review").id == org
    assert skills.resolve(API, "REVIEW@org").id == org
    with pytest.raises(NotFound):
        skills.resolve(GLOBEX, "review")


def test_ambiguous_name_at_a_wider_reach_asks_for_the_id(skills: SkillService) -> None:
    make(skills, API, "lint")
    make(skills, WEB, "lint")
    with pytest.raises(InvalidInput, match="2 skills of your team are named 'lint'; use skill_id"):
        skills.resolve(OPS.model_copy(update={"team": "core", "project": "docs"}), "lint", ScopeLevel.team)


def test_uniqueness_is_per_level_and_per_owner(skills: SkillService) -> None:
    make(skills, API, "deploy")
    make(skills, WEB, "deploy")  # another project: fine
    make(skills, GLOBEX, "deploy", "org")  # another tenant's org: fine
    make(skills, API, "deploy", "org")
    with pytest.raises(Conflict):
        make(skills, WEB, "Deploy", "org")  # the same org


def test_get_counts_uses_and_update_renames_within_the_rules(skills: SkillService) -> None:
    sid = make(skills, API, "triage", tags=["ci"])
    other = make(skills, API, "bisect")
    assert skills.get(API, GetSkill(skill_id=sid)).use_count == 1
    assert skills.get(API, GetSkill(name="triage")).use_count == 2
    with pytest.raises(Conflict):
        skills.update(API, UpdateSkill(skill_id=other, name="TRIAGE"))
    updated = skills.update(API, UpdateSkill(skill_id=sid, description="Find the first bad commit.", name="first-bad"))
    assert updated.name == "first-bad" and updated.use_count == 2 and updated.tags == ["ci"]
    found = skills.find(API, ListSkills(query="which commit broke the build"))
    assert found[0].id == sid  # re-embedded with the new description


def test_render_counts_a_use_and_refuses_long_values(skills: SkillService) -> None:
    sid = make(skills, API, "explain", steps=["Read {{thing}} twice"])
    record, text = skills.render(API, "explain", {"thing": "the log"})
    assert record.id == sid and text == "Do the log.\n\nSteps:\n1. Read the log twice"
    with pytest.raises(InvalidInput, match="at most 4000 characters"):
        skills.render(API, "explain", {"thing": "x" * 4001})
    with pytest.raises(NotFound):
        skills.render(API, "x" * 500, {})
    assert skills.get(API, GetSkill(skill_id=sid)).use_count == 2


def test_another_tenant_never_reaches_by_id_even_at_org_reach(skills: SkillService) -> None:
    sid = make(skills, API, "secret", "org")
    for reach in ScopeLevel:
        with pytest.raises(NotFound, match=f"skill '{sid}' not found"):
            skills.get(GLOBEX, GetSkill(skill_id=sid, scope=reach))
        with pytest.raises(NotFound):
            skills.delete(GLOBEX, DeleteSkill(skill_id=sid, scope=reach))
        assert skills.find(GLOBEX, ListSkills(scope=reach)) == []
    assert skills.delete(API, DeleteSkill(skill_id=sid)).deleted is True


def test_name_matches_are_whole_words(skills: SkillService) -> None:
    make(skills, API, "ci")
    make(skills, API, "fix-flaky-test")
    by_name = {s.name: s.relevance for s in skills.find(API, ListSkills(query="flaky test"))}
    assert by_name["fix-flaky-test"] == 1.0
    cinema = {s.name: s.relevance for s in skills.find(API, ListSkills(query="cinema tickets"))}
    assert cinema.get("ci") != 1.0 and cinema.get("fix-flaky-test") != 1.0
    assert {s.name: s.relevance for s in skills.find(API, ListSkills(query="run CI"))}["ci"] == 1.0
