"""The time-stamping authority when the CA key and the master key are in a PKCS#11 token
(SoftHSM2): the token CA issues the TSA certificate, the TSA key is wrapped by the token's
master key, and openssl verifies the replies against the token CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app.pki.token_keys import TokenECPrivateKey
from app.storage.tsa_tables import tsa_signers
from tests.integration.hsm.test_failures import token_service
from tests.support.status import pem
from tests.support.tools import run

__all__ = ["token_service"]


async def test_the_tsa_signs_under_the_token_ca(
        token_service: tuple[Any, httpx.AsyncClient, str], tmp_path: Path) -> None:
    container, http, _label = token_service
    ca = container.issuer.ca
    assert isinstance(ca.key, TokenECPrivateKey)  # the CA key stays in the token
    signer = container.tsa.signers.usable(container.clock.now())
    assert signer is not None
    tsa_cert = signer.identity.certificate
    tsa_cert.verify_directly_issued_by(ca.certificate)
    assert isinstance(ca.certificate.public_key(), ec.EllipticCurvePublicKey)
    async with container.db.transaction(write=False) as conn:
        row = (await conn.execute(select(tsa_signers))).one()
    assert row.master_key_id == container.protector.current_key_id()
    assert row.master_key_id.startswith("certcloud-master-")  # a key in the token

    data = tmp_path / "data.txt"
    data.write_bytes(b"stamped under a token CA")
    query = tmp_path / "q.tsq"
    run(["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)])
    reply = await http.post("/tsa", content=query.read_bytes(),
                            headers={"Content-Type": "application/timestamp-query"})
    assert reply.status_code == 200
    (tmp_path / "r.tsr").write_bytes(reply.content)
    (tmp_path / "ca.pem").write_bytes(pem(ca.certificate))
    verified = run(["openssl", "ts", "-verify", "-in", str(tmp_path / "r.tsr"), "-queryfile",
                    str(query), "-CAfile", str(tmp_path / "ca.pem")])
    assert "Verification: OK" in verified.stdout
