"""OAuth2 client credentials for bank front-ends: clients, tokens, scopes."""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jose import JWTError, jwt

from app.domain.errors import DomainError, InvalidInput, NotFound, RateLimited, Unauthenticated
from app.domain.ports import Clock, UnitOfWorkFactory
from app.services.client_secrets import ClientSecretHasher, Verdict, derive_key
from app.services.limits import Limit, RateLimiter
from app.services.secrets import ServerSecrets
from app.settings import LimitsSettings, OAuthSettings


class Scope(enum.StrEnum):
    ISSUE = "certificates:issue"
    READ = "certificates:read"
    REVOKE = "certificates:revoke"
    SIGN = "signatures:create"
    AUDIT = "audit:read"
    METRICS = "metrics:read"  # operators' scrapers; like audit:read, never a bank default
    IDENTITY_CHECK = "identity:check"  # relying parties: an RRN oracle, never a bank default


BANK_SCOPES = (Scope.ISSUE, Scope.READ, Scope.REVOKE, Scope.SIGN)
_ALGORITHM = "HS256"
_MAX_CLIENT_ID = 64  # clients.id; a longer one cannot exist
# NumericDate claims (RFC 7519 §2) are integers here, up to 9999-12-31T23:59:59Z.
_MAX_NUMERIC_DATE = 253402300799
log = logging.getLogger(__name__)


class OAuthError(Exception):
    """An RFC 6749 §5.2 error; the token endpoint keeps its own error shape."""

    def __init__(self, error: str, description: str, status: int = 400, *,
                 retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    client_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    scopes: list[str]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def parse_scopes(scopes: Sequence[str]) -> list[str]:
    known = {scope.value for scope in Scope}
    unknown = [scope for scope in scopes if scope not in known]
    if unknown:
        raise InvalidInput(f"unknown scope(s): {', '.join(unknown)}", code="scope_invalid")
    return list(dict.fromkeys(scopes))


def _numeric_date(claims: dict[str, Any], name: str) -> int:
    """:raises JWTError: the claim is missing or not a plain integer in range (a float such
    as Infinity or NaN, a string, a boolean)."""
    value = claims.get(name)
    if type(value) is not int or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise JWTError(f"bad {name}")
    return value


class AuthService:
    def __init__(self, uow: UnitOfWorkFactory, secrets_: ServerSecrets,
                 settings: OAuthSettings, clock: Clock, limiter: RateLimiter,
                 limits: LimitsSettings) -> None:
        self.uow, self.secrets, self.settings, self.clock = uow, secrets_, settings, clock
        self._keys = {key.kid: key.secret for key in secrets_.token_keys}
        self.hasher = ClientSecretHasher(derive_key(secrets_.code_hmac_key))
        self.limiter = limiter
        self.per_address = Limit("token_attempts_per_address",
                                 limits.token_attempts_per_address_per_minute, 60)
        self.failures_per_client = Limit("token_failures_per_client",
                                         limits.token_failures_per_client_per_minute, 60)
        # Legacy Argon2id hashes (until each is rewritten) are checked one at a time, so
        # wrong secrets for a client id not yet rewritten keep at most one run going.
        self._legacy_checks = asyncio.Semaphore(1)

    async def create_client(self, name: str, scopes: Sequence[str] | None = None) -> NewClient:
        granted = parse_scopes(scopes) if scopes else [scope.value for scope in BANK_SCOPES]
        client_id = f"cc_{uuid.uuid4().hex[:20]}"
        secret = secrets.token_urlsafe(32)
        secret_hash = self.hasher.hash(secret)
        async with self.uow() as uow:
            now = self.clock.now()
            await uow.records.add_client(client_id=client_id, name=name,
                                         secret_hash=secret_hash, scopes=granted, now=now)
            await uow.audit(now=now, action="client_create", client_id=client_id, name=name,
                            scopes=granted)
            await uow.commit()
        return NewClient(client_id, secret, granted)

    async def rotate_secret(self, client_id: str) -> str:
        """A new secret for the client, returned once; the old one stops working at once
        (tokens already issued run to their expiry)."""
        secret = secrets.token_urlsafe(32)
        secret_hash = self.hasher.hash(secret)
        async with self.uow() as uow:
            row = await uow.records.get_client(client_id)
            if row is None or not await uow.records.replace_client_secret_hash(
                    client_id, row.secret_hash, secret_hash):
                raise NotFound(f"no client {client_id!r}", code="client_not_found")
            await uow.audit(now=self.clock.now(), action="client_secret_rotate",
                            client_id=client_id)
            await uow.commit()
        return secret

    async def list_clients(self) -> list[dict[str, Any]]:
        async with self.uow(write=False) as uow:
            rows = await uow.records.list_clients()
        return [{"client_id": row.id, "name": row.name, "scopes": row.scopes.split(),
                 "disabled": row.disabled, "created_at": row.created_at.isoformat()}
                for row in rows]

    async def set_disabled(self, client_id: str, disabled: bool) -> None:
        async with self.uow() as uow:
            if not await uow.records.set_client_disabled(client_id, disabled):
                raise NotFound(f"no client {client_id!r}", code="client_not_found")
            await uow.audit(now=self.clock.now(),
                            action="client_disable" if disabled else "client_enable",
                            client_id=client_id)
            await uow.commit()

    async def issue_token(self, client_id: str, client_secret: str,
                          requested_scope: str | None, *, source: str) -> IssuedToken:
        """Client credentials from ``source`` (the caller's address).

        :raises OAuthError: 401 ``invalid_client``, 400 ``invalid_scope``, or 429 past a
            limit, which is counted before any secret is hashed.
        """
        now = self.clock.now()
        try:
            # A read first: a flood past the limit then costs no write at all.
            await self.limiter.check(self.per_address, source, now)
            await self.limiter.hit(self.per_address, source, now)
            if len(client_id) > _MAX_CLIENT_ID:
                raise OAuthError("invalid_client", "client authentication failed", 401)
            await self.limiter.check(self.failures_per_client, client_id, now)
        except RateLimited as exc:
            raise OAuthError("rate_limited", exc.detail, 429,
                             retry_after=int(exc.extra.get("retry_after", 1))) from None
        async with self.uow(write=False) as uow:
            row = await uow.records.get_client(client_id)
        stored = row.secret_hash if row is not None else None
        if stored is not None and self.hasher.is_legacy(stored):
            async with self._legacy_checks:
                verdict = await asyncio.to_thread(self.hasher.verify_legacy, stored,
                                                  client_secret)
        else:
            verdict = self.hasher.verify(stored, client_secret)
        if verdict is Verdict.INVALID or row is None or row.disabled:
            await self.limiter.hit(self.failures_per_client, client_id, now)
            raise OAuthError("invalid_client", "client authentication failed", 401)
        if verdict is Verdict.VALID_LEGACY:
            await self._rehash(row.id, stored or "", client_secret)
        granted = set(row.scopes.split())
        if requested_scope:
            requested = set(requested_scope.split())
            if not requested <= granted:
                raise OAuthError("invalid_scope", "the requested scope exceeds the client's")
            granted = requested
        issued_at = int(now.timestamp())
        kid, key = self.secrets.token_keys[0].kid, self.secrets.token_keys[0].secret
        scope = " ".join(sorted(granted))
        claims = {"iss": self.settings.issuer, "aud": self.settings.audience, "sub": client_id,
                  "scope": scope, "iat": issued_at, "nbf": issued_at,
                  "exp": issued_at + self.settings.token_ttl_seconds, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, key.decode(), algorithm=_ALGORITHM, headers={"kid": kid})
        return IssuedToken(token, self.settings.token_ttl_seconds, scope)

    async def _rehash(self, client_id: str, legacy_hash: str, client_secret: str) -> None:
        """A right secret under a legacy Argon2id hash: store the keyed hash instead. Best
        effort: if the write fails, the next success tries again."""
        try:
            async with self.uow() as uow:
                await uow.records.replace_client_secret_hash(
                    client_id, legacy_hash, self.hasher.hash(client_secret))
                await uow.commit()
        except DomainError as exc:
            log.warning("client secret hash not rewritten",
                        extra={"client_id": client_id, "problem_code": exc.code})
            return
        log.info("client secret hash rewritten to the keyed form",
                 extra={"client_id": client_id})

    async def authenticate(self, token: str) -> Principal:
        """:raises Unauthenticated: a token that is malformed, forged, expired, or whose client
        has been disabled since."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid")))
            if key is None or header.get("alg") != _ALGORITHM:
                raise JWTError("unknown key")
            claims = jwt.decode(token, key.decode(), algorithms=[_ALGORITHM],
                                audience=self.settings.audience, issuer=self.settings.issuer,
                                options={"verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
            # Time is checked against the service clock, not the library's.
            now = self.clock.now().timestamp()
            _numeric_date(claims, "iat")
            if not _numeric_date(claims, "nbf") <= now < _numeric_date(claims, "exp"):
                raise JWTError("expired")
        except (JWTError, KeyError, ValueError, TypeError):
            raise Unauthenticated("the access token is missing, invalid or expired",
                                  code="token_invalid") from None
        async with self.uow(write=False) as uow:
            row = await uow.records.get_client(str(claims["sub"]))
        if row is None or row.disabled:
            raise Unauthenticated("the client is disabled", code="client_disabled")
        return Principal(row.id, frozenset(str(claims.get("scope", "")).split()))
