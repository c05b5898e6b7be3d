"""No PIN, OTP code, RRN, VID random R or private key in logs, replies or the database."""

from __future__ import annotations

import base64

import pytest

from app.pki.keys import private_key_to_der
from tests.support.app import Service, database_bytes, recording
from tests.support.bank import Bank
from tests.support.people import PIN, person


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


async def test_no_secret_anywhere(service: Service, bank: Bank,
                                  caplog: pytest.LogCaptureFixture) -> None:
    codes: list[str] = []
    with recording(service, caplog) as seen:
        holder = person(41)
        issued = await bank.issue(holder, pin=PIN)
        codes.append(await bank.sms_code(holder["phone"]))
        cert = issued.json()
        signed = await bank.post(f"/v1/certificates/{cert['id']}/signatures",
                                 {"pin": "902714", "data": "c2lnbg==", "format": "cms"})
        assert signed.status_code == 200 and "r_value" not in signed.json()
        await bank.post(f"/v1/certificates/{cert['id']}/pin", {"pin": "111111",
                                                               "new_pin": "583920"})
        await bank.post(f"/v1/certificates/{cert['id']}/pin", {"pin": PIN,
                                                               "new_pin": "583920"})
        unlock = await bank.verified(holder["phone"], "unlock")
        codes.append(await bank.sms_code(holder["phone"]))
        await bank.post(f"/v1/certificates/{cert['id']}/unlock", {"verification_id": unlock})
        await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
        await bank.post("/v1/certificates/lookup", {"rrn": "991332-1234567"})  # invalid
        await bank.post("/v1/certificates", {"person": {"rrn": holder["rrn"]}, "pin": "417093"})
        reissue = await bank.verified(holder["phone"], "reissue")
        codes.append(await bank.sms_code(holder["phone"]))
        new = (await bank.post(f"/v1/certificates/{cert['id']}/reissue",
                               {"verification_id": reissue, "pin": "417093"})).json()
        await bank.post(f"/v1/certificates/{new['id']}/revoke", {"pin": "417093"})
        _, key = await service.container.pin_gate.open_key(new["id"], "417093",
                                                               require_usable=False)
        binding = service.container.certificates.binding
        randoms = [await binding.random_of(cert["id"]), await binding.random_of(new["id"])]

    rrn = holder["rrn"]
    secrets = [PIN, "583920", "417093", rrn, rrn.replace("-", ""), *codes]
    logs = seen.logs()
    assert b"certificate issued" in logs  # the capture works
    database = await database_bytes(service)
    assert len(database) > 1000
    key_der = private_key_to_der(key)
    haystacks = {"logs": logs, "replies": b"\n".join(seen.replies), "database": database}
    for where, haystack in haystacks.items():
        for secret in secrets:
            for form in _forms(secret):
                assert form not in haystack, f"a secret ({len(secret)} chars) is in the {where}"
        assert key_der[-64:] not in haystack, f"private key bytes in the {where}"
        for random_r in randoms:  # each certificate's VID random R (issue 14)
            assert random_r is not None and len(random_r) == 20
            for form in (random_r, base64.b64encode(random_r), random_r.hex().encode()):
                assert form not in haystack, f"a VID random R is in the {where}"
        assert base64.b64encode(key_der)[100:164] not in haystack
