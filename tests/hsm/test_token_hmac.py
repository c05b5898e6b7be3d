"""HMAC keys in the token (issue 11, findings 6 and 7): the RRN lookup HMAC and the audit chain
are computed in SoftHSM2 with non-extractable keys; the imported RRN key gives the values the
environment's key gave, so existing persons are found without re-indexing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive
from sqlalchemy import update

from app.bootstrap import check_configuration, prepare_token_secrets
from app.cli import main
from app.main import create_app
from app.services import audit
from app.services.secrets import LocalChainKey, ServerSecrets, StartupError
from app.storage.audit_log import AuditLog
from app.storage.ops_tables import audit_events, audit_head
from app.storage.pkcs11 import TokenSession
from app.storage.token_hmac import TokenHmacKey, generate_hmac_key, import_hmac_key
from tests.conftest import FixedClock, make_bank, make_settings, person, truncate_all
from tests.production_config import production_fields, strong_secret

pytestmark = pytest.mark.hsm
RRN_KEY = strong_secret("rrn key to import")


async def test_an_imported_key_gives_the_file_keys_hmac_and_never_leaves(
        token: TokenSession) -> None:
    key = import_hmac_key(token, "rrn", RRN_KEY.encode())
    message = b"rrn:9001011000001"
    expected = hmac.new(RRN_KEY.encode(), message, hashlib.sha256).digest()
    assert key.digest(message) == expected
    assert await key.digests([message, b"x"]) == [
        expected, hmac.new(RRN_KEY.encode(), b"x", hashlib.sha256).digest()]
    assert key.matches(RRN_KEY.encode()) and not key.matches(b"another key" * 4)

    def read_value(ctx: Any) -> Any:
        obj = ctx.session.get_key(object_class=ObjectClass.SECRET_KEY, label="rrn")
        assert obj[Attribute.EXTRACTABLE] is False and obj[Attribute.SENSITIVE] is True
        try:
            return obj[Attribute.VALUE]
        except AttributeSensitive:
            return "refused"

    assert token.call(read_value) == "refused"
    with pytest.raises(ValueError, match="already on the token"):
        import_hmac_key(token, "rrn", RRN_KEY.encode())
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        import_hmac_key(token, "short", b"k" * 31)
    made = generate_hmac_key(token, "audit")
    assert len(made.digest(b"m")) == 32 and made.digest(b"m") != key.digest(b"m")


async def test_lookup_hmac_is_computed_in_the_token(token: TokenSession) -> None:
    import_hmac_key(token, "certcloud-rrn-hmac", RRN_KEY.encode())
    in_process = ServerSecrets(rrn_hmac_key=RRN_KEY.encode(), code_hmac_key=b"c" * 43,
                               token_keys=())
    in_token = ServerSecrets(rrn_hmac_key=b"", code_hmac_key=b"c" * 43, token_keys=(),
                             token_rrn_key=TokenHmacKey(token, "certcloud-rrn-hmac"))
    digits = "9001011000001"
    assert await in_token.rrn_lookup_hmac(digits) == in_process.rrn_hmac(digits)
    assert in_token.rrn_hmac(digits) == in_process.rrn_hmac(digits)
    # Legacy birth-date patterns were keyed with the RRN key: they still verify.
    assert in_token.birth_pattern_hmac("salt", "900101") == \
        in_process.birth_pattern_hmac("salt", "900101")


async def test_existing_persons_are_found_after_the_import(softhsm: Any, tmp_path: Path,
                                                           database_url: str) -> None:
    """A service that indexed persons with CERTCLOUD_RRN_HMAC_KEY; the key goes into the token
    (`certcloud keys init-token-hmac`), the variable is unset, and lookups find them."""
    label = softhsm.new_token()
    await truncate_all(database_url)
    data = tmp_path / "var"
    keys = softhsm.keys_settings(label)
    holder = person(7)

    async def lookup_after_issue(settings: Any, *, issue: bool) -> list[str]:
        app = create_app(settings, clock=FixedClock())
        async with app.router.lifespan_context(app):
            container = app.state.container
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://certcloud.test") as http:
                bank = await make_bank(http, container)
                if issue:
                    assert (await bank.issue(holder)).status_code == 201
                found = await bank.post("/v1/certificates/lookup", {"rrn": holder["rrn"]})
                assert found.status_code == 200, found.text
                return [c["id"] for c in found.json()["data"]]

    # The operator imports the key persons are indexed with; the service still has it set.
    env_key = make_settings(data, database_url, keys=keys, rrn_hmac_key=RRN_KEY)
    env = {"SOFTHSM2_CONF": str(softhsm.conf), "CERTCLOUD_KEYS__KIND": "pkcs11",
           "CERTCLOUD_KEYS__PKCS11_MODULE": softhsm.module, "CERTCLOUD_KEYS__TOKEN_LABEL": label,
           "CERTCLOUD_KEYS__PIN": keys["pin"], "CERTCLOUD_DATA_DIR": str(data),
           "CERTCLOUD_DATABASE_URL": database_url, "CERTCLOUD_RRN_HMAC_KEY": RRN_KEY}
    clean = {k: None for k in os.environ if k.startswith("CERTCLOUD_")}
    data.mkdir(parents=True)
    imported = CliRunner().invoke(main, ["keys", "init-token-hmac"], env={**clean, **env},
                                  catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    assert "HMAC key in the token: certcloud-rrn-hmac" in imported.stdout
    assert "HMAC key in the token: certcloud-audit-hmac" in imported.stdout
    again = CliRunner().invoke(main, ["keys", "init-token-hmac"], env={**clean, **env},
                               catch_exceptions=False)
    assert again.exit_code == 0 and "HMAC key in the token" not in again.stdout

    first = await lookup_after_issue(env_key, issue=True)
    assert len(first) == 1
    # After: CERTCLOUD_RRN_HMAC_KEY unset (the data directory's development key differs).
    token_only = make_settings(data, database_url, keys=keys)
    secrets_ = check_configuration(token_only)
    assert secrets_.token_rrn_key is not None and secrets_.rrn_hmac_key != RRN_KEY.encode()
    assert await lookup_after_issue(token_only, issue=False) == first

    with pytest.raises(StartupError, match="differs from the RRN key in the PKCS#11 token"):
        bad = make_settings(data, database_url, keys=keys,
                            rrn_hmac_key=strong_secret("another rrn key"))
        prepare_token_secrets(bad, check_configuration(bad), create_if_missing=False)


async def test_the_audit_chain_is_keyed_in_the_token(softhsm: Any, tmp_path: Path,
                                                     database_url: str) -> None:
    label = softhsm.new_token()
    await truncate_all(database_url)
    settings = make_settings(tmp_path / "var", database_url,
                             keys=softhsm.keys_settings(label))
    app = create_app(settings, clock=FixedClock())
    async with app.router.lifespan_context(app):
        container = app.state.container
        await container.auth.create_client("bank", None)
        keys = container.auth.secrets.audit_key
        assert keys.current.key_id == "pkcs11:certcloud-audit-hmac"
        async with container.db.transaction(write=False) as conn:
            events = await audit.page(conn, after=0, limit=100)
            report = await audit.verify_chain(AuditLog(conn), keys)
        assert events and {e.key_id for e in events} == {keys.current.key_id}
        assert report.intact, report.problems
        # The environment's audit key (development's) only verifies older rows: a chain
        # re-made with it is caught.
        env_key = keys.others[0]
        assert isinstance(env_key, LocalChainKey)
        async with container.db.transaction() as conn:
            previous = audit.GENESIS
            for event in events:
                message = audit.event_message(
                    env_key.key_id, previous, event.seq, event.occurred_at, event.client_id,
                    event.action, event.certificate_id, event.result,
                    json.dumps(event.details, sort_keys=True, separators=(",", ":")))
                digest = hmac.new(env_key.secret, message, hashlib.sha256).hexdigest()
                await conn.execute(update(audit_events).where(audit_events.c.seq == event.seq)
                                   .values(key_id=env_key.key_id, prev_hash=previous,
                                           hash=digest))
                previous = digest
            await conn.execute(update(audit_head).values(hash=previous))
        async with container.db.transaction(write=False) as conn:
            report = await audit.verify_chain(AuditLog(conn), keys)
        assert not report.intact
        assert any("older key" in problem for problem in report.problems)


def test_production_refuses_a_token_without_its_hmac_keys(softhsm: Any, tmp_path: Path
                                                          ) -> None:
    label = softhsm.new_token()
    fields = {**production_fields(), "rrn_hmac_key": None, "audit_hmac_key": None}
    settings = make_settings(tmp_path / "prod", "sqlite+aiosqlite:///:memory:",
                             keys=softhsm.keys_settings(label), **fields)
    secrets_ = check_configuration(settings)  # the token keys replace the two variables
    with pytest.raises(StartupError, match="no audit chain key labelled 'certcloud-audit-hmac'"):
        prepare_token_secrets(settings, secrets_, create_if_missing=False)
    token = TokenSession.shared(softhsm.module, label, softhsm.keys_settings(label)["pin"])
    generate_hmac_key(token, "certcloud-audit-hmac")
    with pytest.raises(StartupError, match="init-token-hmac"):
        prepare_token_secrets(settings, secrets_, create_if_missing=False)
    token.close()
