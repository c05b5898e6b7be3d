"""No secret in logs, replies or the database, over the flows issue 6 adds to those of
tests/api/test_secrets.py: signing (raw, CMS, detached, batch), CSC (list by RRN, authorize,
signHash, a used SAD, a wrong PIN), wrong PINs up to the lockout and the unlock, a PIN change,
verification failures (wrong codes until the verification fails), revocation by PIN and by
verification, and Idempotency-Key replays, all with DEBUG logging on, through the JSON
formatter too.

Secrets looked for: every PIN (right and wrong), every OTP code sent, the RRNs (with and
without the dash), the private keys' bytes, the CSC SAD, the bank's client secret and its
access token. Replies may carry what the API hands out by design (a SAD to its bank, the token
to its client) and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
from typing import Any

import pytest
from sqlalchemy import select

from app.logs import JsonFormatter
from app.pki.keys import private_key_to_der
from app.storage.ops_tables import idempotency_keys
from tests.conftest import Bank, Service, database_bytes, person
from tests.resilience.conftest import report

PIN, NEW_PIN, OTHER_PIN = "583016", "740295", "316847"
WRONG_PINS = ["480213", "617350", "905172", "264039", "851406"]


def _found(secret: str, haystack: bytes) -> bool:
    """The secret as a token of its own (a 6-digit code inside a longer number, a hex string
    or a timestamp's microseconds is a coincidence, not a leak), or base64- or hex-encoded."""
    raw = re.escape(secret.encode())
    if re.search(rb"(?<![0-9A-Za-z.])" + raw + rb"(?![0-9A-Za-z])", haystack):
        return True
    return any(form in haystack for form in (base64.b64encode(secret.encode()),
                                             secret.encode().hex().encode()))


async def _flows(service: Service, bank: Bank, secrets: dict[str, list[str]],
                 keys: list[bytes]) -> None:
    holder, other = person(71), person(72)
    secrets["rrn"] += [holder["rrn"], holder["rrn"].replace("-", ""), other["rrn"],
                       other["rrn"].replace("-", "")]

    # Issue two certificates.
    issued = await bank.issue(holder, pin=PIN)
    assert issued.status_code == 201, issued.text
    cert = issued.json()
    second = await bank.issue(other, pin=OTHER_PIN)
    assert second.status_code == 201, second.text

    # A verification that fails: five wrong codes.
    started = await bank.start_verification(holder["phone"], "unlock")
    for wrong in ("000001", "000002", "000003", "000004", "000005"):
        await bank.post(f"/v1/verifications/{started['id']}/confirm", {"code": wrong})

    # Signing: raw, CMS attached and detached, a batch, with an Idempotency-Key replayed.
    sign = f"/v1/certificates/{cert['id']}/signatures"
    digest = base64.b64encode(hashlib.sha256(b"contract").digest()).decode()
    data = base64.b64encode("이체 확인서".encode()).decode()
    for n, body in enumerate((
            {"pin": PIN, "digest": digest, "format": "raw"},
            {"pin": PIN, "data": data, "format": "cms"},
            {"pin": PIN, "digest": digest, "format": "cms", "detached": True},
            {"pin": PIN, "items": [{"data": data}, {"digest": digest}], "format": "raw"})):
        idempotency = {"Idempotency-Key": f"leak-sign-{n}"}
        reply = await bank.post(sign, body, headers=idempotency)
        assert reply.status_code == 200, reply.text
        again = await bank.post(sign, body, headers=idempotency)
        assert again.status_code == 200 and again.content == reply.content
    # The stored record of an idempotent request must not be a PIN oracle: a plain hash of
    # a body whose only unknown is a 6-digit PIN is brute-forced in a second.
    raw = json.dumps({"pin": PIN, "digest": digest}).encode()
    key = "leak-sign-oracle"
    first = await bank.http.post(sign, content=raw, headers={
        **bank.headers, "Content-Type": "application/json", "Idempotency-Key": key})
    assert first.status_code == 200, first.text
    async with service.container.db.transaction(write=False) as conn:
        stored = (await conn.execute(select(idempotency_keys.c.request_hash).where(
            idempotency_keys.c.key == key))).scalar_one()
    plain = hashlib.sha256()
    for part in (b"POST", sign.encode(), b"", raw):
        plain.update(len(part).to_bytes(8, "big") + part)
    assert stored not in (plain.hexdigest(), hashlib.sha256(raw).hexdigest())
    await bank.post(sign, {"pin": WRONG_PINS[0], "digest": digest})
    await bank.post(sign, {"pin": PIN, "digest": digest})  # resets the count

    # CSC: the RRN as userID, a SAD (with an Idempotency-Key), signHash, reuse, a wrong PIN.
    listed = await bank.post("/csc/v1/credentials/list", {"userID": holder["rrn"]})
    assert listed.json()["credentialIDs"] == [cert["id"]]
    await bank.post("/csc/v1/credentials/info", {"credentialID": cert["id"],
                                                 "certificates": "chain", "certInfo": True})
    hashes = [digest]
    authorize = {"credentialID": cert["id"], "numSignatures": 1, "hash": hashes, "PIN": PIN}
    authorized = await bank.post("/csc/v1/credentials/authorize", authorize,
                                 headers={"Idempotency-Key": "leak-csc-authorize"})
    assert authorized.status_code == 200, authorized.text
    sad = authorized.json()["SAD"]
    secrets["sad"].append(sad)
    sign_hash = {"credentialID": cert["id"], "SAD": sad, "hash": hashes,
                 "signAlgo": "1.2.840.113549.1.1.11"}
    assert (await bank.post("/csc/v1/signatures/signHash", sign_hash)).status_code == 200
    assert (await bank.post("/csc/v1/signatures/signHash", sign_hash)).status_code == 400
    refused = await bank.post("/csc/v1/credentials/authorize",
                              {**authorize, "PIN": WRONG_PINS[1]})
    assert refused.json()["error"] == "invalid_pin"

    # A PIN change after a wrong try, then wrong PINs to the lockout, and the unlock.
    change = f"/v1/certificates/{cert['id']}/pin"
    await bank.post(change, {"pin": WRONG_PINS[2], "new_pin": NEW_PIN})
    changed = await bank.post(change, {"pin": PIN, "new_pin": NEW_PIN})
    assert changed.status_code == 200, changed.text
    for n in range(5):
        await bank.post(sign, {"pin": WRONG_PINS[(n + 3) % 5], "digest": digest})
    assert (await bank.post(sign, {"pin": NEW_PIN, "digest": digest})).status_code == 423
    unlock = await bank.verified(holder["phone"], "unlock")
    assert (await bank.post(f"/v1/certificates/{cert['id']}/unlock",
                            {"verification_id": unlock})).status_code == 200

    # Revocation: one by phone verification, one by PIN (and its harmless repeat).
    proof = await bank.verified(other["phone"], "revoke")
    assert (await bank.post(f"/v1/certificates/{second.json()['id']}/revoke",
                            {"verification_id": proof})).status_code == 200
    for _ in range(2):
        revoked = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                                  {"pin": NEW_PIN, "reason": "key_compromise"})
        assert revoked.status_code == 200, revoked.text

    # The sent codes, and the keys (opened the way the service opens them).
    for phone in (holder["phone"], other["phone"]):
        messages = (await bank.http.get("/sandbox/messages", params={"phone": phone})).json()
        secrets["otp"] += [str(m["code"]) for m in messages if m["code"] is not None]
    for certificate_id, pin in ((cert["id"], NEW_PIN), (second.json()["id"], OTHER_PIN)):
        _, private_key = await service.container.pin_gate.open_key(
            certificate_id, pin, require_usable=False)
        keys.append(private_key_to_der(private_key))


async def test_no_secret_in_logs_replies_or_database(service: Service, bank: Bank,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    replies: list[bytes] = []

    async def record(response: Any) -> None:
        if not str(response.request.url.path).startswith("/sandbox"):
            await response.aread()
            replies.append(response.content)

    service.http.event_hooks["response"].append(record)
    secrets: dict[str, list[str]] = {
        "pin": [PIN, NEW_PIN, OTHER_PIN, *WRONG_PINS], "otp": [], "rrn": [], "sad": [],
        "client": [bank.client_secret, bank.token]}
    keys: list[bytes] = []
    try:
        logging.getLogger("tests.leaks").debug("leak test: DEBUG is captured")
        await _flows(service, bank, secrets, keys)
    finally:
        root.removeHandler(handler)
        service.http.event_hooks["response"].remove(record)

    logs = (stream.getvalue() + caplog.text).encode()
    # The capture works, at DEBUG, through the JSON formatter too.
    assert b"certificate issued" in logs and b'"level": "debug"' in logs
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    database = await database_bytes(service)
    haystacks = {"logs": logs, "replies": b"\n".join(replies), "database": database}
    by_design = {("replies", "sad"), ("replies", "client")}
    leaks = []
    for where, haystack in haystacks.items():
        for kind, values in secrets.items():
            if (where, kind) in by_design:
                continue
            leaks += [f"{kind} in the {where}" for value in values if _found(value, haystack)]
        for der in keys:
            for piece in (der[-48:], der[len(der) // 2:len(der) // 2 + 48]):
                if piece in haystack or base64.b64encode(piece)[4:60] in haystack:
                    leaks.append(f"private key bytes in the {where}")
    report("leaks", log_bytes=len(logs), log_lines=logs.count(b"\n"), replies=len(replies),
           database_bytes=len(database), pins=len(secrets["pin"]), otp_codes=len(secrets["otp"]),
           rrns=len(secrets["rrn"]), sads=len(secrets["sad"]), private_keys=len(keys),
           leaks=sorted(set(leaks)))
    assert secrets["otp"] and secrets["sad"] and len(keys) == 2
    assert not leaks, sorted(set(leaks))
