"""The CA certificate routes of a self-signed CA (development's default)."""

from __future__ import annotations

from cryptography import x509

from tests.support.app import Service


async def test_a_self_signed_cas_chain_is_itself(service: Service) -> None:
    ca = service.container.issuer.ca
    assert ca.chain == () and ca.below_root == ()
    reply = await service.http.get("/ca/chain.pem")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/pem-certificate-chain"
    assert x509.load_pem_x509_certificates(reply.content) == [ca.certificate]
    assert reply.content == (await service.http.get("/ca/certificate.pem")).content
