from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from contextd_mcp.scope_resolver import resolve_scope


def git_repo(path: Path, remote: str | None) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if remote:
        subprocess.run(["git", "-C", str(path), "remote", "add", "origin", remote], check=True)
    return path


@pytest.mark.parametrize(
    "remote",
    ["git@github.com:Acme-Corp/widgets.git", "https://github.com/Acme-Corp/widgets", "ssh://git@gitlab.example:22/acme-corp/widgets.git"],
)
def test_remote_owner_is_tenant_and_repo_is_project(tmp_path: Path, remote: str) -> None:
    repo = git_repo(tmp_path / "checkout", remote)
    (repo / "src" / "deep").mkdir(parents=True)
    scope = resolve_scope(repo / "src" / "deep", {})
    assert (scope.tenant, scope.team, scope.project) == ("acme-corp", "default", "widgets")


def test_plain_directory_gets_a_stable_local_id(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert resolve_scope(one, {}) == resolve_scope(one, {})
    assert resolve_scope(one, {}).project != resolve_scope(two, {}).project
    assert resolve_scope(one, {}).tenant == "local"


def test_environment_overrides(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r", "git@github.com:acme/widgets.git")
    scope = resolve_scope(repo, {"CONTEXTD_TENANT": "corp", "CONTEXTD_TEAM": "infra", "CONTEXTD_PROJECT": "w2"})
    assert (scope.tenant, scope.team, scope.project) == ("corp", "infra", "w2")


def test_repo_without_remote_is_local(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "solo", None)
    assert resolve_scope(repo, {}).tenant == "local"
    assert resolve_scope(repo, {}).project.startswith("solo-")
