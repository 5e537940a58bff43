"""CheckpointService: save, list newest first, resume at three levels with real token counts."""

from __future__ import annotations

import pytest

from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import Container
from contextd_mcp.errors import NotFound
from contextd_mcp.models.checkpoint import ListCheckpoints, ResumeCheckpoint, SaveCheckpoint
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.checkpoints import CheckpointService

SCOPE = Scope(tenant="acme", team="core", project="api")
COUNTER = WordPieceTokenCounter()


def service(container: Container, clock: list[float] | None = None, max_tokens: int = 4000) -> CheckpointService:
    now = (lambda: clock[0]) if clock else __import__("time").time
    backing = Backing.of(Stores(container.store), container.embedder, container.scrubber, now)
    return CheckpointService(backing, container.embedder, COUNTER, max_tokens)


def test_levels_return_more_and_count_what_they_return(container: Container) -> None:
    checkpoints = service(container)
    saved = checkpoints.save(SCOPE, SaveCheckpoint(
        summary="Upload fix done; mypy stubs next.",
        context="Decided: ChecksumAlgorithm=SHA256. Open: boto3-stubs.",
        full_state="Files: storage.py, test_upload.py. Log: 3 passed.",
        tags=["s3"],
    ), session_id="s-1")
    expected = {
        "summary": COUNTER.count("Upload fix done; mypy stubs next."),
        "context": COUNTER.count("Upload fix done; mypy stubs next.")
        + COUNTER.count("Decided: ChecksumAlgorithm=SHA256. Open: boto3-stubs."),
    }
    assert saved.tokens.summary == expected["summary"] and saved.tokens.context == expected["context"]
    summary = checkpoints.resume(SCOPE, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id, level="summary"))
    assert summary.context is None and summary.full_state is None
    assert summary.tokens == saved.tokens.summary
    context = checkpoints.resume(SCOPE, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id, level="context"))
    assert context.context and context.full_state is None and context.tokens == saved.tokens.context
    full = checkpoints.resume(SCOPE, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id, level="full"))
    assert full.full_state and full.tokens == saved.tokens.full and not full.truncated
    assert full.session_id == "s-1" and full.tags == ["s3"]


def test_list_is_newest_first_and_filters_by_session(container: Container) -> None:
    clock = [1000.0]
    checkpoints = service(container, clock)
    ids = []
    for n in range(4):
        clock[0] += 10
        ids.append(checkpoints.save(SCOPE, SaveCheckpoint(summary=f"step {n}"), session_id="a" if n % 2 else "b")
                   .checkpoint_id)
    listed = checkpoints.list(SCOPE, ListCheckpoints())
    assert [c.id for c in listed.checkpoints] == ids[::-1]
    assert [c.summary for c in checkpoints.list(SCOPE, ListCheckpoints(limit=1, session_id="a")).checkpoints] == ["step 3"]
    assert checkpoints.latest(SCOPE).id == ids[-1]


def test_a_full_state_over_the_response_cap_is_cut_at_a_word_and_says_so(container: Container) -> None:
    checkpoints = service(container, max_tokens=1000)
    saved = checkpoints.save(SCOPE, SaveCheckpoint(summary="big", full_state="alpha beta gamma delta " * 2500))
    assert saved.tokens.full > 5000
    full = checkpoints.resume(SCOPE, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id, level="full"))
    assert full.truncated and full.full_state.endswith("…[truncated]")
    assert full.full_state[: -len(" …[truncated]")].split()[-1] in {"alpha", "beta", "gamma", "delta"}
    assert full.tokens == COUNTER.count("big") + COUNTER.count(full.full_state) <= 1000


def test_foreign_ids_are_not_found_and_secrets_are_scrubbed(container: Container) -> None:
    checkpoints = service(container)
    secret = "ghp_4f9XkQ2mZ8rT1vB7nL3wY6pC0sD5hJ9aE2uK"
    saved = checkpoints.save(SCOPE, SaveCheckpoint(summary="Pushed", context=f"token {secret}"))
    resumed = checkpoints.resume(SCOPE, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id, level="context"))
    assert secret not in resumed.context and "[REDACTED:github-token]" in resumed.context
    for scope in (Scope(tenant="other", team="core", project="api"), Scope(tenant="acme", team="core", project="web")):
        with pytest.raises(NotFound):
            checkpoints.resume(scope, ResumeCheckpoint(checkpoint_id=saved.checkpoint_id))
        assert checkpoints.list(scope, ListCheckpoints()).checkpoints == []
