"""A machine as a new Claude Code user has it: a fresh HOME, ``contextd-mcp`` on PATH, the README's
``claude mcp add`` and the example hooks, the real ``claude`` CLI, and a scripted Messages endpoint.

Nothing leaves 127.0.0.1: ``ANTHROPIC_BASE_URL`` is the stub, nonessential traffic (telemetry,
auto-update, error reports) is switched off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextd_mcp.paths import default_cache_dir

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "examples" / "claude-code"
CONTEXTD = Path(sys.executable).parent / "contextd-mcp"  # the console script beside the venv's python
TIMEOUT_S = 180


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


@dataclass
class ClaudeWorld:
    claude: Path
    root: Path
    base_url: str = "http://127.0.0.1:9"  # set to the stub's address before a session
    runs: list[Run] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. CONTEXTD_* for the daemon it starts

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def setup(self) -> None:
        for path in (self.home / ".claude", self.project, self.bin):
            path.mkdir(parents=True, exist_ok=True)
        # Only contextd-mcp on PATH from this checkout, as a user install (pipx, uv tool) puts it.
        (self.bin / "contextd-mcp").symlink_to(CONTEXTD)

    def install_hooks_for_user(self) -> None:
        """The example hooks in ~/.claude/settings.json: they fire for every claude command."""
        settings = json.loads((EXAMPLES / "settings.json").read_text())
        (self.home / ".claude" / "settings.json").write_text(json.dumps({"hooks": settings["hooks"]}))

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CONTEXTD_DATA_DIR": str(self.data_dir),
            # The model cache the venv's setup built: every fresh HOME would rebuild it (~15 s).
            "CONTEXTD_EMBEDDING_CACHE_DIR": str(default_cache_dir() / "models"),
            "HF_HUB_OFFLINE": "1",
            **self.extra_env,
        }

    def run(self, *args: str, check: bool = True) -> Run:
        began = time.perf_counter()
        done = subprocess.run(
            [str(self.claude), *args], env=self.env(), cwd=self.project, capture_output=True, text=True,
            timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
        )
        run = Run(list(args), done.returncode, done.stdout, done.stderr, time.perf_counter() - began)
        self.runs.append(run)
        if check:
            assert done.returncode == 0, f"claude {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"
        return run

    def session(self, prompt: str, *extra: str) -> Run:
        """One ``claude -p`` session; MCP tools and Bash allowed without asking (root refuses
        --dangerously-skip-permissions), its debug log kept for hook timings."""
        debug = self.root / f"debug-{len(self.runs)}.log"
        return self.run(
            "-p", prompt, "--allowedTools", "Bash,mcp__contextd", "--output-format", "json",
            "--debug-file", str(debug), *extra,
        )

    def contextd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CONTEXTD), *args], env=self.env(), cwd=self.project, capture_output=True, text=True, timeout=60
        )

    def stop_daemon(self) -> None:
        if self.data_dir.exists():
            self.contextd("stop", "--timeout", "30")

    def audit(self) -> list[dict[str, Any]]:
        path = self.data_dir / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def jobs(self) -> list[dict[str, Any]]:
        """Distillation jobs in every state (the durable queue's files)."""
        queue = self.data_dir / "queue"
        while True:
            try:
                return [json.loads(p.read_text()) for p in sorted(queue.glob("*/*.json"))] if queue.exists() else []
            except FileNotFoundError:  # a job moved on (running → done) between the listing and its read
                time.sleep(0.05)

    def wait_jobs_done(self, count: int, timeout: float = 90) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if len(jobs) >= count and all(j["state"] in ("done", "failed") for j in jobs):
                return jobs
            time.sleep(0.3)
        raise AssertionError(f"distillation jobs not finished in {timeout}s: {self.jobs()}")


def debug_lines(run: Run, needle: str) -> list[str]:
    """Lines of a session's debug log (``ClaudeWorld.session`` keeps one) holding ``needle``."""
    index = run.args.index("--debug-file") + 1 if "--debug-file" in run.args else -1
    if index < 0:
        return []
    path = Path(run.args[index])
    return [line for line in path.read_text(errors="replace").splitlines() if needle in line] if path.exists() else []


def copy_example_project(world: ClaudeWorld) -> None:
    """The README's per-project setup: .mcp.json beside the project, .claude/settings.json in it."""
    shutil.copy(EXAMPLES / ".mcp.json", world.project / ".mcp.json")
    (world.project / ".claude").mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "settings.json", world.project / ".claude" / "settings.json")
