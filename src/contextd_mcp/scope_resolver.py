"""Derives a local caller's scope from a working directory and its environment.

The tenant is the full identity of the git remote's owner: its host and its whole owner path
(GitLab subgroups included); the repository is the project. Two checkouts share a tenant only
when their remotes name the same owner on the same host, however the URL is written:

- scheme and form do not matter: ``https://``, ``http://``, ``ssh://``, ``git://``,
  ``git+ssh://`` and the scp form ``git@host:owner/repo`` give the same identity;
- a user (``git@``, ``user:password@``) and a port are dropped: the same server is reached over
  ssh on 22 (or 2222) and over https on 443, and one host serving different forges on
  different ports is rare enough to leave to ``CONTEXTD_TENANT``;
- ``.git``, trailing and doubled slashes and percent-escapes are normalised away;
- the host, the owner path and the repository are compared lower-case: GitHub, GitLab,
  Bitbucket and Gitea resolve names case-insensitively, so ``Acme/App`` *is* ``acme/app``;
- a local-path remote (``/srv/git/acme/app.git``, ``file://``, ``../app``) is identified by
  the directory holding it (case kept: file systems here are case-sensitive).

A scope part must be a storage-safe name (``models/scope.py``: 1-64 of ``[A-Za-z0-9._-]``), so
the tenant is a readable slug of the identity plus 12 hex digits of its SHA-256
(``github.com_acme-3c1d…``): two identities that slug alike still differ. A repository name
that is already a safe name is the project as is. A directory with no usable remote gets the
tenant ``local`` and a project id from its path. ``CONTEXTD_TENANT`` / ``_TEAM`` /
``_PROJECT`` override each part. Standard library only but for the ``Scope`` model it returns
(pydantic: so the hook command, which must stay light, does not import this), and cheap: it
runs once per connection.
"""

from __future__ import annotations

import configparser
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from contextd_mcp.models.scope import Scope

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# git's rule for the scp form: a colon before any slash ("host:path"), with an optional user.
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.*)$")
HASH_HEX = 12  # 48 bits: no collision among any plausible number of tenants
LOCAL_TENANT = "local"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_HEX]


def _slug(text: str, max_len: int = 64) -> str:
    return (_UNSAFE.sub("-", text).strip("-._") or "x")[:max_len].rstrip("-._") or "x"


def safe_name(text: str) -> str:
    """``text`` itself when it is already a valid scope name, else its slug + a short hash."""
    if _SAFE.match(text):
        return text
    return f"{_slug(text, 64 - HASH_HEX - 1)}-{_digest(text)}"


@dataclass(frozen=True)
class RemoteIdentity:
    """A normalised remote: ``host`` ("" for a local path), the full ``owner`` path, ``repo``."""

    host: str
    owner: str
    repo: str

    @property
    def owner_key(self) -> str:
        """What the tenant stands for, exactly: ``gitlab.com/orga/backend``."""
        return f"{self.host or 'file:'}/{self.owner}"

    def tenant(self) -> str:
        readable = "_".join(part for part in (self.host or "file", *self.owner.split("/")) if part)
        return f"{_slug(readable, 64 - HASH_HEX - 1)}-{_digest(self.owner_key)}"

    def project(self) -> str:
        return safe_name(self.repo)


def parse_remote(url: str, base: Path | None = None) -> RemoteIdentity | None:
    """The identity a remote URL names; None when it names no repository. ``base`` resolves
    a relative local path (the repository root)."""
    url = url.strip()
    if not url:
        return None
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            return _local(unquote(parts.path), base)
        host = (parts.hostname or "").lower()
        if not host:
            return None
        return _hosted(host, unquote(parts.path))
    scp = _SCP.match(url)
    if scp and not url.startswith(("/", ".")):
        return _hosted(scp["host"].lower(), scp["path"])
    return _local(url, base)


def _split(path: str) -> list[str] | None:
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return None
    repo = parts[-1].removesuffix(".git")
    if not repo or ".." in parts:
        return None
    return [*parts[:-1], repo]


def _hosted(host: str, path: str) -> RemoteIdentity | None:
    parts = _split(path.lower())
    if parts is None:
        return None
    return RemoteIdentity(host=host, owner="/".join(parts[:-1]), repo=parts[-1])


def _local(path: str, base: Path | None) -> RemoteIdentity | None:
    where = Path(path).expanduser()
    if not where.is_absolute():
        if base is None:
            return None
        where = base / where
    parts = _split(where.resolve().as_posix())
    if parts is None:
        return None
    return RemoteIdentity(host="", owner="/".join(parts[:-1]), repo=parts[-1])


def display_url(url: str) -> str:
    """A remote URL fit to print: any user and password removed (a token can sit there)."""
    if "://" not in url:
        scp = _SCP.match(url)
        return f"{scp['host']}:{scp['path']}" if scp and "@" in url.split(":", 1)[0] else url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number
        netloc = host
    return parts._replace(netloc=netloc).geturl()


# --- the git side --------------------------------------------------------------------------


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


def remote_urls(repo_root: Path) -> list[tuple[str, str]]:
    """(remote name, url) of a repository, ``origin`` first, then in the config's order."""
    config_path = _git_config(repo_root)
    if config_path is None or not config_path.exists():
        return []
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(config_path, encoding="utf-8")
    except (configparser.Error, OSError):
        return []
    remotes = [s for s in parser.sections() if s.startswith('remote "') and s.endswith('"')]
    remotes.sort(key=lambda s: s != 'remote "origin"')
    return [(s[len('remote "') : -1], parser.get(s, "url", fallback="")) for s in remotes]


def project_root(cwd: Path) -> Path:
    """The directory a local caller's project lives in: its repository root, else cwd."""
    directory = cwd.resolve()
    return find_repo_root(directory) or directory


def local_project(root: Path) -> str:
    """A plain directory's project: its name and a hash of its path (stable, never shared)."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    # Unchanged from the first derivation, so that local projects' data stays where it is.
    return (_UNSAFE.sub("-", f"{root.name}-{digest}").strip("-.") or "x")[:64]


# --- resolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """A scope and, for each part, where it came from (what ``contextd-mcp status`` shows)."""

    scope: Scope
    sources: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    remote: RemoteIdentity | None = None


def resolve(cwd: Path, env: Mapping[str, str]) -> Resolution:
    root = project_root(cwd)
    derived: dict[str, str] = {"team": "default"}
    sources: dict[str, str] = {"team": "default"}
    identity = None
    if (root / ".git").exists():
        for name, url in remote_urls(root):
            identity = parse_remote(url, root)
            if identity is not None:
                where = f"remote {name} {display_url(url)}"
                derived |= {"tenant": identity.tenant(), "project": identity.project()}
                sources |= {"tenant": f"{where} (owner {identity.owner_key})", "project": f"{where} (repository)"}
                break
    if identity is None:
        derived |= {"tenant": LOCAL_TENANT, "project": local_project(root)}
        sources |= {"tenant": "no git remote: local", "project": f"local path {root}"}
    for part in ("tenant", "team", "project"):
        override = env.get(f"CONTEXTD_{part.upper()}")
        if override:
            derived[part], sources[part] = override, f"CONTEXTD_{part.upper()}"
    return Resolution(Scope(**derived), sources, root, identity)


def resolve_scope(cwd: Path, env: Mapping[str, str]) -> Scope:
    return resolve(cwd, env).scope
