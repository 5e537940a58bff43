"""Runs an agent's shell command in the sandbox, after the caller's policies allow it."""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextd_mcp.errors import Denied, InvalidInput, Unavailable
from contextd_mcp.models.policy import PolicyCheckResult, Severity
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.shell import AppliedLimits, BashResult, RunCommand
from contextd_mcp.services.shell_env import refuse_dangerous_env
from contextd_mcp.sandbox import SandboxBudget, SandboxLimits
from contextd_mcp.services.shell_roots import ShellRoots

# (scope, action, context) -> object with .violations (each: policy_id, title, reason, severity)
PolicyCheck = Callable[[Scope, str, dict[str, Any]], PolicyCheckResult]


@dataclass(frozen=True)
class ShellSettings:
    # The per-process limits of every command, defined once (sandbox/_types.py); each call
    # sets its own timeout. CPU: 120 s, twice the sandbox's default, for builds and test runs.
    limits: SandboxLimits = SandboxLimits(cpu_seconds=120)
    # Only an operator sets this, for hosts that cannot sandbox; every result then says so.
    allow_unsandboxed: bool = False
    # Cgroup limits per call and for all calls, concurrency, project growth (CONTEXTD_SANDBOX_*).
    budget: SandboxBudget = SandboxBudget()
    # How long an unused placeholder of a missing protected path stays for the next call (0: not).
    placeholder_linger_s: float = 0.0


class ShellService:
    def __init__(
        self,
        settings: ShellSettings = ShellSettings(),
        policy_check: PolicyCheck | None = None,
        roots: ShellRoots = ShellRoots(),
    ) -> None:
        from contextd_mcp.sandbox import configure_budget

        self._settings = settings
        self.policy_check = policy_check
        self._roots = roots
        configure_budget(settings.budget)  # one budget per process: the last service configures it

    def status(self) -> dict[str, Any]:
        """The sandbox's budget and whether cgroups enforce it (sets them up on first call)."""
        from contextd_mcp.sandbox import budget_status

        return budget_status()

    def close(self) -> None:
        """At shutdown: remove the placeholders that linger for a next call."""
        from contextd_mcp.sandbox import release_placeholders

        release_placeholders()

    def _policies(self, scope: Scope, request: RunCommand, project_dir: Path) -> list[str]:
        if self.policy_check is None:
            return []
        context = {"kind": "bash", "project_dir": str(project_dir), "working_dir": request.working_dir or "", "env": request.env}
        verdict = self.policy_check(scope, request.command, context)
        critical = [v for v in verdict.violations if v.severity is Severity.critical]
        if critical:
            reasons = "; ".join(f"{v.title}: {v.reason}" for v in critical)
            raise Denied(f"policy forbids this command ({reasons})")
        return [f"{v.severity}: {v.title}: {v.reason}" for v in verdict.violations]

    async def run(self, scope: Scope, project_dir: str | None, request: RunCommand) -> BashResult:
        from contextd_mcp.sandbox import SandboxInputError, SandboxUnavailable, run_sandboxed
        from contextd_mcp.sandbox._budget import SandboxBusy

        refuse_dangerous_env(request.env)
        if not project_dir:
            raise Denied("bash runs only for local agents (stdio or the daemon socket), in their project directory")
        root = self._roots.check(Path(project_dir))
        working_dir = None
        if request.working_dir:
            working_dir = Path(request.working_dir)
            if not working_dir.is_absolute():
                working_dir = root / working_dir
        warnings = self._policies(scope, request, root)
        s = self._settings
        limits = dataclasses.replace(s.limits, timeout_seconds=float(request.timeout_seconds))
        try:
            result = await run_sandboxed(
                request.command, root, working_dir, request.env, limits, s.allow_unsandboxed, **self._sandbox_paths()
            )
        except SandboxInputError as exc:
            raise InvalidInput(exc.field, str(exc)) from exc
        except ValueError as exc:  # the limits or a protected path: the command cannot run as asked
            raise InvalidInput("command", str(exc)) from exc
        except SandboxBusy as exc:
            raise Unavailable(str(exc)) from exc
        except SandboxUnavailable as exc:
            raise Unavailable(f"the sandbox cannot run here: {exc}") from exc
        return BashResult(
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            duration_ms=round(result.duration_ms, 2),
            timed_out=result.timed_out,
            truncated=result.truncated,
            sandboxed=result.sandboxed,
            killed=result.killed,
            limits=AppliedLimits(
                timeout_seconds=request.timeout_seconds,
                max_output_bytes_per_stream=limits.max_output_bytes,
                memory_bytes=limits.memory_bytes,
                cpu_seconds=limits.cpu_seconds,
                max_processes=limits.max_processes,
                max_file_bytes=limits.max_file_bytes,
                max_open_files=limits.max_open_files,
                network="none" if result.sandboxed else "host (UNSANDBOXED)",
                **budget_limits(s.budget),
            ),
            policy_warnings=warnings,
        )

    def _sandbox_paths(self) -> dict[str, Any]:
        """What the sandbox hides, protects in addition, and where it journals placeholders."""
        r = self._roots
        return {
            "hidden": r.hidden,
            "protect": r.extra_protected,
            "state_dir": r.data_dir,
            "placeholder_linger_seconds": self._settings.placeholder_linger_s,
        }

def budget_limits(budget: SandboxBudget) -> dict[str, Any]:
    """The budget's part of AppliedLimits; `cgroup` says whether the kernel enforces it."""
    from contextd_mcp.sandbox import budget_status

    cgroup: Any = budget_status()["cgroup"]
    return {
        "call_memory_bytes": budget.call_memory_bytes,
        "call_max_tasks": budget.call_max_tasks,
        "call_cpus": budget.call_cpus,
        "total_memory_bytes": budget.total_memory_bytes,
        "max_concurrent_calls": budget.max_concurrent,
        "project_write_bytes": budget.project_write_bytes,
        "cgroup": cgroup["mode"] if cgroup["mode"] != "none" else f"none ({cgroup['reason']})",
    }
