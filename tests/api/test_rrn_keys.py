"""Issue 11, finding 7: the RRN key no longer gives the birth date (and so, in ~4 million more
HMACs, the RRN). Birth-date patterns are keyed with CERTCLOUD_PIN_PATTERN_KEY; rows written
before (keyed with the RRN key) still work and are re-keyed when the person's RRN comes by."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, timedelta

from sqlalchemy import select, update

from app.storage.tables import persons
from tests.support.app import Service
from tests.support.bank import Bank
from tests.support.people import PIN, person


def _dates(first: date = date(1900, 1, 1), last: date = date(2026, 12, 31)) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _search(stored: str, key: bytes, *, message: str) -> list[date]:
    """The attacker's search: every birth date's YYMMDD pattern under ``key``."""
    record = json.loads(stored)
    hashed, salt = set(record["h"]), record["salt"]
    return [born for born in _dates()
            if hmac.new(key, message.format(salt=salt, digits=f"{born:%y%m%d}").encode(),
                        hashlib.sha256).hexdigest() in hashed]


async def _stored_patterns(service: Service) -> str:
    async with service.container.db.transaction(write=False) as conn:
        return str((await conn.execute(select(persons.c.birth_patterns))).scalar_one())


async def test_the_rrn_key_no_longer_finds_the_birth_date(service: Service,
                                                          bank: Bank) -> None:
    assert (await bank.issue(person(3))).status_code == 201  # born 1990-01-03
    stored = await _stored_patterns(service)
    secrets_ = service.container.certificates.secrets
    assert json.loads(stored)["v"] == 2
    for message in ("pin-pattern:{salt}:{digits}", "pin-pattern:v2:{salt}:{digits}"):
        assert _search(stored, secrets_.rrn_hmac_key, message=message) == [], \
            "the RRN key alone recovers the birth date from the stored patterns"
    assert secrets_.pin_pattern_key and secrets_.pin_pattern_key != secrets_.rrn_hmac_key
    # The same search with the pattern key does find it: the search itself is sound.
    found = _search(stored, secrets_.pin_pattern_key, message="pin-pattern:v2:{salt}:{digits}")
    assert date(1990, 1, 3) in found


async def test_legacy_patterns_keep_working_and_are_rekeyed(service: Service,
                                                            bank: Bank) -> None:
    holder = person(4)  # born 1990-01-04
    cert = (await bank.issue(holder)).json()
    secrets_ = service.container.certificates.secrets
    salt = "00112233aabbccdd"  # as the code before wrote them: keyed with the RRN key
    legacy = json.dumps({"salt": salt, "h": sorted(
        secrets_.birth_pattern_hmac(salt, p) for p in ("900104", "010490", "040190", "0104"))})
    async with service.container.db.transaction() as conn:
        await conn.execute(update(persons).values(birth_patterns=legacy))

    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert found.status_code == 200 and [c["id"] for c in found.json()["data"]] == [cert["id"]]
    weak = await bank.post(f"/v1/certificates/{cert['id']}/pin",
                           {"pin": PIN, "new_pin": "900104"})
    assert weak.status_code == 422 and weak.json()["code"] == "pin_weak"

    again = await bank.issue(holder, pin="583920")  # the RRN comes by: patterns re-keyed
    assert again.status_code == 201, again.text
    stored = await _stored_patterns(service)
    assert json.loads(stored)["v"] == 2
    assert _search(stored, secrets_.rrn_hmac_key, message="pin-pattern:{salt}:{digits}") == []
    new_id = again.json()["id"]
    weak = await bank.post(f"/v1/certificates/{new_id}/pin",
                           {"pin": "583920", "new_pin": "010490"})
    assert weak.status_code == 422 and weak.json()["code"] == "pin_weak"
    found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
    assert new_id in [c["id"] for c in found.json()["data"]]
