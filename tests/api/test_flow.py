"""The whole lifecycle of API.md, through the app with its lifespan running."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.people import PIN, person


async def test_issue_reissue_pin_unlock_revoke_lookup(service: Service, bank: Bank) -> None:
    holder = person(1)

    issued = await bank.issue(holder)
    assert issued.status_code == 201, issued.text
    first = issued.json()
    assert first["status"] == "active" and first["replaces_id"] is None
    assert first["locked"] is False and first["issued_by_client"] == bank.client_id
    cert = x509.load_pem_x509_certificate(first["certificate_pem"].encode())
    assert format(cert.serial_number, "x") == first["serial"]
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == holder["name"]
    assert "1000001" not in cert.subject.rfc4514_string()  # no RRN in the subject
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 3 * 365

    got = await bank.get(f"/v1/certificates/{first['id']}")
    assert got.status_code == 200 and got.json()["serial"] == first["serial"]

    changed = await bank.post(f"/v1/certificates/{first['id']}/pin",
                              {"pin": PIN, "new_pin": "417093"})
    assert changed.status_code == 200, changed.text
    wrong_old = await bank.post(f"/v1/certificates/{first['id']}/pin",
                                {"pin": PIN, "new_pin": "520384"})
    assert wrong_old.status_code == 403 and wrong_old.json()["code"] == "pin_invalid"

    unlock_id = await bank.verified(holder["phone"], "unlock")
    unlocked = await bank.post(f"/v1/certificates/{first['id']}/unlock",
                               {"verification_id": unlock_id})
    assert unlocked.status_code == 200 and unlocked.json()["remaining_pin_attempts"] == 5

    service.clock.advance(timedelta(minutes=5))
    reissue_id = await bank.verified(holder["phone"], "reissue")
    reissued = await bank.post(f"/v1/certificates/{first['id']}/reissue",
                               {"verification_id": reissue_id, "pin": "583920"})
    assert reissued.status_code == 201, reissued.text
    second = reissued.json()
    assert second["replaces_id"] == first["id"] and second["serial"] != first["serial"]
    old = (await bank.get(f"/v1/certificates/{first['id']}")).json()
    assert old["status"] == "revoked" and old["revocation_reason"] == "superseded"
    new_key = x509.load_pem_x509_certificate(second["certificate_pem"].encode()).public_key()
    assert new_key != cert.public_key()

    revoked = await bank.post(f"/v1/certificates/{second['id']}/revoke",
                              {"pin": "583920", "reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "key_compromise"

    status = await service.http.get(f"/v1/status/{second['serial']}")
    assert status.json()["status"] == "revoked"
    assert status.json()["revocation_reason"] == "key_compromise"

    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"].replace("-", "")})
    assert found.status_code == 200
    assert found.json()["count"] == 2
    assert [c["id"] for c in found.json()["data"]] == [second["id"], first["id"]]


async def test_new_issuance_at_another_bank_supersedes(service: Service, bank: Bank) -> None:
    from tests.support.bank import make_bank

    other = await make_bank(service.http, service.container, "other-bank")
    holder = person(2)
    first = (await bank.issue(holder)).json()
    second = await other.issue(holder, pin="417093")
    assert second.status_code == 201
    assert second.json()["replaces_id"] == first["id"]
    assert second.json()["issued_by_client"] == other.client_id
    old = (await other.get(f"/v1/certificates/{first['id']}")).json()
    assert old["status"] == "revoked" and old["revocation_reason"] == "superseded"
    # Any bank may act on the person's certificate.
    revoked = await bank.post(f"/v1/certificates/{second.json()['id']}/revoke",
                              {"pin": "417093"})
    assert revoked.status_code == 200 and revoked.json()["revocation_reason"] == "unspecified"


async def test_revoke_by_verification_and_repeat(service: Service, bank: Bank) -> None:
    holder = person(3)
    cert = (await bank.issue(holder)).json()
    proof = await bank.verified(holder["phone"], "revoke")
    first = await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"verification_id": proof})
    assert first.status_code == 200 and first.json()["revocation_reason"] == "unspecified"
    service.clock.advance(timedelta(minutes=1))
    again = await bank.post(f"/v1/certificates/{cert['id']}/revoke", {"verification_id": proof})
    assert again.status_code == 200
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    upgraded = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                               {"pin": PIN, "reason": "key_compromise"})
    assert upgraded.json()["revocation_reason"] == "key_compromise"
    assert upgraded.json()["revoked_at"] == first.json()["revoked_at"]
    back = await bank.post(f"/v1/certificates/{cert['id']}/revoke",
                           {"pin": PIN, "reason": "unspecified"})
    assert back.json()["revocation_reason"] == "key_compromise"
