"""The attack table of issue 13: what a sandboxed command can leave behind for the host.

    python bench/bench_host_effects.py                       # this tree
    PYTHONPATH=<old tree>/src python bench/bench_host_effects.py   # the same attacks, older code

Each attack runs once through run_sandboxed (the sandbox API; as the server's user) in a fresh
git repository, and is judged from the host's side afterwards: "SUCCEEDED" means the host now
holds what the attack planted, "blocked" that it does not. A last column checks that git
add/commit/branch still worked in the same call. Run as root (the default here) and through
`runuser -u contextd-test` for the unprivileged case; the tests assert the same outcomes
(tests/sandbox/test_sandbox_host_effects.py, tests/e2e/test_bash_host_effects.py).
"""

from __future__ import annotations

import inspect
import os
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio

from contextd_mcp.sandbox import SandboxLimits, run_sandboxed

GIT_FLOW = "; echo $RANDOM >> t; git add -A . && git commit -qm x && git checkout -qb b2 && git branch -q b3 && echo FLOW-OK"
Check = Callable[[Path, Path], bool]  # (project, marker dir) -> the attack took effect on the host


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(project), *args], capture_output=True, text=True, check=False)


def _repo(base: Path) -> Path:
    project = Path(tempfile.mkdtemp(dir=base))
    for args in (("init", "-q", "-b", "main"), ("config", "user.name", "h"), ("config", "user.email", "h@x"),
                 ("remote", "add", "origin", "https://github.com/acme/app.git")):  # fmt: skip
        _git(project, *args)
    (project / "t").write_text("1\n")
    _git(project, "add", "t")
    _git(project, "commit", "-qm", "1")
    return project


def _special(project: Path) -> bool:
    return any(p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID) for p in project.rglob("*") if not p.is_symlink())


def _fsmonitor_ran(project: Path, marks: Path) -> bool:
    _git(project, "status")
    return (marks / "fsmonitor").exists()


def _hook_ran(project: Path, marks: Path) -> bool:
    (project / "t").write_text("host\n")
    _git(project, "commit", "-qam", "host")
    return (marks / "hook").exists()


ATTACKS: list[tuple[str, str, Check]] = [
    ("git config core.fsmonitor", "git config core.fsmonitor 'touch {m}/fsmonitor'", _fsmonitor_ran),
    ("plant .git/hooks/pre-commit", "printf '#!/bin/sh\\ntouch {m}/hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit", _hook_ran),
    ("git remote set-url (tenant)", "git remote set-url origin https://github.com/victim/x.git",
     lambda p, m: "victim" in _git(p, "remote", "get-url", "origin").stdout),
    ("replace .git (mv + new config)", "mv .git .g && mkdir .git && cp -r .g/objects .g/refs .g/HEAD .git/ && printf '[core]\\nfsmonitor=x\\n' > .git/config",
     lambda p, m: (p / ".g").exists()),
    (".vscode/tasks.json (missing dir)", "mkdir -p .vscode && echo '{{}}' > .vscode/tasks.json", lambda p, m: (p / ".vscode").exists()),
    (".claude/settings.json hooks", "mkdir -p .claude && echo '{{}}' > .claude/settings.json", lambda p, m: (p / ".claude").exists()),
    (".mcp.json", "echo '{{}}' > .mcp.json", lambda p, m: (p / ".mcp.json").exists()),
    (".bashrc", "echo 'touch {m}/rc' > .bashrc", lambda p, m: (p / ".bashrc").exists()),
    ("replace .git/info (exclude)", "rm -rf .git/info && mkdir .git/info && echo '*' > .git/info/exclude",
     lambda p, m: (p / ".git/info/exclude").read_text() == "*\n"),
    ("chmod 4755 (setuid)", "cp /bin/bash x && chmod 4755 x", lambda p, m: _special(p)),
    ("chmod g+s", "cp /bin/bash x && chmod g+s x", lambda p, m: _special(p)),
    ("install -m 4755", "install -m 4755 /bin/bash x", lambda p, m: _special(p)),
    ("mkdir -m 2755", "mkdir -m 2755 d", lambda p, m: _special(p)),
    ("open(O_CREAT, 0o4755)", "python3 -c 'import os; os.open(\"o\", os.O_CREAT|os.O_WRONLY, 0o4755)'", lambda p, m: _special(p)),
]


def _signals(base: Path) -> tuple[str, str]:
    """The command's SigIgn/SigBlk when the server ignores SIGHUP/SIGQUIT and blocks SIGUSR2."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        from contextd_mcp.sandbox import _launcher

        _launcher._default = None  # a helper started now, under these dispositions
        out = anyio.run(lambda: run_sandboxed("grep -E '^Sig(Ign|Blk)' /proc/self/status; umask", Path(tempfile.mkdtemp(dir=base))))
    finally:
        signal.signal(signal.SIGHUP, old[0])
        signal.signal(signal.SIGQUIT, old[1])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
    clean = out.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000", "0022"]
    return "signals/umask under nohup", "blocked" if clean else f"SUCCEEDED ({' '.join(out.stdout.split())})"


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="contextd-attacks-"))
    base.chmod(0o755)
    limits = SandboxLimits(timeout_seconds=60)
    print(f"code: {inspect.getsourcefile(run_sandboxed)}; uid {os.geteuid()}")
    print(f"{'attack':40} {'on the host':12} dev flow")
    for name, command, took_effect in ATTACKS:
        project, marks = _repo(base), Path(tempfile.mkdtemp(dir=base))
        result = anyio.run(lambda: run_sandboxed(command.format(m=marks) + GIT_FLOW, project, limits=limits))
        verdict = "SUCCEEDED" if took_effect(project, marks) else "blocked"
        print(f"{name:40} {verdict:12} {'ok' if 'FLOW-OK' in result.stdout else 'BROKEN: ' + result.stderr[-80:]!r}")
    name, verdict = _signals(base)
    print(f"{name:40} {verdict}")
    subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
