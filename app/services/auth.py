"""OAuth2 client credentials for bank front-ends: clients, tokens, scopes."""

from __future__ import annotations

import asyncio
import enum
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jose import JWTError, jwt

from app.domain.errors import InvalidInput, NotFound, Unauthenticated
from app.domain.ports import Clock
from app.services import audit
from app.services.secrets import ServerSecrets
from app.settings import OAuthSettings
from app.storage.db import Database
from app.storage.repository import Repository


class Scope(enum.StrEnum):
    ISSUE = "certificates:issue"
    READ = "certificates:read"
    REVOKE = "certificates:revoke"
    SIGN = "signatures:create"
    AUDIT = "audit:read"
    METRICS = "metrics:read"  # operators' scrapers; like audit:read, never a bank default


BANK_SCOPES = (Scope.ISSUE, Scope.READ, Scope.REVOKE, Scope.SIGN)
_ALGORITHM = "HS256"
# Verified in place of a real hash when the client is unknown, so both paths cost the same.
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class OAuthError(Exception):
    """An RFC 6749 §5.2 error; the token endpoint keeps its own error shape."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


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


class AuthService:
    def __init__(self, db: Database, secrets_: ServerSecrets, settings: OAuthSettings,
                 clock: Clock) -> None:
        self.db, self.secrets, self.settings, self.clock = db, secrets_, settings, clock
        self._keys = {key.kid: key.secret for key in secrets_.token_keys}

    async def create_client(self, name: str, scopes: Sequence[str] | None = None) -> NewClient:
        granted = parse_scopes(scopes) if scopes else [scope.value for scope in BANK_SCOPES]
        client_id = f"cc_{uuid.uuid4().hex[:20]}"
        secret = secrets.token_urlsafe(32)
        secret_hash = await asyncio.to_thread(_hasher.hash, secret)
        async with self.db.transaction() as conn:
            now = self.clock.now()
            await Repository(conn).add_client(client_id=client_id, name=name,
                                              secret_hash=secret_hash, scopes=granted, now=now)
            await audit.append(conn, self.secrets.audit_key, now=now, action="client_create",
                               client_id=client_id, name=name, scopes=granted)
        return NewClient(client_id, secret, granted)

    async def list_clients(self) -> list[dict[str, Any]]:
        async with self.db.transaction(write=False) as conn:
            rows = await Repository(conn).list_clients()
        return [{"client_id": row.id, "name": row.name, "scopes": row.scopes.split(),
                 "disabled": row.disabled, "created_at": row.created_at.isoformat()}
                for row in rows]

    async def set_disabled(self, client_id: str, disabled: bool) -> None:
        async with self.db.transaction() as conn:
            if not await Repository(conn).set_client_disabled(client_id, disabled):
                raise NotFound(f"no client {client_id!r}", code="client_not_found")
            await audit.append(conn, self.secrets.audit_key, now=self.clock.now(),
                               action="client_disable" if disabled else "client_enable",
                               client_id=client_id)

    async def issue_token(self, client_id: str, client_secret: str,
                          requested_scope: str | None) -> IssuedToken:
        async with self.db.transaction(write=False) as conn:
            row = await Repository(conn).get_client(client_id)
        stored_hash = row.secret_hash if row is not None else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored_hash, client_secret)
            valid = row is not None and not row.disabled
        except (VerificationError, InvalidHashError):
            valid = False
        if not valid or row is None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        granted = set(row.scopes.split())
        if requested_scope:
            requested = set(requested_scope.split())
            if not requested <= granted:
                raise OAuthError("invalid_scope", "the requested scope exceeds the client's")
            granted = requested
        now = int(self.clock.now().timestamp())
        kid, key = self.secrets.token_keys[0].kid, self.secrets.token_keys[0].secret
        scope = " ".join(sorted(granted))
        claims = {"iss": self.settings.issuer, "aud": self.settings.audience, "sub": client_id,
                  "scope": scope, "iat": now, "nbf": now,
                  "exp": now + self.settings.token_ttl_seconds, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, key.decode(), algorithm=_ALGORITHM, headers={"kid": kid})
        return IssuedToken(token, self.settings.token_ttl_seconds, scope)

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
            if not int(claims["nbf"]) <= now < int(claims["exp"]):
                raise JWTError("expired")
        except (JWTError, KeyError, ValueError, TypeError):
            raise Unauthenticated("the access token is missing, invalid or expired",
                                  code="token_invalid") from None
        async with self.db.transaction(write=False) as conn:
            row = await Repository(conn).get_client(str(claims["sub"]))
        if row is None or row.disabled:
            raise Unauthenticated("the client is disabled", code="client_disabled")
        return Principal(row.id, frozenset(str(claims.get("scope", "")).split()))
