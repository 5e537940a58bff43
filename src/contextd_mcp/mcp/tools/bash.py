"""The bash tool: a command in the project, in namespaces + seccomp, no network."""

from __future__ import annotations

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec
from contextd_mcp.models.shell import BashResult, RunCommand
from contextd_mcp.services.shell import ShellService


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "bash",
        "Run a shell command in the project, sandboxed: no network, only the project writable, "
        "bounded time/memory/processes/output. Policies are checked first; secrets in output are "
        "redacted. Calls share one budget (`limits`); a call over it is `killed`.",
        RunCommand,
        BashResult,
        destructive=True,  # the command may delete or overwrite anything in the project
        example={"command": "pytest -q tests/test_upload.py", "timeout_seconds": 120},
        # The command runs as written (a scrubbed one would fail obscurely); it is not stored,
        # and its output is scrubbed like every result.
        scrub_input=False,
        example_result={
            "exit_code": 0,
            "stdout": "3 passed in 0.41s\n",
            "stderr": "",
            "duration_ms": 812.4,
            "timed_out": False,
            "truncated": False,
            "sandboxed": True,
            "killed": None,
            "limits": {"timeout_seconds": 120, "max_output_bytes_per_stream": 65536, "memory_bytes": 1073741824,
                       "cpu_seconds": 120, "max_processes": 256, "max_file_bytes": 268435456,
                       "max_open_files": 256, "network": "none", "call_memory_bytes": 2147483648,
                       "call_max_tasks": 512, "call_cpus": 2.0, "total_memory_bytes": 4294967296,
                       "max_concurrent_calls": 4, "project_write_bytes": 1073741824, "cgroup": "v2"},
            "policy_warnings": [],
        },
    ),
)


def bash_tools(service: ShellService) -> dict[str, Handler]:
    async def bash(caller: Caller, req: RunCommand) -> BashResult:
        return await service.run(caller.scope, caller.project_dir, req)

    return {"bash": bash}
