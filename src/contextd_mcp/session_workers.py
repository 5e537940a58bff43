"""The background workers of the session lifecycle, run by the process that owns the store
(the daemon, or ``stdio --in-process``) through ``Container.workers``.

Each loop survives its own errors (logged, then retried after a pause): a worker that
raised would take the owner's task group, and so every transport, down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from contextd_mcp.services.distill import DistillRunner
from contextd_mcp.services.sessions import SessionService

log = logging.getLogger("contextd_mcp")
ERROR_PAUSE_S = 5.0
IDLE_WAIT_S = 1.0


def distill_worker(runner: DistillRunner) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        try:
            await anyio.to_thread.run_sync(runner.recover)
        except Exception:
            log.exception("could not requeue interrupted distillation jobs")
        while True:
            try:
                worked = await anyio.to_thread.run_sync(runner.run_once, abandon_on_cancel=True)
                if not worked:
                    await anyio.to_thread.run_sync(runner.wait, IDLE_WAIT_S, abandon_on_cancel=True)
            except Exception:
                log.exception("distillation worker error")
                await anyio.sleep(ERROR_PAUSE_S)

    return run


def session_sweeper(sessions: SessionService, interval_s: float) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                expired = await anyio.to_thread.run_sync(sessions.sweep, abandon_on_cancel=True)
                if expired:
                    log.info("expired %d idle session(s)", expired)
            except Exception:
                log.exception("session clean-up error")
            await anyio.sleep(interval_s)

    return run
