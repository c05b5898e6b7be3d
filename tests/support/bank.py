"""A bank front-end: an OAuth2 client with a token and the steps of the API flow, the one
"issue a certificate" client flow of the suite (and of bench/).

The same :class:`Bank` talks to the app in process (one ASGI client, :func:`make_bank`) or to
real ``certcloud serve`` processes over HTTP (one client per server, a load balancer:
:func:`remote_bank`). ``bank.on(i)`` is the same bank sending its calls to server ``i`` first;
in process every index is the one app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from cryptography import x509

from tests.support.people import PIN, person

if TYPE_CHECKING:
    from app.bootstrap import Container
    from tests.support.processes import Server


def issue_body(person: dict[str, str], verification_id: str, pin: str = PIN) -> dict[str, Any]:
    """The body of POST /v1/certificates for ``person`` after ``verification_id``."""
    return {"verification_id": verification_id, "person": person, "terms_accepted": True,
            "bank_checks": {"account_password_verified": True, "contact_confirmed": True},
            "pin": pin}


def first_code(messages: list[dict[str, Any]]) -> str | None:
    """The newest code among sandbox messages (the sandbox lists them newest first)."""
    return next((str(m["code"]) for m in messages if m.get("code") is not None), None)


class Problems:
    """Counts what came back, so the closing note can report it."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []

    def note(self, reply: httpx.Response) -> None:
        self.statuses[reply.status_code] = self.statuses.get(reply.status_code, 0) + 1
        if reply.status_code >= 500:
            self.errors.append(f"{reply.request.method} {reply.request.url.path}: "
                               f"{reply.status_code} {reply.text[:300]}")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@dataclass
class Bank:
    """A bank front-end: an OAuth2 client with a token, and the steps of the API flow."""

    clients: list[httpx.AsyncClient]
    client_id: str
    client_secret: str
    token: str = ""
    seen: Problems = field(default_factory=Problems)

    @property
    def http(self) -> httpx.AsyncClient:
        """The first server's client (in process: the app's)."""
        return self.clients[0]

    def at(self, index: int) -> httpx.AsyncClient:
        return self.clients[index % len(self.clients)]

    def on(self, index: int) -> Bank:
        """The same bank (token, counts) sending to server ``index`` first."""
        start = index % len(self.clients)
        return Bank(self.clients[start:] + self.clients[:start], self.client_id,
                    self.client_secret, self.token, self.seen)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> httpx.Response:
        reply = await self.http.post(path, json=body, headers={**self.headers, **(headers or {})},
                                     **kwargs)
        self.seen.note(reply)
        return reply

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **(kwargs.pop("headers", None) or {})}
        reply = await self.http.get(path, headers=headers, **kwargs)
        self.seen.note(reply)
        return reply

    async def refresh_token(self) -> None:
        """A new access token (tokens live 15 minutes of the service clock)."""
        reply = await self.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                     auth=(self.client_id, self.client_secret))
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["access_token"]

    async def start_verification(self, phone: str, purpose: str | None = "issue",
                                 channel: str = "sms") -> dict[str, Any]:
        body: dict[str, Any] = {"phone": phone, "channel": channel}
        if purpose is not None:
            body["purpose"] = purpose
        reply = await self.post("/v1/verifications", body)
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    async def sms_code(self, phone: str) -> str:
        """The newest code sent to the phone. The sandbox outbox lives in the memory of the
        process that sent the SMS (development only), so it is read where it was sent."""
        messages = (await self.http.get("/sandbox/messages", params={"phone": phone})).json()
        code = first_code(messages)
        assert code is not None, messages
        return code

    async def verified(self, phone: str, purpose: str | None = "issue") -> str:
        """A confirmed SMS verification, started on this server and confirmed on the next."""
        verification = await self.start_verification(phone, purpose)
        code = await self.sms_code(phone)
        reply = await self.on(1).post(f"/v1/verifications/{verification['id']}/confirm",
                                      {"code": code})
        assert reply.status_code == 200, reply.text
        return str(verification["id"])

    async def verified_many(self, phone: str, count: int, purpose: str = "issue") -> list[str]:
        """``count`` confirmed verifications of one phone. The sandbox can only tell the newest
        code of a phone, so they are made one after the other, alternating servers."""
        return [await self.on(i).verified(phone, purpose) for i in range(count)]

    async def issue(self, person: dict[str, str], pin: str = PIN,
                    verification_id: str | None = None) -> httpx.Response:
        if verification_id is None:
            verification_id = await self.verified(person["phone"])
        return await self.post("/v1/certificates", issue_body(person, verification_id, pin))

    async def issued(self, person: dict[str, str], pin: str = PIN) -> dict[str, Any]:
        """The Certificate resource of a certificate issued to ``person`` (asserts 201)."""
        reply = await self.issue(person, pin=pin)
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


@dataclass
class Holder:
    """A person with an issued certificate (the Certificate resource as issued)."""

    person: dict[str, str]
    certificate: dict[str, Any]
    pin: str = PIN

    @property
    def id(self) -> str:
        return str(self.certificate["id"])

    @property
    def x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate["certificate_pem"].encode())


async def issue_holder(bank: Bank, n: int, pin: str = PIN) -> Holder:
    """Person ``n`` with a certificate issued under ``pin``."""
    who = person(n)
    return Holder(who, await bank.issued(who, pin), pin)


async def refresh_token(bank: Bank) -> None:
    await bank.refresh_token()


async def make_bank(http: httpx.AsyncClient, container: Container, name: str = "bank",
                    scopes: list[str] | None = None) -> Bank:
    """A bank registered in the app in process, with a token."""
    created = await container.auth.create_client(name, scopes)
    bank = Bank([http], created.client_id, created.client_secret)
    await bank.refresh_token()
    return bank


async def remote_bank(servers: list[Server], data_dir: Path, database_url: str, name: str,
                      scopes: list[str] | None = None, timeout: float = 60.0) -> Bank:
    """A bank registered straight in the servers' shared database, with one client per
    server and a token."""
    from tests.support.processes import create_client

    client_id, secret = await create_client(data_dir, database_url, name, scopes)
    bank = Bank([httpx.AsyncClient(base_url=s.url, timeout=timeout) for s in servers],
                client_id, secret)
    await bank.refresh_token()
    return bank
