"""Installed as a user would, proven with the real Claude Code CLI (from npm, pinned) and the real
`uv tool install`, each under a fresh HOME whose PATH holds no virtualenv.

- the README's `claude mcp add` line connects after scripts/setup.sh (its link in ~/.local/bin);
- the plugin validates and installs from the checkout with Claude Code's own plugin commands;
- `uv tool install <checkout>` gives a working `contextd-mcp stdio`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.helpers import data, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
CLAUDE_CODE = "2.1.332"  # pinned: the version these manifests and outputs were checked against
TOOLS = Path(os.environ.get("CONTEXTD_TEST_TOOLS", Path.home() / ".cache" / "contextd-tests"))
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def _installed(prefix: Path, args: list[str], probe: Path) -> Path:
    if not probe.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and probe.exists(), done.stderr[-2000:]
    return probe


@pytest.fixture(scope="module")
def claude() -> Path:
    """The Claude Code CLI: $CONTEXTD_TEST_CLAUDE, else npm's package at the pinned version."""
    if os.environ.get("CONTEXTD_TEST_CLAUDE"):
        return Path(os.environ["CONTEXTD_TEST_CLAUDE"])
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the Claude Code CLI"
    prefix = TOOLS / f"claude-code-{CLAUDE_CODE}"
    return _installed(
        prefix,
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"@anthropic-ai/claude-code@{CLAUDE_CODE}"],
        prefix / "node_modules" / ".bin" / "claude",
    )


@pytest.fixture(scope="module")
def uv() -> Path:
    venv = TOOLS / "uv"
    if not (venv / "bin" / "uv").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=120)
    return _installed(venv, [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "uv"], venv / "bin" / "uv")


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The per-user model cache as scripts/setup.sh leaves it (the int8 build takes 5-10 s here,
    which a first connect would otherwise spend inside Claude Code's 30 s start timeout)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    script = "from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder as E\n" \
        "from contextd_mcp.settings import EmbeddingSettings as S\ns = S()\nE(s.model, s.cache_dir)"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HF_HUB_OFFLINE": "1"}
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", script], env=env, check=True, timeout=300)
    return cache


@pytest.fixture
def user(tmp_path: Path, model_cache: Path) -> Iterator[dict[str, str]]:
    """A fresh user (after setup.sh built its model cache): HOME, a project directory, and the
    data directory its daemons use."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {
        "HOME": str(home),
        "PATH": f"{home / '.local' / 'bin'}:{Path(shutil.which('node') or '/usr/bin/node').parent}:{SYSTEM_PATH}",
        "CONTEXTD_DATA_DIR": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(model_cache),
        "HF_HUB_OFFLINE": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "PROJECT": str(project),
    }
    # What reaching a package registry needs on this machine (its CA bundle, a proxy), and an
    # alternative tree under test (PYTHONPATH), pass through; nothing else of this session's.
    env.update({k: v for k, v in os.environ.items() if k in _PASSED or k.lower().endswith("_proxy")})
    yield env
    run_cli(Path(env["CONTEXTD_DATA_DIR"]), "stop", "--timeout", "30")


_PASSED = {"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "PYTHONPATH"}


def sh(args: list[str | Path], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], env=env, cwd=env["PROJECT"], capture_output=True, text=True, timeout=timeout)


def status_line(listing: str, name: str) -> str:
    lines = [line for line in listing.splitlines() if line.startswith(f"{name}:")]
    assert len(lines) == 1, listing
    return lines[0]


def test_claude_code_validates_the_marketplace_and_the_plugin(claude: Path, user: dict[str, str]) -> None:
    for path in (ROOT, ROOT / "plugins" / "contextd"):
        done = sh([claude, "plugin", "validate", "--strict", path], user)
        assert done.returncode == 0 and "Validation passed" in done.stdout, done.stdout + done.stderr


def test_the_readme_mcp_add_line_connects_after_setup(claude: Path, user: dict[str, str]) -> None:
    readme_line = next(
        line.strip() for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("claude mcp add ")
    )
    added = sh(["bash", "-c", readme_line], {**user, "PATH": f"{claude.parent}:{user['PATH']}"})
    assert added.returncode == 0, added.stderr

    before = sh([claude, "mcp", "list"], user)  # what a fresh machine had: the command only in .venv/bin
    assert "Failed to connect" in status_line(before.stdout, "contextd")

    linked = sh(["bash", ROOT / "scripts" / "install-command.sh"], user)
    assert linked.returncode == 0, linked.stderr
    after = sh([claude, "mcp", "list"], user)
    assert re.search(r"contextd-mcp stdio - . Connected", status_line(after.stdout, "contextd")), after.stdout


def test_the_example_script_registers_for_the_user_not_the_project(claude: Path, user: dict[str, str]) -> None:
    added = sh(["bash", ROOT / "examples" / "claude-mcp-add.sh"], {**user, "PATH": f"{claude.parent}:{user['PATH']}"})
    assert added.returncode == 0, added.stderr
    shown = sh([claude, "mcp", "get", "contextd"], user)
    assert "User config" in shown.stdout, shown.stdout


def test_the_plugin_installs_from_the_checkout_with_claude_codes_own_commands(claude: Path, user: dict[str, str]) -> None:
    assert sh(["bash", ROOT / "scripts" / "install-command.sh"], user).returncode == 0
    market = sh([claude, "plugin", "marketplace", "add", ROOT], user)
    assert market.returncode == 0, market.stdout + market.stderr
    installed = sh([claude, "plugin", "install", "contextd@contextd-mcp"], user)
    assert installed.returncode == 0 and "Successfully installed" in installed.stdout, installed.stdout + installed.stderr
    listed = sh([claude, "mcp", "list"], user)
    assert re.search(r"contextd-mcp-launch stdio - . Connected", status_line(listed.stdout, "plugin:contextd:contextd")), listed.stdout


async def test_uv_tool_install_from_the_checkout_serves_over_stdio(uv: Path, user: dict[str, str]) -> None:
    uv_env = {**user, "UV_CACHE_DIR": str(TOOLS / "uv-cache")}
    uv_env.pop("PYTHONPATH", None)  # the installed tool must stand on its own
    done = sh([uv, "tool", "install", ROOT], uv_env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    command = Path(user["HOME"]) / ".local" / "bin" / "contextd-mcp"
    assert command.exists() and ROOT not in command.resolve().parents  # its own copy, not the checkout
    server_env = {k: v for k, v in uv_env.items() if k != "PROJECT"}
    params = StdioServerParameters(command=str(command), args=["stdio"], env=server_env, cwd=user["PROJECT"])
    async with Client(params, read_timeout_seconds=120) as client:
        data(await client.call_tool("memory_store", {"title": "uv tool install works", "content": "From a checkout."}))
        found = data(await client.call_tool("memory_search", {"query": "installing with uv"}))
        assert found["memories"][0]["title"] == "uv tool install works"
