"""Command line. Parses, then hands over; heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextd_mcp import __version__, env, limits
from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.bridge import data_paths

if TYPE_CHECKING:  # imported inside the commands: the CLI starts light
    from contextd_mcp.adapters.token_store import TokenStore
    from contextd_mcp.settings import Settings
    from contextd_mcp.transports.http_options import HttpAuth


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def _chunk(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 10_000_000:
        raise argparse.ArgumentTypeError("expected a whole number of memories from 1 to 10,000,000")
    return int(value)


TOOLSETS_HELP = "the toolsets listed and callable: e.g. memory,policy; default, or all"


def cmd_serve(args: argparse.Namespace) -> int:
    from contextd_mcp import start_gc

    start_gc.pause()  # first: the imports and the build below are most of a start (run_daemon settles it)
    import anyio

    from contextd_mcp.adapters.malloc_arenas import limit_arenas
    from contextd_mcp.daemon import AlreadyRunning, CannotListen, ServeOptions, configure_logging, run_daemon
    from contextd_mcp.mcp.toolsets import parse
    from contextd_mcp.settings import Settings, ToolsetSettings

    limit_arenas(limits.MALLOC_ARENAS)  # first: before any thread has an arena of its own
    settings = Settings()
    configure_logging(Path(args.log_file) if args.log_file else None, settings.diagnostics.log_level)
    if args.toolsets:  # the flag wins over the environment
        settings = dataclasses.replace(settings, toolsets=ToolsetSettings(toolsets=args.toolsets))
    try:
        parse(settings.toolsets.toolsets)
    except ValueError as exc:
        print(f"contextd-mcp: --toolsets / CONTEXTD_TOOLSETS: {exc}", file=sys.stderr)
        return 2
    options = ServeOptions(http=args.http, idle_exit_s=float(args.idle_exit or 0))
    if args.http:
        try:
            options = dataclasses.replace(options, auth=_http_auth(args, settings))
        except ValueError as exc:
            print(f"contextd-mcp: {exc}", file=sys.stderr)
            return 2
    # --replace: an agent's bridge may start a daemon of its own in the moment between the old
    # one's exit and this one taking the directory; that one is stopped too (a bounded number of times).
    attempts = REPLACE_ATTEMPTS if args.replace else 1
    for attempt in range(attempts):
        if args.replace and not _stop_running(args):
            return 1
        try:
            anyio.run(run_daemon, data_paths(args.data_dir), options, settings)
        except AlreadyRunning as exc:
            if attempt + 1 < attempts:
                continue
            print(f"contextd-mcp: {exc}{_already_running_hint(args)}", file=sys.stderr)
            return 1
        except CannotListen as exc:
            print(f"contextd-mcp: {exc}", file=sys.stderr)
            return 1
        return 0
    return 1


REPLACE_ATTEMPTS = 3  # serve --replace: how many daemons it stops before it gives up
# `compact` on a store with older keys: memories (about 5 keys each) moved between two compactions.
# At 100k memories, 10 chunks held at most 0.8 GiB of heap; the whole move at once, 2.2 GiB.
REKEY_CHUNK = 10_000


def _stop_running(args: argparse.Namespace) -> bool:
    """``serve --replace``: stop the daemon that owns the data directory, then take it over at
    once (imports done first, so agents' bridges, which start a daemon when theirs is gone,
    find this one starting and wait for it)."""
    import contextd_mcp.container  # noqa: F401

    import time

    from contextd_mcp.transports.bridge import owner_pid, request

    paths = data_paths(args.data_dir)
    deadline = time.monotonic() + args.stop_timeout
    while True:
        reply = request(paths, "stop")
        if reply is not None:
            # Take over the moment it lets go of the directory, not when its process is gone:
            # in between, a reconnecting bridge would start a daemon of its own.
            if not _released(paths, int(reply["pid"]), args.stop_timeout):
                print(f"contextd-mcp: daemon {reply['pid']} did not stop within {args.stop_timeout}s", file=sys.stderr)
                return False
            return True
        holder = owner_pid(paths)
        if holder is None:
            return True
        if time.monotonic() > deadline:  # it holds the directory and never answers
            print(f"contextd-mcp: process {holder} holds {paths.root} but did not answer within {args.stop_timeout}s", file=sys.stderr)
            return False
        time.sleep(0.1)  # a daemon still starting (one a bridge started): stop it once it answers


def _released(paths: DataPaths, pid: int, timeout: float) -> bool:
    """Whether ``pid`` let go of the data directory's lock (or exited) within ``timeout``."""
    import time

    from contextd_mcp.transports.bridge import alive, owner_pid

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if owner_pid(paths) != pid or not alive(pid):
            return True
        time.sleep(0.005)
    return False


def _already_running_hint(args: argparse.Namespace) -> str:
    """What to run instead, on the same line (issue 16: the bare refusal left users stuck)."""
    import shlex

    try:
        running = json.loads(data_paths(args.data_dir).daemon_info.read_text())
    except (OSError, ValueError):
        running = {}
    from contextd_mcp.transports.bridge import owner_pid

    pid = owner_pid(data_paths(args.data_dir)) or running.get("pid", "?")  # daemon.json outlives a killed daemon
    if running.get("http"):
        return f" (pid {pid}, serving {running['http']} and the socket); stop it first: contextd-mcp stop"
    if not args.http:
        return f" (pid {pid}); stop it first: contextd-mcp stop"
    again = shlex.join(["contextd-mcp", *args.argv, *([] if args.replace else ["--replace"])])
    return (f" (pid {pid}, serving the socket only, e.g. started by an agent's bridge); to add HTTP, run: {again}"
            " (connected agents reconnect on their own)")


def _http_auth(args: argparse.Namespace, settings: Settings) -> HttpAuth:
    """Tokens file or explicit open loopback; raises ValueError when HTTP must not start."""
    from contextd_mcp.adapters.token_store import FILE_NAME, TokenStore
    from contextd_mcp.transports.http_options import HttpAuth, check_http_auth

    auth = settings.auth
    path = auth.tokens_file or data_paths(args.data_dir).root / FILE_NAME
    allow = args.allow_unauthenticated_loopback or auth.http_allow_local_noauth
    hosts = (*auth.http_allowed_hosts, *(args.allowed_host or []))
    cwd = Path.cwd()
    if check_http_auth(args.http[0], TokenStore(path).active_count(), allow, list(hosts)):
        return HttpAuth(tokens_file=path, allowed_hosts=hosts, cwd=cwd)
    return HttpAuth(tokens_file=None, allowed_hosts=hosts, cwd=cwd)


def _token_store(args: argparse.Namespace) -> TokenStore:
    from contextd_mcp.adapters.token_store import TokenStore, tokens_path

    return TokenStore(tokens_path(data_paths(args.data_dir).root))


def cmd_token_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from contextd_mcp.models.scope import Scope

    try:  # the same name rules as every scope, so the token cannot carry an unusable tenant
        Scope(tenant=args.tenant, team=args.team or "default", project=args.project or "default")
    except ValidationError:
        print("contextd-mcp: tenant, team and project must be 1-64 characters of letters, digits, '.', '_' or '-'",
              file=sys.stderr)
        return 2
    store = _token_store(args)
    try:
        expires_in = None if args.expires_in is None else parse_duration(args.expires_in)
        agent = None
        if args.agent:  # bound by identity now, never looked up by name per request
            from contextd_mcp.token_agent import resolve_token_agent

            agent = resolve_token_agent(data_paths(args.data_dir), args.tenant, args.team, args.project, args.agent)
        token, entry = store.create(
            args.tenant, args.team, args.project, agent.name if agent else None, args.read_only, args.name,
            expires_in=expires_in, agent_id=agent.id if agent else None, agent_owner=agent.owner if agent else None,
        )
    except ValueError as exc:
        print(f"contextd-mcp: {exc}", file=sys.stderr)
        return 1
    print(token)
    print(
        f"token {entry.id} for tenant {entry.tenant}"
        + (f", team {entry.team}" if entry.team else "")
        + (f", project {entry.project}" if entry.project else "")
        + (f", agent {entry.agent} (id {entry.agent_id}, of {entry.agent_owner})" if entry.agent else "")
        + (", read-only" if entry.read_only else "")
        + (f", expiring {_when(entry.expires_at)}" if entry.expires_at else "")
        + f" saved (hashed) in {store.path}. It is shown only now: send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    entries = [e for e in _token_store(args).entries() if e.active or args.all]
    if args.json:
        print(json.dumps([e.public() for e in entries], indent=2))
        return 0
    if not entries:
        print("no tokens (create one with `contextd-mcp token create --tenant NAME`)")
    for e in entries:
        if e.revoked_at is not None:
            state = "revoked"
        elif e.expired:
            state = "expired"
        else:
            state = ("read-only" if e.read_only else "read-write") + (f" until {_when(e.expires_at)}" if e.expires_at else "")
        scope = "/".join(x or "*" for x in (e.tenant, e.team, e.project))
        agent = "-" if not e.agent else e.agent + (" (made by an older contextd: recreate)" if e.needs_agent_rebind else "")
        print(f"{e.id}  {e.name or '-':<16} {scope:<40} agent={agent}  {state}")
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90`` (seconds), ``45m``, ``12h``, ``30d``: a positive duration in seconds."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"--expires-in: {text!r} is not a duration like 3600, 45m, 12h or 30d") from None
    if not 0 < seconds <= 3650 * 86400:
        raise ValueError("--expires-in: must be more than 0 and at most 3650d")
    return seconds


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts or 0))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    try:
        entry = _token_store(args).revoke(args.token)
    except KeyError as exc:
        print(f"contextd-mcp: {exc.args[0]}", file=sys.stderr)
        return 1
    print(f"revoked token {entry.id}" + (f" ({entry.name})" if entry.name else ""))
    return 0


def cmd_audit_tail(args: argparse.Namespace) -> int:
    from contextd_mcp.audit_view import follow, format_line, tail

    path = data_paths(args.data_dir).audit
    show = (lambda line: line) if args.json else format_line
    for line in tail(path, args.n):
        print(show(line))
    if args.follow:
        try:
            for line in follow(path):
                print(show(line), flush=True)
        except KeyboardInterrupt:
            return 0
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    paths = data_paths(args.data_dir)
    # Flags win over CONTEXTD_*: they travel in the hello exactly as those variables would (the
    # daemon applies the same rules to both), and survive a client that strips the environment.
    scope_env = {f"CONTEXTD_{part.upper()}": value for part in ("tenant", "team", "project")
                 if (value := getattr(args, part))}
    if args.toolsets:  # the flag wins; the hello carries it as it carries CONTEXTD_TOOLSETS
        scope_env["CONTEXTD_TOOLSETS"] = args.toolsets
    if args.in_process:
        from contextd_mcp.in_process import run_in_process

        return run_in_process(paths, scope_env)
    from contextd_mcp.transports.bridge import run_bridge

    return run_bridge(paths, scope_env)


def _scope_status(cwd: Path) -> dict[str, object]:
    """The scope a client started here gets (the bridge sends this directory and environment)."""
    from contextd_mcp.scope_resolver import resolve

    resolved = resolve(cwd, env.scope_env())
    return {"directory": str(cwd), **resolved.scope.fields(), "sources": resolved.sources}


def _print_scope(scope: dict[str, object]) -> None:
    print(f"scope here ({scope['directory']}):")
    sources = scope["sources"]
    assert isinstance(sources, dict)
    for part in ("tenant", "team", "project"):
        print(f"  {part}: {scope[part]}  ← {sources[part]}")


def cmd_status(args: argparse.Namespace) -> int:
    from contextd_mcp.transports.bridge import request

    paths = data_paths(args.data_dir)
    reply = request(paths, "status")
    if reply is None:
        size = sum(f.stat().st_blocks * 512 for f in paths.store.rglob("*") if f.is_file()) if paths.store.exists() else 0
        status: dict[str, Any] = {"running": False, "data_dir": str(paths.root), "store_disk_bytes": size}
    else:
        reply.pop("ok", None)
        status = {"running": True, "data_dir": str(paths.root), **reply}
    status["scope"] = _scope_status(Path(args.path or os.getcwd()).resolve())
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    _print_scope(status["scope"])
    if not status["running"]:
        print(f"contextd-mcp daemon: not running\ndata dir: {paths.root}\nstore on disk: {status['store_disk_bytes']} bytes")
    else:
        store = status.get("store", {})
        print(f"contextd-mcp daemon: running (pid {status['pid']}, version {status['version']})")
        print(f"data dir: {paths.root}")
        print(f"store: {store.get('engine')} — {store.get('disk_bytes', '?')} bytes on disk")
        print(f"embedding model: {status.get('embedding_model')} ({status.get('embedding_dim')}-d)")
        print(f"memories: {status.get('memories')}")
        print(f"connections: {status.get('connections')} ({status.get('handed_off', 0)} on the client's own stdio, "
              "the rest relayed or HTTP)")
        print(sandbox_line(status.get("sandbox")))
        for line in indexing_lines(store.get("indexing") or {}):
            print(line)
        for name, fields in sorted((store.get("shared_by_every_point") or {}).items()):
            print(f"  {name}: every point shares {', '.join(fields)} (searched without filtering on them)")
    return 0


def indexing_lines(indexing: dict[str, Any]) -> list[str]:
    """The embedded store's indexing per collection: points not indexed yet, and the job under
    way or the last one (adapters/edge_indexing.py)."""
    lines = []
    for name, info in sorted(indexing.items()):
        job = info.get("job") or {}
        line = f"indexing {name}: {info.get('unindexed_points')} points not indexed (threshold {info.get('index_after') or 'off'})"
        if job:
            took = ", ".join(f"{k} {job[k]} s" for k in ("copy_s", "build_s", "open_s", "replay_s", "swap_s") if k in job)
            line += f"; {job.get('stage')}" + (f" ({took})" if took else "") + (f": {job['error']}" if "error" in job else "")
        lines.append(line)
    return lines


def cmd_migrate_tenant(args: argparse.Namespace) -> int:
    """Moves a checkout's records from the first tenant derivation's scope to the current one."""
    paths = data_paths(args.data_dir)
    if _daemon_owns_store(paths):
        return 1
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.settings import StoreSettings
    from contextd_mcp.tenant_migration import migrate

    settings = StoreSettings(data_dir=paths.root)
    if not settings.embedded:
        print("contextd-mcp: migrate-tenant works on the embedded store only", file=sys.stderr)
        return 2
    store = EdgeStore(paths.store)
    try:
        lines = migrate(paths.store, store, Path(args.path or os.getcwd()), env.scope_env(), args.apply, args.include_shared)
    finally:
        store.close()
    print("\n".join(lines))
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Builds the embedded store's indexed segments (HNSW, memory-mapped), with no daemon running."""
    paths = data_paths(args.data_dir)
    if _daemon_owns_store(paths):
        return 1
    from contextd_mcp.adapters.qdrant_edge_store import compact_store

    if not paths.store.is_dir():
        print(f"contextd-mcp: no store in {paths.root}", file=sys.stderr)
        return 2
    moved, chunks, seconds = _rekey_all(paths, args.chunk) if (paths.store / "memories").is_dir() else (0, 0, 0.0)
    if moved:
        print(f"memory keys: {moved} memories brought to the current key layout in {chunks} chunks, {seconds:.1f} s")
    for name, seconds in compact_store(paths.store).items():
        print(f"{name}: {seconds:.1f} s")
    return 0


def _rekey_all(paths: DataPaths, chunk_max: int) -> tuple[int, int, float]:
    """Every memory to the current key layout (``services/memory_rekey.py``), before the store is
    compacted: the keys it moves are indexed with the rest, not by a daemon's index build for each
    20k of them. The store is opened in bulk (``EdgeStore(bulk=True)``) and compacted after each
    ``chunk_max`` memories, so the moved keys never pile up on the heap; (memories, chunks, seconds)."""
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.container import build
    from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
    from contextd_mcp.services.memory_rekey import PAGE, MemoryRekey
    from contextd_mcp.settings import Settings

    settings = Settings()
    settings = dataclasses.replace(settings, store=settings.store.model_copy(update={"index_after_points": 0}))
    started = time.perf_counter()
    store = EdgeStore(paths.store, bulk=True)
    container = build(paths, settings, store=store)
    try:
        rekey = MemoryRekey(container.memory, Stores(store), AcrossScopes(store), page=min(PAGE, chunk_max))
        moved = chunk = chunks = 0
        while not rekey.done:
            chunk += rekey.step()
            if chunk >= chunk_max or (rekey.done and chunk):
                store.compact()
                moved, chunk, chunks = moved + chunk, 0, chunks + 1
    finally:
        container.close()
    # Opened again as a daemon opens it: each collection's own settings are what it keeps, and
    # what the compaction that follows builds under (the model already loaded serves again).
    build(paths, settings, embedder=container.embedder).close()
    return moved, chunks, time.perf_counter() - started


def _daemon_owns_store(paths: DataPaths) -> bool:
    """Whether a daemon answers for ``paths`` (said on stderr): commands that open the embedded
    store themselves must not while it is open in the daemon."""
    from contextd_mcp.transports.bridge import request

    if request(paths, "status") is None:
        return False
    print("contextd-mcp: the daemon is running; stop it first (`contextd-mcp stop`): it owns the store", file=sys.stderr)
    return True


def sandbox_line(sandbox: dict[str, Any] | None) -> str:
    """The bash sandbox's budget: cgroup mode and limits, or why cgroups are not used."""
    if not sandbox:
        return "sandbox: bash tool not enabled"
    cgroup, limits = sandbox["cgroup"], sandbox["limits"]
    mode = cgroup["mode"] if cgroup["mode"] != "none" else f"none — {cgroup['reason']}; per-process rlimits only"
    return (
        f"sandbox: cgroup {mode}\n"
        f"  per call: {limits['call_memory_bytes']} bytes memory (incl. /tmp), {limits['call_max_tasks']} tasks, "
        f"{limits['call_cpus']} CPUs, {limits['project_write_bytes']} bytes of project growth\n"
        f"  all calls: {limits['total_memory_bytes']} bytes memory, {limits['total_max_tasks']} tasks, "
        f"{limits['max_concurrent']} at once (wait {limits['queue_seconds']} s); {sandbox['running']} running"
    )


def cmd_stop(args: argparse.Namespace) -> int:
    from contextd_mcp.transports.bridge import request, wait_for_exit

    paths = data_paths(args.data_dir)
    reply = request(paths, "stop")
    if reply is None:
        print(f"contextd-mcp: no daemon running for {paths.root}")
        return 0
    pid = int(reply["pid"])
    if wait_for_exit(pid, args.timeout):
        print(f"contextd-mcp: daemon {pid} stopped (store flushed)")
        return 0
    print(f"contextd-mcp: daemon {pid} did not stop within {args.timeout}s", file=sys.stderr)
    return 1


def cmd_hook(args: argparse.Namespace) -> int:
    from contextd_mcp.hooks import run_hook

    return run_hook(args.event, args.data_dir)


def cmd_docs(args: argparse.Namespace) -> int:
    from contextd_mcp.docs import write_docs

    stale = write_docs(Path(args.out), check=args.check)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run `contextd-mcp docs`)", file=sys.stderr)
        return 1
    return 0


# -- export, import, memories: the data directory owner's commands (admin.py) ------------------


class _AdminFailed(RuntimeError):
    pass


def _admin(args: argparse.Namespace, request: dict[str, Any]) -> list[str]:
    """Runs one owner command in the daemon that holds the data directory, or, when none does,
    here with the directory's lock held (never taken from a daemon, so never broken)."""
    from contextd_mcp.transports.bridge import BridgeError, open_session

    paths = data_paths(args.data_dir)
    try:
        sock, _, rest = open_session(paths, "admin", autostart=False, fields={"request": request})
    except BridgeError as exc:
        if str(exc) != "no daemon is running":
            hint = " (a daemon older than this command: restart it with `contextd-mcp serve --replace`)" if "unknown op" in str(exc) else ""
            raise _AdminFailed(f"{exc}{hint}") from None
        return _admin_here(paths, request)
    chunks = [rest]
    with sock:
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks).decode().splitlines()


def _admin_here(paths: DataPaths, request: dict[str, Any]) -> list[str]:
    from contextd_mcp.admin import Admin, AdminError
    from contextd_mcp.container import build
    from contextd_mcp.daemon import AlreadyRunning, acquire_owner_lock

    paths.ensure()
    try:
        lock = acquire_owner_lock(paths)
    except AlreadyRunning as exc:
        raise _AdminFailed(f"{exc} but does not answer yet (starting?): try again in a moment") from None
    try:
        container = build(paths)
        try:
            return Admin(container).run(request)
        except AdminError as exc:
            raise _AdminFailed(str(exc)) from None
        finally:
            container.close()
    finally:
        lock.close()


def _scope_args(args: argparse.Namespace) -> dict[str, str]:
    """--tenant/--team/--project, else what this directory resolves to (as `stdio` does)."""
    env = {**os.environ, **{f"CONTEXTD_{p.upper()}": v for p in ("tenant", "team", "project") if (v := getattr(args, p, None))}}
    from contextd_mcp.scope_resolver import resolve

    return resolve(Path(os.getcwd()), env).scope.fields()


def _run_admin(args: argparse.Namespace, request: dict[str, Any]) -> list[str] | None:
    try:
        return _admin(args, request)
    except _AdminFailed as exc:
        print(f"contextd-mcp: {exc}", file=sys.stderr)
        return None


def cmd_export(args: argparse.Namespace) -> int:
    tenant = args.tenant or _scope_args(args)["tenant"]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    request = {"command": "export", "tenant": tenant, "team": args.team, "project": args.project,
               "format": args.format, "kinds": kinds}
    lines = _run_admin(args, request)
    if lines is None:
        return 1
    for line in lines:
        sys.stdout.write(line + "\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from contextd_mcp.services.transfer_format import BadLine, check_file

    path = Path(args.file).resolve()
    try:  # a file that is no export fails here, not after a store and a model load (~3 s)
        check_file(path)
    except OSError as exc:
        print(f"contextd-mcp: {path}: {exc.strerror}", file=sys.stderr)
        return 1
    except BadLine as exc:
        print(f"contextd-mcp: {exc}", file=sys.stderr)
        return 1
    request = {"command": "import", "path": str(path), "dry_run": args.dry_run,
               "into_project": args.into_project, "tenant": args.tenant, "on_error": args.on_error}
    lines = _run_admin(args, request)
    if lines is None:
        return 1
    report = json.loads(lines[-1])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for error in report["errors"]:
            print(f"skipped {error}", file=sys.stderr)
        print(("dry run: " if report["dry_run"] else "") + report["summary"])
    return 1 if report["aborted"] else 0


def cmd_memories(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"command": f"memories.{args.memories_command}", **_scope_args(args)}
    if args.memories_command == "rm":
        if not args.yes and not _confirm(args, request):
            print("nothing deleted")
            return 1
        request["ids"] = args.ids
    else:
        request.update({k: getattr(args, k) for k in ("limit", "query", "id") if hasattr(args, k)})
    lines = _run_admin(args, request)
    if lines is None:
        return 1
    result = json.loads(lines[-1])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_memories(args.memories_command, result)
    return 0


def _confirm(args: argparse.Namespace, request: dict[str, Any]) -> bool:
    shown = [json.loads(lines[-1]) for memory_id in args.ids
             if (lines := _run_admin(args, {**request, "command": "memories.show", "id": memory_id}))]
    if not shown:
        return False
    for memory in shown:
        print(f"{memory['id']}  {memory['title']}")
    try:
        answer = input(f"delete {len(shown)} memor{'y' if len(shown) == 1 else 'ies'} and their keys? [y/N] ")
    except EOFError:
        return False
    args.ids = [m["id"] for m in shown]
    return answer.strip().lower() in ("y", "yes")


def _print_memories(command: str, result: Any) -> None:
    if command in ("list", "search"):
        if not result:
            print("no memories")
        for m in result:
            print(f"{m['id']}  {float(m['confidence']):.2f}  {m['outcome']:<7}  {str(m['title'])[:70]}")
    elif command == "show":
        print(f"{result['title']}\n  id {result['id']} · {result['outcome']} · confidence {result['confidence']}"
              f" · helpful {result['helpful_count']} / unhelpful {result['unhelpful_count']}\n\n{result['content']}\n")
        for situation in result["applies_when"]:
            print(f"  applies when: {situation}")
        for key in result["keys"]:
            print(f"  {key['kind']} query: {key['text']}")
        for event in result["events"]:
            print(f"  {_when(event.get('ts'))} {event.get('kind')} {'helpful' if event.get('helpful') else 'not helpful'}")
    else:
        print(f"deleted {len(result['deleted'])}: " + ", ".join(result["deleted"]))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="contextd-mcp", description="Memory and a sandboxed bash for coding agents, over MCP.")
    root.add_argument("--version", action="version", version=__version__)
    sub = root.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", help="data directory (default: $CONTEXTD_DATA_DIR or ~/.local/share/contextd-mcp)")
        return p

    p = add("serve", "run the daemon that owns the data directory")
    p.add_argument("--toolsets", metavar="A,B", help=TOOLSETS_HELP + " for connections that name none (or $CONTEXTD_TOOLSETS)")
    p.add_argument("--http", type=_host_port, metavar="HOST:PORT", help="also serve Streamable HTTP (/mcp) and SSE (/sse)")
    p.add_argument("--log-file", help="append logs here instead of stderr")
    p.add_argument(
        "--idle-exit", type=float, default=0, metavar="SECONDS",
        help="stop after this long with no connection (0 = never; bridges start daemons with 1800)",
    )
    p.add_argument(
        "--allow-unauthenticated-loopback",
        action="store_true",
        help="serve HTTP on loopback without tokens (or CONTEXTD_HTTP_ALLOW_LOCAL_NOAUTH=1)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST[:PORT]",
        help="a Host header clients use to reach a non-loopback bind (repeatable)",
    )
    p.add_argument("--replace", action="store_true",
                   help="stop the daemon that owns the data directory first (its agents reconnect to this one)")
    p.add_argument("--stop-timeout", type=float, default=30.0, help="with --replace: how long to wait for it to stop")
    p.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="bearer tokens for HTTP/SSE callers")
    tokens = token.add_subparsers(dest="token_command", required=True)

    def add_token(name: str, help_text: str) -> argparse.ArgumentParser:
        leaf = tokens.add_parser(name, help=help_text)
        leaf.add_argument("--data-dir", help="data directory (the tokens file lives here unless $CONTEXTD_TOKENS_FILE)")
        return leaf

    p = add_token("create", "create a token and print it once")
    p.add_argument("--tenant", required=True)
    p.add_argument("--team", help="pin the team (default: the caller may choose, else 'default')")
    p.add_argument("--project", help="pin the project (default: the caller may choose, else 'default')")
    p.add_argument(
        "--agent",
        help="bind the token to this agent (name, name@org or id), resolved now in the token's tenant/team/project "
        "(default/default when unpinned; starts the daemon if needed); its calls are limited to that agent's access",
    )
    p.add_argument("--read-only", action="store_true", help="refuse every tool that writes")
    p.add_argument("--name", help="a label, unique among active tokens (usable with revoke)")
    p.add_argument("--expires-in", metavar="DURATION", help="refuse the token after this long: 3600, 45m, 12h, 30d")
    p.set_defaults(func=cmd_token_create)
    p = add_token("list", "list tokens (never their values)")
    p.add_argument("--all", action="store_true", help="include revoked and expired tokens")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_list)
    p = add_token("revoke", "revoke a token by id or name (a running daemon stops accepting it at once)")
    p.add_argument("token", metavar="ID_OR_NAME")
    p.set_defaults(func=cmd_token_revoke)

    audit = sub.add_parser("audit", help="the audit log of tool calls")
    audits = audit.add_subparsers(dest="audit_command", required=True)
    p = audits.add_parser("tail", help="show the last calls, readably")
    p.add_argument("--data-dir", help="data directory")
    p.add_argument("-n", type=int, default=20, help="how many lines (default 20)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new calls")
    p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    p.set_defaults(func=cmd_audit_tail)

    p = add("stdio", "MCP over stdin/stdout (what an IDE launches): a bridge to the daemon")
    p.add_argument("--in-process", action="store_true", help="hold the store in this process instead (single agent)")
    for part in ("tenant", "team", "project"):
        p.add_argument(f"--{part}", help=f"this agent's {part} (wins over $CONTEXTD_{part.upper()}; same rules)")
    p.add_argument("--toolsets", metavar="A,B", help=TOOLSETS_HELP + " for this agent (or $CONTEXTD_TOOLSETS)")
    p.set_defaults(func=cmd_stdio)

    p = add("status", "show the scope of this directory, whether the daemon runs, and what it holds")
    p.add_argument("--json", action="store_true")
    p.add_argument("--path", help="show the scope of this directory instead of the current one")
    p.set_defaults(func=cmd_status)

    p = add("migrate-tenant", "move this checkout's records from the old tenant derivation to the current one")
    p.add_argument("--path", help="the checkout (default: the current directory)")
    p.add_argument("--apply", action="store_true", help="move (default: a dry run that only reports)")
    p.add_argument("--include-shared", action="store_true",
                   help="also move the old tenant's team- and org-level records (shared by its other projects)")
    p.set_defaults(func=cmd_migrate_tenant)

    p = add("export", "write every record of a tenant (or a team / project of it) to stdout, secrets scrubbed")
    for part in ("tenant", "team", "project"):
        p.add_argument(f"--{part}", help=f"only this {part}" + (" (default: this directory's)" if part == "tenant" else ""))
    p.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl",
                   help="jsonl (default) round-trips through import; markdown is for people")
    p.add_argument("--kinds", metavar="A,B", help="only these kinds: memory, remediation, policy, skill, agent, "
                   "checkpoint, session, transcript_mark (default: all)")
    p.set_defaults(func=cmd_export)

    p = add("import", "restore an export into this data directory, or merge it into what it holds")
    p.add_argument("file", help="a JSONL file written by `contextd-mcp export`")
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    p.add_argument("--into-project", metavar="NAME", help="put the project-owned records in this project")
    p.add_argument("--tenant", help="import into this tenant (default: the file's)")
    p.add_argument("--on-error", choices=("skip", "abort"), default="skip",
                   help="a bad line is reported and skipped (default), or stops the import")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)

    memories = sub.add_parser("memories", help="list, search, show and delete this project's memories")
    commands = memories.add_subparsers(dest="memories_command", required=True)

    def add_memories(name: str, help_text: str) -> argparse.ArgumentParser:
        leaf = commands.add_parser(name, help=help_text)
        leaf.add_argument("--data-dir", help="data directory")
        for part in ("tenant", "team", "project"):
            leaf.add_argument(f"--{part}", help=f"the {part} (default: this directory's, as `stdio` resolves it)")
        leaf.add_argument("--json", action="store_true", help="print JSON instead of a table")
        leaf.set_defaults(func=cmd_memories)
        return leaf

    p = add_memories("list", "the project's memories, newest first")
    p.add_argument("--limit", type=int, default=50)
    p = add_memories("search", "the memories memory_search would find, best first")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=5)
    p = add_memories("show", "one memory with its keys and history")
    p.add_argument("id")
    p = add_memories("rm", "delete memories (and their keys); asks first")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")

    p = add("stop", "stop the daemon cleanly (exits 0 when none runs)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_stop)

    p = add("hook", "a Claude Code hook: reads the hook JSON on stdin, talks to the daemon, always exits 0")
    # Not argparse choices: a wrong name must still exit 0 (a hook never fails the session).
    p.add_argument("event", metavar="{session-start,session-end,pre-compact}")
    p.set_defaults(func=cmd_hook)

    p = add("compact", "move older memory keys to the current layout, then index the embedded store's large collections; daemon stopped")
    p.add_argument(
        "--chunk", type=_chunk, default=REKEY_CHUNK, metavar="N",
        help=f"memories whose keys move between two compactions (default {REKEY_CHUNK:,}); fewer hold less memory",
    )
    p.set_defaults(func=cmd_compact)

    from contextd_mcp.ui_command import add_parser as add_ui

    add_ui(sub)

    p = sub.add_parser("docs", help="generate schema.json and TOOL.md from the tool registry")
    p.add_argument("--out", default=".", help="directory to write into")
    p.add_argument("--check", action="store_true", help="fail if the committed files differ")
    p.set_defaults(func=cmd_docs, data_dir=None)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # to repeat a command line in a hint
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe can still be handled
        return code
    except BrokenPipeError:
        # The reader went away (`status | head -1`): what is left has nobody to read it. Point
        # stdout at /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what the shell reports for a writer the pipe ended


if __name__ == "__main__":
    sys.exit(main())
