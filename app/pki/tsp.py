"""RFC 3161 time-stamping: the request a client sends, the token and the reply we make.

Built with ``asn1crypto``; the signature itself comes from ``cryptography`` through
:func:`app.pki.signing.sign_digest`, so any key with that interface signs. The token is a CMS
SignedData (version 3, eContentType id-ct-TSTInfo) whose signer info carries contentType,
messageDigest and signingCertificateV2 (ESSCertIDv2 of the TSA certificate, RFC 5816 / ESS
RFC 5035), as ``openssl ts -verify`` and pyHanko check it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from app.pki.ca import authority_key_identifier, issued_by, service_subject
from app.pki.cms import signature_algorithm, signing_certificate_v2
from app.pki.keys import UserPrivateKey, generate_service_key
from app.pki.signing import DIGEST_SIZES, HashName, Mechanism, digest, sign_digest

MAX_REQUEST_BYTES = 4096  # a TimeStampReq with a SHA-512 imprint is ~100 bytes
IMPRINT_ALGORITHMS: tuple[HashName, ...] = ("sha256", "sha384", "sha512")


class TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2, with timeStampToken OPTIONAL as the RFC has it (asn1crypto's own
    ``tsp.TimeStampResp`` makes it required, so it can neither build nor read a rejection)."""

    _fields = [("status", tsp.PKIStatusInfo),
               ("time_stamp_token", cms.ContentInfo, {"optional": True})]


class Refusal(Exception):
    """A request we answer with status rejection and this PKIFailureInfo bit."""

    def __init__(self, failure: str, text: str) -> None:
        super().__init__(text)
        self.failure, self.text = failure, text


@dataclass(frozen=True)
class TimeStampRequest:
    hash_name: HashName
    imprint: bytes
    nonce: int | None
    cert_req: bool


@dataclass(frozen=True)
class TsaIdentity:
    """The TSA's key, its certificate and the CA certificates to send with it."""

    key: UserPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def parse_request(der: bytes, policy_oid: str) -> TimeStampRequest:
    """:raises Refusal: badDataFormat (not a TimeStampReq), badAlg (an imprint algorithm we
    do not take, or an imprint of the wrong length), unacceptedPolicy, unacceptedExtension."""
    try:
        request = tsp.TimeStampReq.load(der, strict=True)
        native = request.native  # parses every part (asn1crypto is lazy)
    except Exception:
        raise Refusal("bad_data_format", "not a DER TimeStampReq") from None
    if native["version"] != "v1":
        raise Refusal("bad_data_format", "only TimeStampReq version 1 is known")
    imprint = native["message_imprint"]
    hash_name = imprint["hash_algorithm"]["algorithm"]
    if hash_name not in IMPRINT_ALGORITHMS:
        raise Refusal("bad_alg", "the imprint must be SHA-256, SHA-384 or SHA-512")
    hashed = imprint["hashed_message"]
    if len(hashed) != DIGEST_SIZES[hash_name]:
        raise Refusal("bad_data_format", f"a {hash_name} imprint is "
                                         f"{DIGEST_SIZES[hash_name]} bytes")
    policy = request["req_policy"].dotted if native["req_policy"] is not None else None
    if policy is not None and policy != policy_oid:
        raise Refusal("unaccepted_policy", f"this TSA issues under policy {policy_oid} only")
    if native["extensions"]:
        raise Refusal("unaccepted_extensions", "no request extension is supported")
    return TimeStampRequest(hash_name, hashed, native["nonce"], bool(native["cert_req"]))


def new_serial() -> int:
    """128 random bits: unique across replicas without coordination or a write per token
    (the chance of a collision among 2^40 tokens is about 2^-49)."""
    return int.from_bytes(os.urandom(16), "big") >> 1  # positive, at most 20 octets DER


def _frozen(value: core.Asn1Value) -> core.Asn1Value:
    return type(value).load(value.dump())


def build_token(identity: TsaIdentity, request: TimeStampRequest, *, serial: int,
                gen_time: datetime, policy_oid: str, accuracy_seconds: int) -> bytes:
    """The DER TimeStampToken (a ContentInfo holding SignedData over TSTInfo)."""
    gen_time = gen_time.astimezone(UTC).replace(microsecond=0)
    cert = identity.certificate
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    tst_info = {
        "version": "v1",
        "policy": policy_oid,
        "message_imprint": {"hash_algorithm": {"algorithm": request.hash_name},
                            "hashed_message": request.imprint},
        "serial_number": serial,
        "gen_time": gen_time,
        "accuracy": {"seconds": accuracy_seconds},
        "tsa": asn1_x509.GeneralName(name="directory_name",
                                     value=asn1_x509.Name.load(cert.subject.public_bytes())),
    }
    if request.nonce is not None:
        tst_info["nonce"] = request.nonce
    tst_der = tsp.TSTInfo(tst_info).dump()

    mechanism = Mechanism("sha256")
    signed_attrs = _frozen(cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest(tst_der, "sha256")]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [signing_certificate_v2(
            cert_der, cert.issuer.public_bytes(), cert.serial_number)]}),
    ]))
    signature = sign_digest(identity.key, digest(signed_attrs.dump(), "sha256"), mechanism)
    digest_algorithm = algos.DigestAlgorithm({"algorithm": "sha256"})
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": asn1_x509.Name.load(cert.issuer.public_bytes()),
            "serial_number": cert.serial_number}),
        "digest_algorithm": digest_algorithm,
        "signed_attrs": signed_attrs,
        "signature_algorithm": signature_algorithm(identity.key, mechanism),
        "signature": signature,
    })
    signed_data: dict[str, object] = {
        "version": "v3",
        "digest_algorithms": [digest_algorithm],
        "encap_content_info": {"content_type": "tst_info",
                               "content": core.ParsableOctetString(tst_der)},
        "signer_infos": [signer_info],
    }
    # RFC 3161 §2.4.1: the TSA certificate when certReq is true, and no certificates otherwise.
    if request.cert_req:
        signed_data["certificates"] = [
            cms.CertificateChoices(name="certificate", value=asn1_x509.Certificate.load(
                c.public_bytes(serialization.Encoding.DER)))
            for c in (cert, *identity.chain)]
    return cms.ContentInfo({"content_type": "signed_data",
                            "content": cms.SignedData(signed_data)}).dump()


def granted(token_der: bytes) -> bytes:
    """A TimeStampResp with status granted and the token."""
    return TimeStampResp({"status": {"status": "granted"},
                          "time_stamp_token": cms.ContentInfo.load(token_der)}).dump()


def rejection(failure: str, text: str) -> bytes:
    """A TimeStampResp with status rejection, the reason and the PKIFailureInfo bit."""
    return TimeStampResp({"status": {"status": "rejection", "status_string": [text],
                                     "fail_info": {failure}}}).dump()


def unavailable(text: str) -> bytes:
    """status rejection, timeNotAvailable: no usable TSA certificate just now."""
    return rejection("time_not_available", text)


def generate_tsa_key(algorithm: str) -> UserPrivateKey:
    return generate_service_key(algorithm, "TSA")


def issue_tsa_certificate(
    *, ca_key: CertificateIssuerPrivateKeyTypes, ca_certificate: x509.Certificate,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, serial: int, not_before: datetime,
    not_after: datetime, policy_oid: str, crl_url: str, ca_issuers_url: str,
) -> x509.Certificate:
    """The TSA certificate (RFC 3161 §2.3): issued by the CA, digitalSignature only, EKU
    id-kp-timeStamping alone and critical (§2.3); the TSA policy in certificatePolicies; the
    CRL and the CA certificate's address (no OCSP: the responder answers for subscribers)."""
    subject = service_subject(ca_certificate, f"Time-Stamping Authority {not_before:%Y%m%d%H%M%S}")
    builder, algorithm = issued_by(
        ca_key, ca_certificate, subject=subject,
        public_key=public_key, serial=serial, not_before=not_before, not_after=not_after)
    return (
        builder
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .add_extension(x509.CertificatePolicies([
            x509.PolicyInformation(x509.ObjectIdentifier(policy_oid), None)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(ca_certificate), critical=False)
        .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(ca_issuers_url))]), critical=False)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
        .sign(ca_key, algorithm)
    )


def signature_value_imprint(signature: bytes, hash_name: HashName) -> TimeStampRequest:
    """The request behind a signature time-stamp (CAdES-T, RFC 5126 / ETSI EN 319 122-1
    §5.3): the imprint is the hash of the SignerInfo's signature value."""
    return TimeStampRequest(hash_name, digest(signature, hash_name), None, True)
