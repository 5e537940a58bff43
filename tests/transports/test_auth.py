"""Tokens file, token verifier and the HTTP auth policy (the e2e side: tests/e2e/test_auth_http.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.requests import Request

from contextd_mcp.adapters.token_store import TokenStore, token_hash, tokens_path
from contextd_mcp.errors import Denied
from contextd_mcp.transports.auth import (
    READ_SCOPE,
    WRITE_SCOPE,
    AuthConfigError,
    StoreTokenVerifier,
    caller_from_token,
    check_http_auth,
)

pytestmark = pytest.mark.anyio


BUILDER_ID = "5f0c2a9e-1b7d-4c3e-9a8f-2d6b4e1c7a90"


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


def test_a_token_is_stored_as_its_hash_only_in_an_owner_only_file(store: TokenStore) -> None:
    token, entry = store.create("acme", team="core", name="ci")
    text = store.path.read_text()
    assert token.startswith("ctxd_") and len(token) == 5 + 43  # 32 random bytes, url-safe base64
    assert token not in text and token[5:] not in text
    assert json.loads(text)["tokens"][0]["hash"] == token_hash(token) == entry.hash
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert store.lookup(token) == entry
    assert store.lookup(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.lookup("Bearer " + token) is None


def test_tokens_created_or_revoked_elsewhere_apply_at_once(store: TokenStore) -> None:
    cli = TokenStore(store.path)  # another process: the CLI
    first, _ = cli.create("acme")
    assert store.lookup(first) is not None
    second, entry = cli.create("acme", name="second")
    assert store.lookup(second) is not None
    cli.revoke("second")
    assert store.lookup(second) is None and store.lookup(first) is not None
    with pytest.raises(KeyError):
        cli.revoke(entry.id)  # already revoked, by name
    assert [e.name for e in cli.entries()] == [None, "second"] and cli.active_count() == 1


def test_a_duplicate_active_name_is_refused(store: TokenStore) -> None:
    store.create("acme", name="ci")
    with pytest.raises(ValueError, match="already named"):
        store.create("acme", name="ci")


def test_a_corrupt_file_keeps_the_last_good_tokens(store: TokenStore) -> None:
    token, _ = store.create("acme")
    assert store.lookup(token) is not None
    store.path.write_text("{not json")
    assert store.lookup(token) is not None  # nobody locked out by a half-written edit
    store.path.unlink()
    assert store.lookup(token) is None  # the file is gone: nobody gets in


def test_tokens_file_location(tmp_path: Path) -> None:
    assert tokens_path(tmp_path, {}) == tmp_path / "tokens.json"
    assert tokens_path(tmp_path, {"CONTEXTD_TOKENS_FILE": "/etc/ctxd/t.json"}) == Path("/etc/ctxd/t.json")


async def test_the_verifier_returns_the_token_claims(store: TokenStore) -> None:
    writer, entry = store.create("acme", project="api", agent="builder", agent_id=BUILDER_ID, agent_owner="acme/*/*")
    reader, _ = store.create("acme", read_only=True)
    verifier = StoreTokenVerifier(store)
    access = await verifier.verify_token(writer)
    assert access is not None and access.client_id == f"contextd-token-{entry.id}"
    assert access.scopes == [READ_SCOPE, WRITE_SCOPE]
    assert access.claims == {"token_id": entry.id, "tenant": "acme", "team": None, "project": "api",
                             "agent": "builder", "agent_id": BUILDER_ID, "read_only": False}
    assert (await verifier.verify_token(reader)).scopes == [READ_SCOPE]  # type: ignore[union-attr]
    assert await verifier.verify_token("ctxd_" + "x" * 43) is None


def _request(user: object, path: str = "/mcp", headers: dict[str, str] | None = None, query: bytes = b"") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": path, "headers": raw, "query_string": query, "user": user})


async def test_the_caller_comes_from_the_verified_token(store: TokenStore) -> None:
    verifier = StoreTokenVerifier(store)
    pinned, _ = store.create("acme", team="core", project="api", read_only=True)
    user = AuthenticatedUser(await verifier.verify_token(pinned))  # type: ignore[arg-type]
    caller = caller_from_token(_request(user, headers={"X-Contextd-Project": "other", "Mcp-Session-Id": "s1"}))
    assert caller.scope.fields() == {"tenant": "acme", "team": "core", "project": "api"}
    assert (caller.read_only, caller.transport, caller.connection_id) == (True, "http", "s1")

    open_scope, _ = store.create("acme")
    user = AuthenticatedUser(await verifier.verify_token(open_scope))  # type: ignore[arg-type]
    caller = caller_from_token(_request(user, "/messages/", {"X-Contextd-Project": "web"}, b"session_id=abc123"))
    assert caller.scope.fields() == {"tenant": "acme", "team": "default", "project": "web"}
    assert caller.transport == "sse" and not caller.read_only and caller.connection_id == "abc123"
    with pytest.raises(Denied, match="x-contextd-project"):
        caller_from_token(_request(user, headers={"X-Contextd-Project": "../etc"}))
    with pytest.raises(Denied, match="no verified token"):
        caller_from_token(_request(None))


@pytest.mark.parametrize(
    ("host", "tokens", "allow", "hosts", "expected"),
    [
        ("127.0.0.1", 1, False, [], True),
        ("127.0.0.1", 0, True, [], False),
        ("::1", 3, True, [], False),  # opted in: open, tokens ignored
        ("10.1.2.3", 1, False, [], True),
        ("0.0.0.0", 1, False, ["box.lan:8765"], True),
    ],
)
def test_http_auth_policy_allows(host: str, tokens: int, allow: bool, hosts: list[str], expected: bool) -> None:
    assert check_http_auth(host, tokens, allow, hosts) is expected


@pytest.mark.parametrize(
    ("host", "tokens", "allow", "hosts", "message"),
    [
        ("127.0.0.1", 0, False, [], "--allow-unauthenticated-loopback"),
        ("10.1.2.3", 0, False, [], "non-loopback"),
        ("10.1.2.3", 5, True, [], "loopback only"),
        ("0.0.0.0", 1, False, [], "--allowed-host"),
    ],
)
def test_http_auth_policy_refuses(host: str, tokens: int, allow: bool, hosts: list[str], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        check_http_auth(host, tokens, allow, hosts)


def test_file_mode_survives_rewrites_under_a_permissive_umask(store: TokenStore) -> None:
    previous = os.umask(0o000)
    try:
        store.create("acme")
        store.create("globex")
    finally:
        os.umask(previous)
    assert (store.path.stat().st_mode & 0o777) == 0o600


async def test_a_token_stops_working_when_it_expires(store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    token, entry = store.create("acme", expires_in=3600)
    assert entry.expires_at == pytest.approx(time.time() + 3600, abs=5)
    verified = await StoreTokenVerifier(store).verify_token(token)
    assert verified is not None and verified.expires_at == int(entry.expires_at)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3601)
    assert store.lookup(token) is None and await StoreTokenVerifier(store).verify_token(token) is None
    assert store.active_count() == 0 and store.entries()[0].expired
    with pytest.raises(ValueError, match="positive"):
        store.create("acme", expires_in=0)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45m", 2700), ("12h", 43200), ("30d", 2592000)])
def test_expiry_durations_parse(text: str, seconds: float) -> None:
    from contextd_mcp.cli import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "5000d", "1w"])
def test_bad_expiry_durations_are_refused_by_name(text: str) -> None:
    from contextd_mcp.cli import parse_duration

    with pytest.raises(ValueError, match="--expires-in"):
        parse_duration(text)


async def test_a_token_carries_its_agent_by_id_whatever_project_the_client_names(store: TokenStore) -> None:
    token, _ = store.create("acme", agent="builder", agent_id=BUILDER_ID, agent_owner="acme/*/*")
    user = AuthenticatedUser(await StoreTokenVerifier(store).verify_token(token))  # type: ignore[arg-type]
    caller = caller_from_token(_request(user, headers={"X-Contextd-Project": "open"}))
    assert (caller.agent, caller.agent_id, caller.scope.project) == ("builder", BUILDER_ID, "open")
    with pytest.raises(ValueError, match="its name and its id"):
        store.create("acme", agent="builder")  # a name alone is never stored again


async def test_a_token_file_from_before_agent_ids_is_read_and_its_agent_token_refused(store: TokenStore) -> None:
    plain, _ = store.create("acme", name="plain")
    legacy_token = "ctxd_" + "L" * 43
    raw = json.loads(store.path.read_text())
    raw["tokens"].append({"id": "0123456789ab", "hash": token_hash(legacy_token), "tenant": "acme", "team": None,
                          "project": None, "agent": "reviewer", "read_only": False, "name": "old", "created_at": 1.0,
                          "revoked_at": None, "expires_at": None})
    store.path.write_text(json.dumps(raw))
    verifier = StoreTokenVerifier(store)
    assert (await verifier.verify_token(plain)) is not None  # the old file format still reads
    entry = store.lookup(legacy_token)
    assert entry is not None and entry.needs_agent_rebind and entry.agent_id is None
    user = AuthenticatedUser(await verifier.verify_token(legacy_token))  # type: ignore[arg-type]
    with pytest.raises(Denied, match="by name only.*token create --agent reviewer"):
        caller_from_token(_request(user, headers={"X-Contextd-Project": "open"}))
