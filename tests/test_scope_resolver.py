from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from contextd_mcp.models.scope import Scope
from contextd_mcp.scope_resolver import display_url, parse_remote, resolve, resolve_scope


def git_repo(path: Path, remote: str | None, name: str = "origin") -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if remote:
        subprocess.run(["git", "-C", str(path), "remote", "add", name, remote], check=True)
    return path


def tenant(readable: str, identity: str) -> str:
    """The expected tenant: a readable slug, and 12 hex digits of the exact owner identity."""
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


GITHUB_ACME = tenant("github.com_acme", "github.com/acme")
SUBGROUP = tenant("gitlab.com_orga_backend", "gitlab.com/orga/backend")

# The tenant table (the closing note): remote as written → (tenant, project).
TABLE = [
    ("https://github.com/acme/app", GITHUB_ACME, "app"),
    ("https://github.com/acme/app.git", GITHUB_ACME, "app"),
    ("https://github.com/acme/app/", GITHUB_ACME, "app"),
    ("https://github.com/acme/app.git/", GITHUB_ACME, "app"),
    ("http://github.com/acme/app", GITHUB_ACME, "app"),
    ("git://github.com/acme/app.git", GITHUB_ACME, "app"),
    ("ssh://git@github.com/acme/app.git", GITHUB_ACME, "app"),
    ("ssh://git@github.com:22/acme/app.git", GITHUB_ACME, "app"),
    ("git+ssh://git@github.com/acme/app", GITHUB_ACME, "app"),
    ("git@github.com:acme/app.git", GITHUB_ACME, "app"),
    ("github.com:acme/app", GITHUB_ACME, "app"),
    ("https://ci-bot:ghp_secret@github.com:443/acme/app.git", GITHUB_ACME, "app"),
    ("https://GitHub.COM/Acme/App.git", GITHUB_ACME, "app"),
    ("https://github.com//acme//app", GITHUB_ACME, "app"),
    ("https://github.com/acme%2Dcorp/app", tenant("github.com_acme-corp", "github.com/acme-corp"), "app"),
    ("https://github.com/acme-corp/app", tenant("github.com_acme-corp", "github.com/acme-corp"), "app"),
    ("https://github.com/globex/app", tenant("github.com_globex", "github.com/globex"), "app"),
    ("https://git.client-corp.example.net/acme/app", tenant("git.client-corp.example.net_acme", "git.client-corp.example.net/acme"), "app"),
    ("https://gitlab.com/orgA/backend/api.git", SUBGROUP, "api"),
    ("git@gitlab.com:orgA/backend/api.git", SUBGROUP, "api"),
    ("ssh://git@gitlab.com:2222/orga/backend/api", SUBGROUP, "api"),
    ("https://gitlab.com/orgB/backend/api.git", tenant("gitlab.com_orgb_backend", "gitlab.com/orgb/backend"), "api"),
    ("https://gitlab.com/orgA/api.git", tenant("gitlab.com_orga", "gitlab.com/orga"), "api"),
    ("https://gitlab.com/a/b/c/d/e/service.git", tenant("gitlab.com_a_b_c_d_e", "gitlab.com/a/b/c/d/e"), "service"),
    ("https://git.example.org/app.git", tenant("git.example.org", "git.example.org/"), "app"),
    ("/srv/git/acme/app.git", tenant("file_srv_git_acme", "file:/srv/git/acme"), "app"),
    ("file:///srv/git/acme/app.git", tenant("file_srv_git_acme", "file:/srv/git/acme"), "app"),
    ("/srv/git/Acme/app.git", tenant("file_srv_git_Acme", "file:/srv/git/Acme"), "app"),
]


@pytest.mark.parametrize(("remote", "expected_tenant", "expected_project"), TABLE)
def test_tenant_table(tmp_path: Path, remote: str, expected_tenant: str, expected_project: str) -> None:
    repo = git_repo(tmp_path / "checkout", remote)
    (repo / "src" / "deep").mkdir(parents=True)
    scope = resolve_scope(repo / "src" / "deep", {})
    assert (scope.tenant, scope.team, scope.project) == (expected_tenant, "default", expected_project)
    assert Scope(**scope.fields()) == scope  # a storage-safe name, whatever the remote


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://gitlab.com/orgA/backend/api.git", "https://gitlab.com/orgB/backend/api.git"),
        ("https://github.com/acme/app", "https://git.client-corp.example.net/acme/app"),
        ("https://gitlab.com/a_b/c", "https://gitlab.com/a/b_c"),  # same slug, other identities
        ("https://gitlab.com/orga/backend/api", "https://gitlab.com/orga/backend-api"),
        ("https://github.com/acme/app", "/srv/github.com/acme/app.git"),
    ],
)
def test_different_hosts_or_groups_are_different_tenants(tmp_path: Path, one: str, other: str) -> None:
    first, second = git_repo(tmp_path / "a", one), git_repo(tmp_path / "b", other)
    assert resolve_scope(first, {}).tenant != resolve_scope(second, {}).tenant


def test_a_long_owner_path_stays_a_safe_name_and_distinct(tmp_path: Path) -> None:
    deep = "/".join(["group-with-a-long-name"] * 8)
    one = resolve_scope(git_repo(tmp_path / "a", f"https://gitlab.com/{deep}/x/app"), {})
    two = resolve_scope(git_repo(tmp_path / "b", f"https://gitlab.com/{deep}/y/app"), {})
    assert len(one.tenant) <= 64 and len(two.tenant) <= 64 and one.tenant != two.tenant


def test_a_relative_local_remote_is_the_same_identity_as_its_absolute_path(tmp_path: Path) -> None:
    relative = resolve_scope(git_repo(tmp_path / "work" / "clone", "../../bare/acme/app.git"), {})
    absolute = resolve_scope(git_repo(tmp_path / "other", str(tmp_path / "bare" / "acme" / "app.git")), {})
    assert relative == absolute and relative.project == "app"


def test_a_plain_directory_gets_a_stable_local_id(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert resolve_scope(one, {}) == resolve_scope(one, {})
    assert resolve_scope(one, {}).project != resolve_scope(two, {}).project
    assert resolve_scope(one, {}).tenant == "local"


def test_a_repo_without_a_usable_remote_is_local(tmp_path: Path) -> None:
    solo = git_repo(tmp_path / "solo", None)
    assert resolve_scope(solo, {}).tenant == "local" and resolve_scope(solo, {}).project.startswith("solo-")
    odd = git_repo(tmp_path / "odd", "https://example.com/")
    assert resolve_scope(odd, {}).tenant == "local"


def test_origin_wins_over_other_remotes(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r", "https://github.com/fork-owner/app", name="fork")
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", "https://github.com/acme/app"], check=True)
    assert resolve_scope(repo, {}).tenant == GITHUB_ACME


def test_environment_overrides_and_every_part_says_where_it_came_from(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r", "https://ci-bot:ghp_secret@github.com/acme/widgets.git")
    derived = resolve(repo, {})
    assert derived.sources["tenant"].startswith("remote origin https://github.com/acme/widgets.git")
    assert "github.com/acme" in derived.sources["tenant"] and "ghp_secret" not in str(derived.sources)
    assert derived.sources["project"].startswith("remote origin") and derived.sources["team"] == "default"
    over = resolve(repo, {"CONTEXTD_TENANT": "corp", "CONTEXTD_TEAM": "infra", "CONTEXTD_PROJECT": "w2"})
    assert (over.scope.tenant, over.scope.team, over.scope.project) == ("corp", "infra", "w2")
    assert over.sources == {"tenant": "CONTEXTD_TENANT", "team": "CONTEXTD_TEAM", "project": "CONTEXTD_PROJECT"}
    plain = tmp_path / "plain"
    plain.mkdir()
    assert resolve(plain, {}).sources["project"] == f"local path {plain}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok@github.com/acme/app", "https://github.com/acme/app"),
        ("https://tok@github.com:8443/acme/app", "https://github.com:8443/acme/app"),
        ("git@github.com:acme/app.git", "github.com:acme/app.git"),
        ("/srv/git/app.git", "/srv/git/app.git"),
    ],
)
def test_remote_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize("url", ["", "https://", "https://host", "git@host:", "https://host/../x", "relative/with/no/base"])
def test_urls_naming_no_repository_give_no_identity(url: str) -> None:
    assert parse_remote(url) is None
