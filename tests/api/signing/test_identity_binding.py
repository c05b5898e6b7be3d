"""KISA identity binding (issue 14, items 2 and 3): the VID in each certificate, R for the
relying party (``include_r``), and POST /v1/identity/check. The VID is recomputed here from the
certificate, the RRN and ``r_value`` with asn1crypto and hashlib only, not with the service's
code."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from sqlalchemy import select

from app.domain.certificates import RENEWAL_WINDOW, VALIDITY
from app.storage.ops_tables import audit_events
from tests.support.app import START, Service, running, with_limits
from tests.support.bank import Bank, Holder, issue_holder, make_bank, refresh_token
from tests.support.signing import b64

DATA = b"identity binding"
CHECK = "/v1/identity/check"


def _vid_in(pem: str) -> tuple[str, str, bytes]:
    """(realName, hash algorithm OID, virtualID) read from the certificate's otherName."""
    der = base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
    certificate = asn1_x509.Certificate.load(der)
    names = [ext["extn_value"].parsed for ext in certificate["tbs_certificate"]["extensions"]
             if ext["extn_id"].native == "subject_alt_name"]
    assert len(names) == 1
    others = [name.chosen for name in names[0] if name.name == "other_name"]
    assert [other["type_id"].dotted for other in others] == ["1.2.410.200004.10.1.1"]
    identify = others[0]["value"].parse(core.Sequence)  # IdentifyData, inside [0] EXPLICIT
    real_name = core.UTF8String.load(identify[0].dump()).native
    user_infos = core.Sequence.load(identify[1].dump())
    info = core.Sequence.load(user_infos[0].dump())
    assert core.ObjectIdentifier.load(info[0].dump()).dotted == "1.2.410.200004.10.1.1.1"
    vid = core.Sequence.load(info[1].dump())
    algorithm = core.ObjectIdentifier.load(core.Sequence.load(vid[0].dump())[0].dump()).dotted
    return real_name, algorithm, core.OctetString.load(vid[1].dump()).native


def _virtual_id(rrn: str, random_r: bytes) -> bytes:
    idn = core.PrintableString(rrn.replace("-", "")).dump()
    random_num = b"\x03" + bytes([len(random_r) + 1]) + b"\x00" + random_r  # BIT STRING
    content = b"\x30" + bytes([len(idn) + len(random_num)]) + idn + random_num
    return hashlib.sha256(hashlib.sha256(content).digest()).digest()


async def _sign(bank: Bank, holder: Holder, **body: Any) -> Any:
    body.setdefault("pin", holder.pin)
    body.setdefault("data", b64(DATA))
    return await bank.post(f"/v1/certificates/{holder.id}/signatures", body)


async def test_the_vid_recomputes_from_rrn_and_r_value(bank: Bank, holder: Holder) -> None:
    reply = await _sign(bank, holder, include_r=True)
    assert reply.status_code == 200, reply.text
    random_r = base64.b64decode(reply.json()["r_value"], validate=True)
    assert len(random_r) == 20
    real_name, algorithm, virtual_id = _vid_in(holder.certificate["certificate_pem"])
    assert real_name == holder.person["name"]
    assert algorithm == "2.16.840.1.101.3.4.2.1"  # SHA-256
    assert virtual_id == _virtual_id(holder.person["rrn"], random_r)
    assert virtual_id != _virtual_id("900101-2000001", random_r)  # a wrong RRN
    plain = await _sign(bank, holder)  # without include_r: no r_value at all
    assert plain.status_code == 200 and "r_value" not in plain.json()
    assert "r_value" not in (await _sign(bank, holder, include_r=False)).json()
    refused = await _sign(bank, holder, include_r=True, pin="000000")
    assert refused.status_code == 403 and "r_value" not in refused.text


async def test_each_certificate_gets_its_own_r(service: Service, bank: Bank,
                                               holder: Holder) -> None:
    other = await issue_holder(bank, 2)
    first = (await _sign(bank, holder, include_r=True)).json()["r_value"]
    assert (await _sign(bank, other, include_r=True)).json()["r_value"] != first
    # A renewal (a signature in the last 30 days) binds the successor with a new R.
    service.clock.set(START + VALIDITY - RENEWAL_WINDOW + timedelta(days=1))
    await refresh_token(bank)
    renewed = await _sign(bank, holder, include_r=True)
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["renewed"] is not None
    random_r = base64.b64decode(body["r_value"])
    assert body["r_value"] != first
    _, _, virtual_id = _vid_in(body["renewed"]["certificate_pem"])
    assert virtual_id == _virtual_id(holder.person["rrn"], random_r)
    assert virtual_id != _vid_in(holder.certificate["certificate_pem"])[2]


async def test_a_reissue_gets_a_new_r(service: Service, bank: Bank, holder: Holder) -> None:
    first = (await _sign(bank, holder, include_r=True)).json()["r_value"]
    proof = await bank.verified(holder.person["phone"], "reissue")
    reissued = await bank.post(f"/v1/certificates/{holder.id}/reissue",
                               {"verification_id": proof, "pin": "417093"})
    assert reissued.status_code == 201, reissued.text
    new = Holder(holder.person, reissued.json(), "417093")
    second = (await _sign(bank, new, include_r=True)).json()["r_value"]
    assert second != first
    assert _vid_in(new.certificate["certificate_pem"])[2] == _virtual_id(
        holder.person["rrn"], base64.b64decode(second))


async def test_key_rotation_rewraps_r_and_the_rrn(service: Service, bank: Bank,
                                                   holder: Holder) -> None:
    """R and the RRN are master-key blobs like the certificate keys: a rotation moves them to
    the new key, and both still open (include_r, identity check, a reissue's new VID)."""
    from app.bootstrap import load_key_protector, wrapped_blobs
    from app.services.rotation import KeyRotation

    service.settings.keys.refresh_seconds = 0
    protector: Any = service.container.protector
    if hasattr(protector, "refresh_seconds"):
        protector.refresh_seconds = 0
    before = (await _sign(bank, holder, include_r=True)).json()["r_value"]
    operator = KeyRotation(wrapped_blobs(service.container.db),
                           load_key_protector(service.settings))
    new_key = await operator.rotate(START)
    report = await operator.rewrap(batch_size=1)
    assert report.moved >= 3 and not report.failed
    counts = (await operator.status()).counts
    assert counts["vid_randoms.wrapped"] == {new_key: 1}
    assert counts["person_rrns.wrapped"] == {new_key: 1}
    assert not [store for store in counts if "unregistered" in store]
    assert (await _sign(bank, holder, include_r=True)).json()["r_value"] == before
    agency = await _checker(service)
    checked = await agency.post(CHECK, {"serial": holder.certificate["serial"],
                                        "rrn": holder.person["rrn"]})
    assert checked.json() == {"match": True}
    proof = await bank.verified(holder.person["phone"], "reissue")
    reissued = await bank.post(f"/v1/certificates/{holder.id}/reissue",
                               {"verification_id": proof, "pin": "417093"})
    assert reissued.status_code == 201, reissued.text  # the RRN unwrapped under the new key
    new = Holder(holder.person, reissued.json(), "417093")
    random_r = base64.b64decode((await _sign(bank, new, include_r=True)).json()["r_value"])
    assert _vid_in(new.certificate["certificate_pem"])[2] == _virtual_id(
        holder.person["rrn"], random_r)


async def _checker(service: Service) -> Bank:
    return await make_bank(service.http, service.container, "agency",
                           scopes=["identity:check"])


async def test_identity_check_answers_and_is_audited(service: Service, bank: Bank,
                                                     holder: Holder) -> None:
    agency = await _checker(service)
    serial, pem = holder.certificate["serial"], holder.certificate["certificate_pem"]
    rrn = holder.person["rrn"]
    assert (await agency.post(CHECK, {"serial": serial, "rrn": rrn})).json() == {"match": True}
    assert (await agency.post(CHECK, {"certificate_pem": pem, "rrn": rrn.replace("-", "")})
            ).json() == {"match": True}
    wrong = await agency.post(CHECK, {"serial": serial, "rrn": "900101-2000001"})
    assert wrong.status_code == 200 and wrong.json() == {"match": False}
    async with service.container.db.transaction(write=False) as conn:
        rows = (await conn.execute(select(audit_events).where(
            audit_events.c.action == "identity_check"))).all()
    assert len(rows) == 3
    assert all(row.client_id == agency.client_id for row in rows)
    hmac_of_rrn = await service.container.identity_check.secrets.rrn_lookup_hmac(
        rrn.replace("-", ""))
    details = [str(row.details) for row in rows]
    assert sum(hmac_of_rrn in d for d in details) == 2
    assert not any(rrn.replace("-", "") in d for d in details)


async def test_identity_check_needs_its_own_scope_and_good_input(
        service: Service, bank: Bank, holder: Holder) -> None:
    body = {"serial": holder.certificate["serial"], "rrn": holder.person["rrn"]}
    refused = await bank.post(CHECK, body)  # a bank's default scopes do not include it
    assert refused.status_code == 403 and refused.json()["code"] == "scope_missing"
    assert "identity:check" not in (await service.container.auth.create_client("b")).scopes
    agency = await _checker(service)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"serial": holder.certificate["serial"], "rrn": "12345"}, 422, "rrn_invalid"),
        ({"rrn": holder.person["rrn"]}, 422, "certificate_required"),
        ({**body, "certificate_pem": holder.certificate["certificate_pem"]}, 422,
         "certificate_required"),
        ({"certificate_pem": "nope", "rrn": holder.person["rrn"]}, 422, "certificate_invalid"),
        ({"serial": "zz", "rrn": holder.person["rrn"]}, 422, "serial_invalid"),
        ({"serial": "abc", "rrn": holder.person["rrn"]}, 404, "certificate_not_found"),
    ]
    for case, status, code in cases:
        reply = await agency.post(CHECK, case)
        assert reply.status_code == status and reply.json()["code"] == code, reply.text


async def test_identity_check_is_limited_per_client(settings: Any, clock: Any) -> None:
    async with running(with_limits(settings, identity_checks_per_client_per_minute=2),
                       clock) as service:
        bank = await make_bank(service.http, service.container)
        holder = await issue_holder(bank, 3)
        agency = await _checker(service)
        body = {"serial": holder.certificate["serial"], "rrn": "900101-2000001"}
        for _ in range(2):
            assert (await agency.post(CHECK, body)).status_code == 200
        limited = await agency.post(CHECK, body)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited_identity_checks_per_client"
        other = await make_bank(service.http, service.container, "agency-2",
                                scopes=["identity:check"])
        assert (await other.post(CHECK, body)).status_code == 200  # per client


def test_cli_grants_the_scope(settings: Any) -> None:
    """``certcloud clients create --scope identity:check`` (the only way to get it)."""
    import os

    from click.testing import CliRunner

    from app.cli import main

    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CERTCLOUD_")}
    env = {**clean, "CERTCLOUD_DATABASE_URL": settings.resolved_database_url,
           "CERTCLOUD_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(main, ["clients", "create", "agency", "--scope",
                                       "identity:check"], env=env)
    assert result.exit_code == 0, result.output
    assert '"scopes": ["identity:check"]' in result.output
