"""`certcloud audit checkpoint` and `certcloud audit verify --checkpoint` as an operator runs
them (issue 11, finding 6): a checkpoint kept elsewhere catches a rewrite of the chain that
the chain alone cannot, and a checkpoint with a bad signature is refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import delete, select, update

from app.cli import main
from app.services import audit
from app.services.secrets import env_audit_key_id
from app.storage.db import Database, make_engine
from app.storage.ops_tables import audit_events, audit_head


def run(env: dict[str, str], *args: str) -> Any:
    clean = {k: None for k in os.environ if k.startswith("CERTCLOUD_")}
    return CliRunner().invoke(main, list(args), env={**clean, **env}, catch_exceptions=False)


def rewrite_without_first_row(url: str, key: bytes) -> None:
    """The chain again without its first row, every hash recomputed with the chain's own key
    (an attacker holding every server secret)."""
    async def go() -> None:
        db = Database(make_engine(url))
        key_id = env_audit_key_id(key)
        async with db.transaction() as conn:
            await conn.execute(delete(audit_events).where(audit_events.c.seq == 1))
            rows = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
            previous = audit.GENESIS
            for seq, row in enumerate(rows, start=1):
                message = audit.event_message(key_id, previous, seq, row.occurred_at,
                                              row.client_id, row.action, row.certificate_id,
                                              row.result, row.details)
                digest = hmac.new(key, message, hashlib.sha256).hexdigest()
                await conn.execute(update(audit_events).where(audit_events.c.seq == row.seq)
                                   .values(seq=seq, prev_hash=previous, hash=digest))
                previous = digest
            await conn.execute(update(audit_head).values(seq=len(rows), hash=previous))
        await db.dispose()

    asyncio.run(go())


def test_checkpoint_export_and_verify(tmp_path: Path) -> None:
    data = tmp_path / "var"
    url = f"sqlite+aiosqlite:///{data / 'certcloud.db'}"
    env = {"CERTCLOUD_DATA_DIR": str(data), "CERTCLOUD_DATABASE_URL": url}
    assert run(env, "db", "upgrade").exit_code == 0
    assert run(env, "ca", "init").exit_code == 0
    for name in ("bank-a", "bank-b", "bank-c"):
        assert run(env, "clients", "create", name).exit_code == 0

    out = tmp_path / "checkpoint.json"
    made = run(env, "audit", "checkpoint", "--out", str(out))
    assert made.exit_code == 0, made.output
    checkpoint = json.loads(out.read_text())
    assert json.loads(made.stdout) == checkpoint
    assert checkpoint["seq"] == 3 and len(checkpoint["hash"]) == 64
    assert {"time", "signature", "signer"} <= set(checkpoint)
    checked = run(env, "audit", "verify", "--checkpoint", str(out))
    assert checked.exit_code == 0 and "3 audit events checked: intact" in checked.stdout

    forged = tmp_path / "forged.json"
    signature = bytearray(base64.b64decode(checkpoint["signature"]))
    signature[5] ^= 0x40
    forged.write_text(json.dumps({**checkpoint,
                                  "signature": base64.b64encode(bytes(signature)).decode()}))
    refused = run(env, "audit", "verify", "--checkpoint", str(forged))
    assert refused.exit_code == 1
    assert "checkpoint refused: the checkpoint's signature does not verify" in refused.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff not json")
    assert run(env, "audit", "verify", "--checkpoint", str(garbage)).exit_code == 1

    key = json.loads((data / "secrets.json").read_text())["audit_hmac_key"].encode()
    rewrite_without_first_row(url, key)
    alone = run(env, "audit", "verify")
    assert alone.exit_code == 0, alone.output  # the chain alone cannot tell
    caught = run(env, "audit", "verify", "--checkpoint", str(out))
    assert caught.exit_code == 1 and "TAMPERED" in caught.stdout
    assert "row 3 of the checkpoint is missing" in caught.stderr
