"""Derives a local caller's scope from a working directory and its environment.

Git remote owner → tenant, repository → project; a plain directory gets a stable
local id from its path. ``CONTEXTD_TENANT`` / ``_TEAM`` / ``_PROJECT`` override.
Standard library only, and cheap: it runs once per connection.
"""

from __future__ import annotations

import configparser
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from contextd_mcp.models.scope import Scope

_REMOTE = re.compile(r"(?:[:/])(?P<owner>[^/:]+)/(?P<repo>[^/]+?)(?:\.git)?/?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    cleaned = _UNSAFE.sub("-", name).strip("-.") or "x"
    return cleaned[:64]


def find_repo_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _git_config(repo_root: Path) -> Path | None:
    dot_git = repo_root / ".git"
    if dot_git.is_dir():
        return dot_git / "config"
    try:  # a worktree or submodule: ".git" is a file naming the real git dir
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    git_dir = (repo_root / text.removeprefix("gitdir:").strip()).resolve()
    common = git_dir / "commondir"
    if common.exists():
        git_dir = (git_dir / common.read_text().strip()).resolve()
    return git_dir / "config"


def remote_owner_repo(repo_root: Path) -> tuple[str, str] | None:
    config_path = _git_config(repo_root)
    if config_path is None or not config_path.exists():
        return None
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(config_path, encoding="utf-8")
    except (configparser.Error, OSError):
        return None
    remotes = [s for s in parser.sections() if s.startswith('remote "')]
    remotes.sort(key=lambda s: s != 'remote "origin"')
    for section in remotes:
        url = parser.get(section, "url", fallback="")
        match = _REMOTE.search(url)
        if match:
            return _safe(match["owner"].lower()), _safe(match["repo"])
    return None


def project_root(cwd: Path) -> Path:
    """The directory a local caller's project lives in: its repository root, else cwd."""
    directory = cwd.resolve()
    return find_repo_root(directory) or directory


def resolve_scope(cwd: Path, env: Mapping[str, str]) -> Scope:
    directory = cwd.resolve()
    root = find_repo_root(directory) or directory
    owner_repo = remote_owner_repo(root) if (root / ".git").exists() else None
    if owner_repo:
        tenant, project = owner_repo
    else:
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        tenant, project = "local", _safe(f"{root.name}-{digest}")
    return Scope(
        tenant=env.get("CONTEXTD_TENANT") or tenant,
        team=env.get("CONTEXTD_TEAM") or "default",
        project=env.get("CONTEXTD_PROJECT") or project,
    )
