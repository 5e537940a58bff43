"""Command line. Parses, then hands over; heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from contextd_mcp import __version__
from contextd_mcp.transports.bridge import data_paths


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def cmd_serve(args: argparse.Namespace) -> int:
    import anyio

    from contextd_mcp.daemon import AlreadyRunning, configure_logging, run_daemon
    from contextd_mcp.transports.http import is_loopback

    configure_logging(Path(args.log_file) if args.log_file else None)
    if args.http and not is_loopback(args.http[0]):
        print(
            f"contextd-mcp: refusing to serve HTTP on non-loopback address {args.http[0]} without auth; "
            "bind 127.0.0.1 (or put it behind an authenticating proxy)",
            file=sys.stderr,
        )
        return 2
    try:
        anyio.run(run_daemon, data_paths(args.data_dir), args.http, {"cwd": os.getcwd()})
    except AlreadyRunning as exc:
        print(f"contextd-mcp: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    paths = data_paths(args.data_dir)
    if args.in_process:
        from contextd_mcp.in_process import run_in_process

        return run_in_process(paths)
    from contextd_mcp.transports.bridge import run_bridge

    return run_bridge(paths)


def cmd_status(args: argparse.Namespace) -> int:
    from contextd_mcp.transports.bridge import request

    paths = data_paths(args.data_dir)
    reply = request(paths, "status")
    if reply is None:
        size = sum(f.stat().st_size for f in paths.store.rglob("*") if f.is_file()) if paths.store.exists() else 0
        status = {"running": False, "data_dir": str(paths.root), "store_disk_bytes": size}
    else:
        reply.pop("ok", None)
        status = {"running": True, "data_dir": str(paths.root), **reply}
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    elif not status["running"]:
        print(f"contextd-mcp daemon: not running\ndata dir: {paths.root}\nstore on disk: {status['store_disk_bytes']} bytes")
    else:
        store = status.get("store", {})
        print(f"contextd-mcp daemon: running (pid {status['pid']}, version {status['version']})")
        print(f"data dir: {paths.root}")
        print(f"store: {store.get('engine')} — {store.get('disk_bytes', '?')} bytes on disk")
        print(f"embedding model: {status.get('embedding_model')} ({status.get('embedding_dim')}-d)")
        print(f"memories: {status.get('memories')}")
        print(f"connections: {status.get('connections')}")
    return 0


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


def cmd_docs(args: argparse.Namespace) -> int:
    from contextd_mcp.docs import write_docs

    stale = write_docs(Path(args.out), check=args.check)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run `contextd-mcp docs`)", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="contextd-mcp", description="Memory and a sandboxed bash for coding agents, over MCP.")
    root.add_argument("--version", action="version", version=__version__)
    sub = root.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", help="data directory (default: $CONTEXTD_DATA_DIR or ~/.local/share/contextd-mcp)")
        return p

    p = add("serve", "run the daemon that owns the data directory")
    p.add_argument("--http", type=_host_port, metavar="HOST:PORT", help="also serve Streamable HTTP (/mcp) and SSE (/sse)")
    p.add_argument("--log-file", help="append logs here instead of stderr")
    p.set_defaults(func=cmd_serve)

    p = add("stdio", "MCP over stdin/stdout (what an IDE launches): a bridge to the daemon")
    p.add_argument("--in-process", action="store_true", help="hold the store in this process instead (single agent)")
    p.set_defaults(func=cmd_stdio)

    p = add("status", "show whether the daemon runs, and what it holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = add("stop", "stop the daemon cleanly (exits 0 when none runs)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("docs", help="generate schema.json and TOOL.md from the tool registry")
    p.add_argument("--out", default=".", help="directory to write into")
    p.add_argument("--check", action="store_true", help="fail if the committed files differ")
    p.set_defaults(func=cmd_docs, data_dir=None)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
