"""A sandbox init that prepares a project's mounts ahead, then takes a call: for
test_sandbox_prepared.py. Line protocol on stdio (JSON): argv[1] is the hint (project,
project_id, tmp_bytes, pid_max, protected, masked); prints {"ready": true} once prepared, reads
the call (same fields plus "writes": paths to try appending to, "reads": to read), prints what it found, exits."""

from __future__ import annotations

import json
import os
import sys

from contextd_mcp.sandbox import _rootfs, _worker


def _args(spec: dict) -> tuple:
    protected = [(path, how) for path, how in spec["protected"]]
    project_id = tuple(spec["project_id"]) if spec["project_id"] else None
    return spec["project"], project_id, spec["tmp_bytes"], spec["pid_max"], protected, spec["masked"]


def _try_write(path: str) -> str:
    try:
        with open(path, "a") as f:
            f.write("evil\n")
        return "written"
    except OSError as exc:
        return os.strerror(exc.errno or 0)


def _try_read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return os.strerror(exc.errno or 0)


def _init(hint: dict) -> int:
    host = _rootfs.prepare()
    prepared = _rootfs.prepare_project(*_args(hint), host)
    print(json.dumps({"ready": True, "prepared": sorted(p for p, _ in prepared.binds) if prepared else None}), flush=True)
    call = json.loads(sys.stdin.readline())
    project, project_id, tmp_bytes, pid_max, protected, masked = _args(call)
    changed = _rootfs._changed_binds(protected, prepared.binds) if prepared and prepared.key else None
    used = _rootfs.finish(project, project_id, tmp_bytes, pid_max, protected, masked, host, prepared)
    reads = {path: _try_read(path) for path in call.get("reads", [])}
    writes = {path: _try_write(path) for path in call["writes"]}
    found = {"used": used, "changed": changed and [p for p, _ in changed], "writes": writes, "reads": reads}
    print(json.dumps(found), flush=True)
    return 0


def main() -> int:
    hint = json.loads(sys.argv[1])
    _worker._enter_namespaces()
    pid = os.fork()
    if pid == 0:
        try:
            code = _init(hint)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            print(json.dumps({"error": repr(exc)}), flush=True)
            code = 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


if __name__ == "__main__":
    sys.exit(main())
