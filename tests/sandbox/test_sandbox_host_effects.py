"""What a command leaves behind must not act on the host later (issue 13).

Every case runs as root and as the unprivileged `contextd-test` (the `sandbox` fixture), and checks
from the host's side: the protected paths are unchanged, no placeholder is left, no file or
directory carries a setuid/setgid bit, the daemon's own files were never visible. Each also runs
the ordinary developer flow in the same call, so containment is never bought by breaking git.
"""

from __future__ import annotations

import os
import socket
import pwd
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from contextd_mcp.sandbox import SandboxLimits
from contextd_mcp.sandbox._protect import PROTECTED_PATHS

from .conftest import TEST_USER, HostDirs, Sandbox, needs_python_inside

FAST = SandboxLimits(timeout_seconds=60)
# git add, commit, a new branch and a switch back: objects, refs, index, HEAD and logs writable.
GIT_FLOW = (
    "echo change >> tracked.txt && git add tracked.txt && git commit -qm inside"
    " && git checkout -qb feature-x && git branch -q another && git checkout -q main"
    " && git branch --list | tr -d ' *' | sort | tr '\\n' ,"
)
GIT_FLOW_OUTPUT = "another,feature-x,main,"


def _host_git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(project), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def _own(sandbox: Sandbox, path: Path) -> None:
    if sandbox.kind == "user":
        entry = pwd.getpwnam(TEST_USER)
        subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], check=True)


def make_repo(sandbox: Sandbox) -> Path:
    """A git repository with one commit and a GitHub remote, owned by the sandbox's user."""
    project = sandbox.project
    git = lambda *a: _host_git(project, *a)  # noqa: E731
    assert git("init", "-q", "-b", "main").returncode == 0
    git("config", "user.name", "Host User")
    git("config", "user.email", "host@example.com")
    git("remote", "add", "origin", "https://github.com/acme/app.git")
    (project / "tracked.txt").write_text("one\n")
    git("add", "tracked.txt")
    assert git("commit", "-qm", "first").returncode == 0
    _own(sandbox, project)
    return project


def _tree(project: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every protected path's (mode, content) as the host sees it, plus what else lies there."""
    seen: dict[str, tuple[int, bytes | None]] = {}
    for rel in [p.rstrip("/") for p in PROTECTED_PATHS] + [".git"]:
        path = project / rel
        if path.is_symlink() or path.exists():
            st = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            seen[rel] = (st.st_mode, content)
            if path.is_dir() and not path.is_symlink():
                for sub in sorted(path.rglob("*")):
                    if rel == ".git" and sub.relative_to(path).parts[0] not in ("config", "hooks", "info"):
                        continue
                    sub_st = sub.lstat()
                    key = str(sub.relative_to(project))
                    seen[key] = (sub_st.st_mode, sub.read_bytes() if stat.S_ISREG(sub_st.st_mode) else None)
    return seen


# --- git: fsmonitor, hooks, the remote that decides the tenant ---------------------------------


def test_fsmonitor_cannot_be_planted_for_the_hosts_git(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    project = make_repo(sandbox)
    marker = host_dirs.outside / f"fsmonitor-ran-{uuid.uuid4().hex[:8]}"
    before = (project / ".git" / "config").read_bytes()
    run = sandbox.run(
        f"git config core.fsmonitor 'touch {marker}'; echo config=$?;"
        f" printf '[core]\\n\\tfsmonitor = touch {marker}\\n' >> .git/config; echo append=$?; {GIT_FLOW}",
        limits=FAST,
    ).result
    assert "config=0" not in run.stdout and "append=0" not in run.stdout, run.stdout
    assert run.stdout.endswith(GIT_FLOW_OUTPUT), (run.stdout, run.stderr)
    assert (project / ".git" / "config").read_bytes() == before
    _host_git(project, "status")
    assert not marker.exists(), "the host's git status ran a command the sandbox planted"


def test_hooks_cannot_be_planted(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    project = make_repo(sandbox)
    marker = host_dirs.outside / f"hook-ran-{uuid.uuid4().hex[:8]}"
    hooks = project / ".git" / "hooks"
    before = _tree(project)
    run = sandbox.run(
        f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/hooks/pre-commit; echo plant=$?;"
        " chmod +x .git/hooks/pre-commit 2>/dev/null;"
        " mv .git/hooks .git/hooks-old; echo move=$?; rm -rf .git/hooks; echo rm=$?;"
        f" git config core.hooksPath .evil; echo hookspath=$?; {GIT_FLOW}",
        limits=FAST,
    ).result
    for step in ("plant=0", "move=0", "rm=0", "hookspath=0"):
        assert step not in run.stdout, run.stdout
    assert run.stdout.endswith(GIT_FLOW_OUTPUT), (run.stdout, run.stderr)
    assert _tree(project) == before
    assert not (hooks / "pre-commit").exists()
    (project / "tracked.txt").write_text("host change\n")
    _host_git(project, "commit", "-qam", "host commit")
    assert not marker.exists(), "the host's git commit ran a hook the sandbox planted"


def test_the_remote_cannot_be_rewritten(sandbox: Sandbox) -> None:
    project = make_repo(sandbox)
    run = sandbox.run(
        "git remote set-url origin https://github.com/victim/other.git; echo seturl=$?;"
        " git remote add evil https://github.com/victim/x.git; echo add=$?;"
        " mv .git .git-moved; echo movegit=$?; git status >/dev/null 2>&1; echo status=$?",
        limits=FAST,
    ).result
    assert "seturl=0" not in run.stdout and "add=0" not in run.stdout and "movegit=0" not in run.stdout, run.stdout
    assert "status=0" in run.stdout, run.stdout
    assert _host_git(project, "remote", "get-url", "origin").stdout.strip() == "https://github.com/acme/app.git"
    assert _host_git(project, "remote").stdout.split() == ["origin"]


# --- every protected path, existing and missing ----------------------------------------------


def _plant_all() -> str:
    """Try, for every protected path, to write it, replace it, remove it or create it."""
    lines = []
    for rel in PROTECTED_PATHS:
        name = rel.rstrip("/")
        if rel.endswith("/"):
            lines += [
                f"echo evil > {name}/planted && echo PLANTED {name}/planted",
                f"mkdir -p {name}/sub 2>/dev/null && echo PLANTED {name}/sub",
                f"mv {name} {name}.moved 2>/dev/null && echo PLANTED mv {name}",
                f"rm -rf {name} 2>/dev/null; mkdir -p {name}/x 2>/dev/null && echo PLANTED recreate {name}",
            ]
        else:
            lines += [
                f"echo evil >> {name} && echo PLANTED {name}",
                f"mv -f /dev/null {name}.x 2>/dev/null; echo evil > {name}.new && mv -f {name}.new {name} 2>/dev/null"
                f" && echo PLANTED rename {name}",
                f"rm -f {name} 2>/dev/null; [ ! -e {name} ] && echo evil > {name} 2>/dev/null && echo PLANTED recreate {name}",
                f"ln -s /etc/passwd {name} 2>/dev/null && echo PLANTED link {name}",
            ]
    return "\n".join(f"( {line} ) 2>/dev/null" for line in lines) + "\nrm -f *.new .*.new .git/*.new\ntrue"


@pytest.mark.parametrize("layout", ["existing", "missing"])
def test_protected_paths_cannot_be_planted(sandbox: Sandbox, layout: str) -> None:
    project = make_repo(sandbox)
    if layout == "existing":
        for rel in PROTECTED_PATHS:
            path = project / rel.rstrip("/")
            if rel.endswith("/"):
                path.mkdir(exist_ok=True)
                (path / "kept.json").write_text('{"host": true}\n')
            else:
                with path.open("a") as f:  # .git/config keeps its content
                    f.write(f"# host's own {rel}\n")
    else:  # everything but .git/config, which a repository needs
        for rel in PROTECTED_PATHS:
            path = project / rel.rstrip("/")
            if rel != ".git/config" and path.exists():
                subprocess.run(["rm", "-rf", str(path)], check=True)
    _own(sandbox, project)
    before = _tree(project)
    run = sandbox.run(_plant_all() + f"\n{GIT_FLOW}", limits=FAST).result
    assert "PLANTED" not in run.stdout, run.stdout
    assert run.stdout.endswith(GIT_FLOW_OUTPUT), (run.stdout, run.stderr)
    assert _tree(project) == before, "a protected path changed on the host (or a placeholder was left)"
    leftovers = sorted(p.name for p in project.iterdir() if p.name.endswith((".moved", ".x", ".new")))
    assert leftovers == [], leftovers


def test_a_project_that_is_no_repository_cannot_become_one(sandbox: Sandbox) -> None:
    project = sandbox.project
    run = sandbox.run("git init -q . ; echo init=$?; mkdir -p .git/hooks; echo mk=$?; ls -a", limits=FAST).result
    assert "init=0" not in run.stdout and "mk=0" not in run.stdout, run.stdout
    assert sorted(os.listdir(project)) == [], "a placeholder or a repository was left behind"


def test_a_git_file_pointer_cannot_be_repointed(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    project = sandbox.project
    (project / ".git").write_text("gitdir: /somewhere/real\n")
    _own(sandbox, project)
    run = sandbox.run(
        f"echo 'gitdir: {host_dirs.outside}' > .git; echo write=$?; rm -f .git; echo rm=$?", limits=FAST
    ).result
    assert "write=0" not in run.stdout and "rm=0" not in run.stdout, run.stdout
    assert (project / ".git").read_text() == "gitdir: /somewhere/real\n"


def test_the_operator_can_protect_more(sandbox: Sandbox) -> None:
    project = make_repo(sandbox)
    (project / "Makefile").write_text("all:\n\ttrue\n")
    _own(sandbox, project)
    run = sandbox.run(
        "echo evil >> Makefile; echo mk=$?; mkdir -p deploy/x; echo deploy=$?", limits=FAST, protect=["Makefile", "deploy/"]
    ).result
    assert "mk=0" not in run.stdout and "deploy=0" not in run.stdout, run.stdout
    assert (project / "Makefile").read_text() == "all:\n\ttrue\n"
    assert not (project / "deploy").exists()


def test_a_placeholder_the_host_filled_meanwhile_is_kept(sandbox: Sandbox) -> None:
    project = make_repo(sandbox)
    vscode = project / ".vscode"
    # While the command runs, the host (not the sandbox) puts a file in the placeholder.
    timer = threading.Timer(1.0, lambda: (vscode / "host.json").write_text("{}"))
    timer.start()
    try:
        run = sandbox.run(
            "for i in $(seq 200); do [ -e .vscode/host.json ] && break; sleep 0.05; done; ls .vscode", limits=FAST
        ).result
    finally:
        timer.join()
    assert "host.json" in run.stdout, (run.stdout, run.stderr)
    assert (vscode / "host.json").read_text() == "{}"
    assert not any(p.name == ".mcp.json" for p in project.iterdir()), "the other placeholders are gone"


def _writes_to_protected_paths_refused(sandbox: Sandbox, **options: float) -> None:
    """One call tries .mcp.json, a hook, .git/config and a new hook: each write must fail."""
    attempts = (
        "echo evil >> .mcp.json; echo mcp=$?; echo evil >> .git/hooks/x; echo hook=$?;"
        " echo evil >> .git/config; echo cfg=$?; echo '{}' > .git/hooks/y; echo new=$?"
    )
    run = sandbox.run(attempts + " 2>/dev/null", limits=FAST, **options).result
    for name in ("mcp", "hook", "cfg", "new"):
        assert f"{name}=0" not in run.stdout, (name, run.stdout, run.stderr)
        assert f"{name}=1" in run.stdout, run.stdout


def test_protected_paths_the_host_changes_between_calls_are_protected(sandbox: Sandbox) -> None:
    """The guard for moving protection into a warm worker ahead of the call (issue 13): the
    call's own plan decides, not the one the worker was warmed for. Between two calls, once the
    replacement workers are warm, the host creates .mcp.json and a hook, and rewrites .git/config
    by rename (as git does: a bind made earlier on the old file would be dropped by the kernel,
    which detaches mounts on a dentry renamed over or unlinked in another namespace)."""
    project = make_repo(sandbox)
    first = sandbox.run("cat .git/config >/dev/null && echo warm", limits=FAST).result
    assert first.stdout.strip() == "warm", first
    time.sleep(1.0)  # the zygote has warmed (and lent) the replacements by now
    (project / ".mcp.json").write_text('{"host": true}\n')
    (project / ".git" / "hooks").mkdir(exist_ok=True)
    (project / ".git" / "hooks" / "x").write_text("#!/bin/sh\n")
    assert _host_git(project, "config", "user.name", "Renamed User").returncode == 0
    _own(sandbox, project)
    before = _tree(project)
    for _ in range(2):  # the first warm worker, then the one lent after it
        _writes_to_protected_paths_refused(sandbox)
    assert _tree(project) == before, "a protected path changed on the host"
    assert "Renamed User" in (project / ".git" / "config").read_text()


def test_protected_paths_the_host_replaces_after_a_worker_prepared_them_are_protected(sandbox: Sandbox) -> None:
    """Warm workers make the last project's binds ahead of the call, placeholders included while
    they linger. Then the host replaces what was bound: the placeholder .mcp.json by a file, the
    hooks directory by another, .git/config by rename. Each prepared bind is detached by the
    kernel; the call must see that and bind the host's new paths read-only again."""
    project = make_repo(sandbox)
    for _ in range(3):  # each call's replacement worker is warmed for this project
        run = sandbox.run("echo warm", limits=FAST, linger=30.0).result
        assert run.stdout.strip() == "warm", run
        time.sleep(0.5)
    assert (project / ".mcp.json").is_dir(), "the placeholder lingers"
    (project / ".mcp.json").rmdir()
    (project / ".mcp.json").write_text('{"host": true}\n')
    hooks = project / ".git" / "hooks"
    hooks.rename(project / ".git" / "hooks.old")
    hooks.mkdir()
    (hooks / "x").write_text("#!/bin/sh\n")
    assert _host_git(project, "config", "user.name", "Renamed User").returncode == 0
    _own(sandbox, project)
    before = _tree(project)
    for _ in range(2):  # both warm workers
        _writes_to_protected_paths_refused(sandbox, linger=30.0)
    assert _tree(project) == before, "a protected path changed on the host"


# --- setuid / setgid -------------------------------------------------------------------------


def _special_bits(project: Path) -> list[str]:
    found = []
    for path in [project, *project.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.lstat().st_mode
        if mode & (stat.S_ISUID | stat.S_ISGID):
            found.append(f"{path.relative_to(project)} {stat.filemode(mode)}")
    return found


@needs_python_inside
def test_no_setuid_or_setgid_bit_can_be_made(sandbox: Sandbox) -> None:
    project = make_repo(sandbox)
    run = sandbox.run(
        "cp /bin/bash ./x && chmod 4755 ./x; echo chmod=$?; chmod u+s ./x; echo us=$?;"
        " cp /bin/bash ./g && chmod g+s ./g; echo gs=$?;"
        " install -m 4755 /bin/bash ./i; echo install=$?;"
        " mkdir -m 2755 ./d; echo mkdir=$?; mkdir ./d2 && chmod 2755 ./d2; echo chmoddir=$?;"
        " /usr/bin/python3 -c 'import os; os.close(os.open(\"o\", os.O_CREAT | os.O_WRONLY, 0o4755))'; echo open=$?;"
        " /usr/bin/python3 -c 'import os; os.mknod(\"n\", 0o6644)'; echo mknod=$?;"
        " /usr/bin/python3 -c 'import os; fd = os.open(\"x\", os.O_RDONLY); os.fchmod(fd, 0o6755)'; echo fchmod=$?;"
        " cp /bin/true ./ok && chmod +x ./ok && chmod 755 ./ok && ./ok; echo normal=$?;"
        " mkdir -m 755 ./plain; echo plain=$?;"
        f" {GIT_FLOW}",
        limits=FAST,
    ).result
    for step in ("chmod", "us", "gs", "install", "mkdir", "chmoddir", "open", "mknod", "fchmod"):
        assert f"{step}=0" not in run.stdout, (step, run.stdout)
    assert "normal=0" in run.stdout and "plain=0" in run.stdout, run.stdout
    assert run.stdout.endswith(GIT_FLOW_OUTPUT), (run.stdout, run.stderr)
    assert _special_bits(project) == []
    assert os.access(project / "ok", os.X_OK)


# --- the daemon's own files ------------------------------------------------------------------


def test_daemon_files_under_the_project_are_invisible(sandbox: Sandbox) -> None:
    project = make_repo(sandbox)
    data = project / "state" / "contextd"
    (data / "store").mkdir(parents=True)
    (data / "store" / "segment.bin").write_text("memories")
    (data / "tokens.json").write_text('{"tokens": ["hash"]}')
    (data / "audit.log").write_text('{"tool": "memory_store"}\n')
    cache = project / "cache" / "models"
    cache.mkdir(parents=True)
    (cache / "model.onnx").write_text("weights")
    _own(sandbox, project)
    sock = socket_at(data / "contextd.sock")
    try:
        run = sandbox.run(
            "ls -A state/contextd; echo ---; cat state/contextd/tokens.json state/contextd/audit.log cache/models/model.onnx;"
            " echo x >> state/contextd/tokens.json; echo write=$?; ls -A cache/models; echo ---;"
            f" {GIT_FLOW}",
            limits=FAST,
            hidden=[str(data), str(data / "tokens.json"), str(data / "audit.log"), str(data / "contextd.sock"), str(cache)],
        ).result
    finally:
        sock.close()
    listing = run.stdout.split("---")[0]
    for secret in ("store", "tokens.json", "audit.log", "contextd.sock"):
        assert secret not in listing, run.stdout
    assert "hash" not in run.stdout and "memory_store" not in run.stdout and "weights" not in run.stdout
    assert "write=0" not in run.stdout, run.stdout
    assert run.stdout.endswith(GIT_FLOW_OUTPUT), (run.stdout, run.stderr)
    assert (data / "tokens.json").read_text() == '{"tokens": ["hash"]}'


def socket_at(path: Path) -> socket.socket:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(path.parent)  # a relative name: the absolute path is longer than sun_path allows
    try:
        s.bind(path.name)
    finally:
        os.chdir(cwd)
    s.listen(1)
    return s


def test_a_submodules_git_files_and_checkout_are_protected(sandbox: Sandbox, host_dirs: HostDirs) -> None:
    upstream = host_dirs.base / f"upstream-{uuid.uuid4().hex[:8]}"
    upstream.mkdir()
    _host_git(upstream, "init", "-q", "-b", "main")
    (upstream / "lib.txt").write_text("lib\n")
    _host_git(upstream, "add", "lib.txt")
    _host_git(upstream, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "lib")
    project = make_repo(sandbox)
    added = _host_git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "sub")
    assert added.returncode == 0, added.stderr
    _host_git(project, "commit", "-qm", "add sub")
    (project / "sub" / ".vscode").mkdir()
    (project / "sub" / ".vscode" / "settings.json").write_text("{}")
    _own(sandbox, project)
    module_config = (project / ".git" / "modules" / "sub" / "config").read_bytes()
    pointer = (project / "sub" / ".git").read_text()
    run = sandbox.run(
        "cd sub && git config core.fsmonitor 'touch /tmp/x'; echo modconfig=$?;"
        " echo x > ../.git/modules/sub/hooks/pre-commit; echo modhook=$?;"
        " echo 'gitdir: /elsewhere' > .git; echo pointer=$?; echo '{}' > .vscode/tasks.json; echo vscode=$?;"
        " echo more >> lib.txt && git add lib.txt && git -c user.name=a -c user.email=a@x commit -qm in-sub && echo SUB-OK",
        limits=FAST,
    ).result
    for step in ("modconfig", "modhook", "pointer", "vscode"):
        assert f"{step}=0" not in run.stdout, (step, run.stdout)
    assert "SUB-OK" in run.stdout, (run.stdout, run.stderr)
    assert (project / ".git" / "modules" / "sub" / "config").read_bytes() == module_config
    assert (project / "sub" / ".git").read_text() == pointer
    assert not (project / ".git" / "modules" / "sub" / "hooks" / "pre-commit").exists()
    assert sorted(os.listdir(project / "sub" / ".vscode")) == ["settings.json"]
