"""POST /oauth2/token under attack (issue 11, finding 2): attempts are limited per source
address and failures per client id before any secret is hashed; secrets are stored as a
keyed hash (legacy Argon2id rows still work and are rewritten); an unknown client id costs
the same one keyed hash as a known one, never Argon2id."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import insert, select

from app.main import create_app
from app.services import client_secrets
from app.services.client_secrets import ClientSecretHasher, Verdict, derive_key
from app.settings import LimitsSettings, Settings
from app.storage.tables import clients
from tests.support.app import START, FixedClock, Service, database_bytes, redis_url_or_skip

TOKEN = "/oauth2/token"
GRANT = {"grant_type": "client_credentials"}
PER_ADDRESS, FAILURES_PER_CLIENT = 5, 8


@pytest.fixture(params=["database", "redis"])
async def limited(request: pytest.FixtureRequest, settings: Settings,
                  clock: FixedClock) -> AsyncIterator[Service]:
    """Low token limits (one address alone cannot reach the per-client one), with the
    counters in the database or in Redis."""
    store: dict[str, object] = {}
    if request.param == "redis":
        store = {"redis_url": redis_url_or_skip(),
                 "redis_key_prefix": f"certcloud-test:{uuid.uuid4().hex}:"}
    strict = settings.model_copy(update={"limits": settings.limits.model_copy(update={
        "token_attempts_per_address_per_minute": PER_ADDRESS,
        "token_failures_per_client_per_minute": FAILURES_PER_CLIENT, **store})})
    app = create_app(strict, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certcloud.test") as http:
            yield Service(app, http, app.state.container, clock, strict)


def from_address(service: Service, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=service.app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://certcloud.test")


async def token(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(TOKEN, data=GRANT, auth=(client_id, secret))


class HashSpy:
    """Counts the secret checks the service makes (keyed and legacy Argon2id)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hasher: ClientSecretHasher) -> None:
        self.keyed: list[str | None] = []
        self.argon2 = 0
        keyed, legacy = hasher.verify, client_secrets._legacy
        spy = self

        def count_keyed(stored: str | None, secret: str) -> Verdict:
            self.keyed.append(stored)
            return keyed(stored, secret)

        class CountingArgon2:
            def verify(self, *args: Any, **kwargs: Any) -> Any:
                spy.argon2 += 1
                return legacy.verify(*args, **kwargs)

        monkeypatch.setattr(hasher, "verify", count_keyed)
        monkeypatch.setattr(client_secrets, "_legacy", CountingArgon2())

    @property
    def total(self) -> int:
        return len(self.keyed) + self.argon2


def assert_rate_limited(reply: httpx.Response) -> None:
    """RFC 6749 §5.2 shape (not problem+json), 429, Retry-After within the window."""
    assert reply.status_code == 429, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == "rate_limited" and set(body) <= {"error", "error_description"}
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    assert reply.headers["cache-control"] == "no-store"


async def test_failures_per_client_id_are_limited_before_hashing(
        limited: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await limited.container.auth.create_client("bank")
    spy = HashSpy(monkeypatch, limited.container.auth.hasher)
    async with from_address(limited, "198.51.100.1") as one, \
            from_address(limited, "198.51.100.2") as two, \
            from_address(limited, "203.0.113.9") as bank_address:
        for n in range(FAILURES_PER_CLIENT):
            reply = await token(one if n < PER_ADDRESS else two, created.client_id, "wrong")
            assert reply.status_code == 401, reply.text
        assert spy.total == FAILURES_PER_CLIENT
        # Past the limit even the right secret waits, and nothing is hashed for it.
        refused = await token(bank_address, created.client_id, created.client_secret)
        assert_rate_limited(refused)
        assert spy.total == FAILURES_PER_CLIENT
        limited.clock.advance(timedelta(seconds=60))
        assert (await token(bank_address, created.client_id, created.client_secret)
                ).status_code == 200


async def test_attempts_per_address_are_limited_before_hashing(
        limited: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await limited.container.auth.create_client("bank")
    spy = HashSpy(monkeypatch, limited.container.auth.hasher)
    async with from_address(limited, "198.51.100.7") as flood, \
            from_address(limited, "203.0.113.9") as bank_address:
        for _ in range(PER_ADDRESS):
            reply = await token(flood, f"cc_{uuid.uuid4().hex[:20]}", "made-up")
            assert reply.status_code == 401, reply.text
        hashed = spy.total
        assert_rate_limited(await token(flood, f"cc_{uuid.uuid4().hex[:20]}", "made-up"))
        # A real client's right secret from the flooding address waits too, unhashed...
        assert_rate_limited(await token(flood, created.client_id, created.client_secret))
        assert spy.total == hashed
        # ...while the bank's own address is not held up by the flood.
        assert (await token(bank_address, created.client_id, created.client_secret)
                ).status_code == 200
    limited.clock.advance(timedelta(seconds=60))
    async with from_address(limited, "198.51.100.7") as flood:
        assert (await token(flood, created.client_id, created.client_secret)).status_code == 200


async def test_one_address_cannot_lock_a_bank_out(limited: Service) -> None:
    """Someone else's wrong secrets from one address use up that address, not the bank."""
    created = await limited.container.auth.create_client("bank")
    async with from_address(limited, "198.51.100.7") as attacker, \
            from_address(limited, "203.0.113.9") as bank_address:
        statuses = [(await token(attacker, created.client_id, "wrong")).status_code
                    for _ in range(PER_ADDRESS + 3)]
        assert statuses == [401] * PER_ADDRESS + [429] * 3
        for _ in range(3):  # the bank's own successes never count as failures
            assert (await token(bank_address, created.client_id, created.client_secret)
                    ).status_code == 200


def test_default_limits_need_several_addresses_to_lock_a_bank_out() -> None:
    defaults = LimitsSettings()
    assert (defaults.token_failures_per_client_per_minute
            >= 2 * defaults.token_attempts_per_address_per_minute)


async def test_limits_do_not_apply_to_requests_that_hash_nothing(limited: Service) -> None:
    """A body without credentials is refused before the limiter (it costs nothing)."""
    async with from_address(limited, "198.51.100.7") as http:
        for _ in range(PER_ADDRESS + 2):
            reply = await http.post(TOKEN, data=GRANT)
            assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"


async def test_over_long_client_id_is_refused_unhashed(
        limited: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = HashSpy(monkeypatch, limited.container.auth.hasher)
    reply = await token(limited.http, "c" * 5000, "made-up")
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"
    assert spy.total == 0


async def test_unknown_client_costs_one_keyed_hash_and_no_argon2(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await service.container.auth.create_client("bank")
    spy = HashSpy(monkeypatch, service.container.auth.hasher)
    unknown = await token(service.http, "cc_00000000000000000000", created.client_secret)
    assert spy.keyed == [None] and spy.argon2 == 0
    wrong = await token(service.http, created.client_id, created.client_secret + "x")
    assert len(spy.keyed) == 2 and spy.keyed[1] is not None and spy.argon2 == 0
    assert (await token(service.http, created.client_id, created.client_secret)
            ).status_code == 200
    assert len(spy.keyed) == 3 and spy.argon2 == 0
    # Nothing in the reply tells an unknown id from a wrong secret.
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.headers["www-authenticate"] == wrong.headers["www-authenticate"]


async def _secret_hash(service: Service, client_id: str) -> str:
    async with service.container.db.transaction(write=False) as conn:
        return str((await conn.execute(select(clients.c.secret_hash)
                                       .where(clients.c.id == client_id))).scalar_one())


async def test_legacy_argon2_hash_is_rewritten_on_first_success(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = base64.urlsafe_b64encode(b"\x07" * 32).decode().rstrip("=")
    legacy = PasswordHasher().hash(secret)
    async with service.container.db.transaction() as conn:
        await conn.execute(insert(clients).values(
            id="cc_legacy", name="old bank", secret_hash=legacy,
            scopes="certificates:read", disabled=False, created_at=START))
    spy = HashSpy(monkeypatch, service.container.auth.hasher)
    assert (await token(service.http, "cc_legacy", secret + "x")).status_code == 401
    assert await _secret_hash(service, "cc_legacy") == legacy  # a failure rewrites nothing
    assert spy.argon2 == 1

    first = await token(service.http, "cc_legacy", secret)
    assert first.status_code == 200, first.text
    rewritten = await _secret_hash(service, "cc_legacy")
    assert rewritten.startswith("hmac-sha256$") and rewritten != legacy
    assert service.container.auth.hasher.verify(rewritten, secret) is Verdict.VALID
    assert spy.argon2 == 2

    assert (await token(service.http, "cc_legacy", secret)).status_code == 200
    assert (await token(service.http, "cc_legacy", secret + "x")).status_code == 401
    assert spy.argon2 == 2  # from now on the keyed hash only


async def test_new_clients_are_stored_as_a_keyed_hash(service: Service) -> None:
    created = await service.container.auth.create_client("bank")
    stored = await _secret_hash(service, created.client_id)
    scheme, key_id, digest = stored.split("$")
    assert scheme == "hmac-sha256" and key_id == service.container.auth.hasher.key_id
    assert len(digest) == 64
    assert len(base64.urlsafe_b64decode(created.client_secret + "=")) == 32  # 256 bits


async def test_stored_secret_hash_needs_the_server_key(service: Service) -> None:
    """The attack: with the database, test a client secret. The stored value holds neither
    the secret nor an unkeyed hash of it, nor an HMAC under a server secret as it is, and
    only the server's derived key checks it; the secret itself is 256 random bits."""
    created = await service.container.auth.create_client("bank")
    secret = created.client_secret.encode()
    dump = await database_bytes(service)
    server = service.container.auth.secrets
    candidates = [secret, hashlib.sha256(secret).hexdigest().encode(),
                  hashlib.sha256(secret).digest()]
    for raw_key in (server.code_hmac_key, server.rrn_hmac_key,
                    *(key.secret for key in server.token_keys)):
        candidates.append(hmac.new(raw_key, secret, hashlib.sha256).hexdigest().encode())
    for candidate in candidates:
        assert candidate not in dump
    stored = await _secret_hash(service, created.client_id)
    assert service.container.auth.hasher.verify(stored, created.client_secret) is Verdict.VALID
    other = ClientSecretHasher(derive_key(b"another-code-hmac-key-of-32-bytes!!"))
    assert other.verify(stored, created.client_secret) is Verdict.INVALID


def test_a_hash_under_another_key_or_scheme_never_verifies() -> None:
    hasher = ClientSecretHasher(derive_key(b"k" * 32))
    stored = hasher.hash("secret")
    scheme, key_id, digest = stored.split("$")
    forged: list[Callable[[], str]] = [
        lambda: f"{scheme}$0000000000000000${digest}", lambda: f"sha256${key_id}${digest}",
        lambda: f"{scheme}${key_id}$", lambda: "", lambda: "$argon2id$garbage"]
    for make in forged:
        value = make()
        verdict = (hasher.verify_legacy(value, "secret") if hasher.is_legacy(value)
                   else hasher.verify(value, "secret"))
        assert verdict is Verdict.INVALID, value
    assert hasher.verify(stored, "secret") is Verdict.VALID
    assert hasher.verify(stored, "secreT") is Verdict.INVALID
    assert hasher.verify(None, "secret") is Verdict.INVALID


async def test_cli_clients_create_stores_the_keyed_form(service: Service) -> None:
    from click.testing import CliRunner

    from app.cli import main

    env = {key: None for key in os.environ if key.startswith("CERTCLOUD_")}
    env.update(CERTCLOUD_DATA_DIR=str(service.settings.data_dir),
               CERTCLOUD_DATABASE_URL=service.settings.resolved_database_url)
    result = await asyncio.to_thread(CliRunner().invoke, main, ["clients", "create", "cli-bank"],
                                     env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    created = json.loads(result.output.strip().splitlines()[-1])
    stored = await _secret_hash(service, created["client_id"])
    assert stored.startswith(f"hmac-sha256${service.container.auth.hasher.key_id}$")
    assert (await token(service.http, created["client_id"], created["client_secret"])
            ).status_code == 200
