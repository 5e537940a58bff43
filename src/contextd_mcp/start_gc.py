"""The cyclic garbage collector held off while the daemon starts (issue 19).

A start allocates ~190k container objects (the MCP SDK's and our pydantic models, the tools'
schemas) and frees almost none: every collection the collector runs meanwhile (≈ 240 of them)
walks a growing heap to find next to nothing (≈ 4,700 objects of cyclic garbage in all).
``pause`` turns it off before the imports; ``settle``, once the daemon answers, moves everything
made so far (modules, classes, the container) to the permanent generation, which later
collections skip, and turns it back on. The start's little garbage stays, frozen with the rest.
"""

from __future__ import annotations

import gc

_paused = [False]


def pause() -> None:
    """The collector off, until ``settle``; for a process that starts a daemon and lives on."""
    if gc.isenabled():
        gc.disable()
        _paused[0] = True


def settle() -> None:
    """After the start: what it made frozen, the collector on again. Nothing if ``pause`` did
    not turn it off (a daemon run in a test's process, or with the collector off by choice)."""
    if _paused[0]:
        _paused[0] = False
        gc.freeze()
        gc.enable()
