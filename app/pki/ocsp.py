"""OCSP (RFC 6960, RFC 5019 profile, RFC 8954 nonces): parse requests, sign responses, and
issue the delegated responder certificate.

Everything is built with ``cryptography``'s OCSP builder. Its builder answers one CertID per
response and its parser refuses requests with several, so for those (and only those) the
request is read with ``asn1crypto`` and the response data is assembled with ``asn1crypto``, then
signed with the same ``cryptography`` key object (file key or token-backed key alike).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, OCSPExtensionOID

MAX_REQUEST_BYTES = 10 * 1024
MAX_NONCE_BYTES = 32  # RFC 8954 §2.1
MAX_CERT_IDS = 20  # CertIDs answered in one response; more is refused as malformed
MAX_SERIAL_BITS = 20 * 8  # RFC 5280 §4.1.2.2: serials are at most 20 octets

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ASN1_HASH_NAMES = {"sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


class CertStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class OCSPRefusal(Exception):
    """The request gets an unsuccessful OCSP response (RFC 6960 §4.2.1) instead of an answer.

    :param status: ``malformedRequest``, ``unauthorized``, ``tryLater`` or ``internalError``.
    """

    def __init__(self, status: ocsp.OCSPResponseStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def malformed(reason: str) -> OCSPRefusal:
    return OCSPRefusal(ocsp.OCSPResponseStatus.MALFORMED_REQUEST, reason)


def unsuccessful_response(status: ocsp.OCSPResponseStatus) -> bytes:
    """The DER of an unsigned error response; constant for a status, so build it once."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER)


@dataclass(frozen=True)
class CertId:
    """One CertID of a request: the hash algorithm's name, the issuer hashes and the serial."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int


@dataclass(frozen=True)
class Request:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None


def parse_request(der: bytes) -> Request:
    """Read an OCSPRequest (DER). Request signatures are not checked (RFC 5019 §2.1.2).

    :raises OCSPRefusal: ``malformedRequest`` for anything that is not a well-formed request
        with 1 to :data:`MAX_CERT_IDS` CertIDs of a supported hash, a nonce of 1 to 32 octets
        and no unrecognised critical extension.
    """
    if not der:
        raise malformed("empty request")
    if len(der) > MAX_REQUEST_BYTES:
        raise malformed("request too large")
    try:
        parsed = ocsp.load_der_ocsp_request(der)
    except NotImplementedError:  # zero or several CertIDs: cryptography reads only one
        return _parse_with_asn1crypto(der)
    except ValueError as exc:
        raise malformed("not a DER OCSPRequest") from exc
    try:
        algorithm = parsed.hash_algorithm
        extensions = parsed.extensions
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise malformed("unsupported CertID hash or bad extension") from exc
    hash_name = algorithm.name
    if hash_name not in HASHES:
        raise malformed(f"unsupported CertID hash {hash_name}")
    nonce: bytes | None = None
    for extension in extensions:
        if extension.oid == OCSPExtensionOID.NONCE:
            assert isinstance(extension.value, x509.OCSPNonce)
            nonce = extension.value.nonce
        elif extension.critical:
            raise malformed(f"unrecognised critical extension {extension.oid.dotted_string}")
    _check_nonce(nonce)
    return Request((CertId(hash_name, parsed.issuer_name_hash, parsed.issuer_key_hash,
                           parsed.serial_number),), nonce)


def _check_nonce(nonce: bytes | None) -> None:
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise malformed(f"nonce must be 1 to {MAX_NONCE_BYTES} octets")


def _parse_with_asn1crypto(der: bytes) -> Request:
    try:
        request = asn1_ocsp.OCSPRequest.load(der, strict=True)
        tbs = request["tbs_request"]
        items = list(tbs["request_list"])
        if not 1 <= len(items) <= MAX_CERT_IDS:
            raise malformed(f"a request must hold 1 to {MAX_CERT_IDS} CertIDs")
        cert_ids = []
        for item in items:
            for extension in item["single_request_extensions"] or []:
                if extension["critical"].native:
                    raise malformed("unrecognised critical single-request extension")
            cert_id = item["req_cert"]
            hash_name = cert_id["hash_algorithm"]["algorithm"].native
            if hash_name not in HASHES:
                raise malformed(f"unsupported CertID hash {hash_name}")
            serial = cert_id["serial_number"].native
            cert_ids.append(CertId(hash_name, bytes(cert_id["issuer_name_hash"].native),
                                   bytes(cert_id["issuer_key_hash"].native), int(serial)))
        nonce: bytes | None = None
        for extension in tbs["request_extensions"] or []:
            name = extension["extn_id"].native
            if name == "nonce":
                nonce = bytes(extension["extn_value"].parsed.native)
            elif extension["critical"].native:
                raise malformed(f"unrecognised critical extension {name}")
    except OCSPRefusal:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise malformed("not a DER OCSPRequest") from exc
    _check_nonce(nonce)
    return Request(tuple(cert_ids), nonce)


@dataclass(frozen=True)
class IssuerHashes:
    """The CA's name and key hashes under every supported algorithm, to match CertIDs."""

    by_hash: dict[str, tuple[bytes, bytes]]

    @classmethod
    def of(cls, ca_certificate: x509.Certificate) -> IssuerHashes:
        name_der = ca_certificate.subject.public_bytes()
        key_bits = asn1_x509.Certificate.load(
            ca_certificate.public_bytes(serialization.Encoding.DER)
        )["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:]
        by_hash = {}
        for name, algorithm in HASHES.items():
            by_hash[name] = (_digest(algorithm(), name_der), _digest(algorithm(), key_bits))
        return cls(by_hash)

    def matches(self, cert_id: CertId) -> bool:
        expected = self.by_hash.get(cert_id.hash_name)
        return expected == (cert_id.issuer_name_hash, cert_id.issuer_key_hash)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class SingleAnswer:
    """What to say about one CertID."""

    cert_id: CertId
    status: CertStatus
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None  # None: no reasonCode (also for unspecified)


@dataclass(frozen=True)
class ResponderIdentity:
    """The delegated responder: its key (any cryptography private-key object), certificate
    and the CA certificates between it and the root, sent along (none under a self-signed CA)."""

    key: CertificateIssuerPrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def sign_response(responder: ResponderIdentity, answers: Sequence[SingleAnswer], *,
                  this_update: datetime, next_update: datetime, produced_at: datetime,
                  nonce: bytes | None = None) -> bytes:
    """A successful BasicOCSPResponse (DER) for ``answers``, signed by ``responder``, which is
    included in ``certs``; the responder is named by key hash. ``produced_at`` is used only when
    several CertIDs are answered (``cryptography`` stamps a single answer itself)."""
    if not answers:
        raise ValueError("no answers")
    if len(answers) == 1:
        return _sign_single(responder, answers[0], this_update, next_update, nonce)
    return _sign_several(responder, answers, this_update, next_update, produced_at, nonce)


def _sign_single(responder: ResponderIdentity, answer: SingleAnswer, this_update: datetime,
                 next_update: datetime, nonce: bytes | None) -> bytes:
    cert_id = answer.cert_id
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=cert_id.issuer_name_hash, issuer_key_hash=cert_id.issuer_key_hash,
        serial_number=cert_id.serial, algorithm=HASHES[cert_id.hash_name](),
        cert_status=_STATUS[answer.status], this_update=this_update, next_update=next_update,
        revocation_time=answer.revoked_at if answer.status is CertStatus.REVOKED else None,
        revocation_reason=answer.reason if answer.status is CertStatus.REVOKED else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate).certificates(
        [responder.certificate, *responder.chain])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(responder.key, signature_hash(responder.key))
    return response.public_bytes(serialization.Encoding.DER)


_STATUS = {CertStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
           CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
           CertStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN}


def _sign_several(responder: ResponderIdentity, answers: Sequence[SingleAnswer],
                  this_update: datetime, next_update: datetime, produced_at: datetime,
                  nonce: bytes | None) -> bytes:
    """Several SingleResponses: ResponseData assembled with asn1crypto, signed by the key."""
    responses = []
    for answer in answers:
        status: asn1_ocsp.CertStatus
        if answer.status is CertStatus.GOOD:
            status = asn1_ocsp.CertStatus(name="good", value=asn1_core.Null())
        elif answer.status is CertStatus.UNKNOWN:
            status = asn1_ocsp.CertStatus(name="unknown", value=asn1_core.Null())
        else:
            assert answer.revoked_at is not None
            info: dict[str, object] = {"revocation_time": _generalized(answer.revoked_at)}
            if answer.reason is not None:
                info["revocation_reason"] = _CRL_REASON_NAMES[answer.reason]
            status = asn1_ocsp.CertStatus(name="revoked", value=info)
        cid = answer.cert_id
        responses.append({
            "cert_id": {"hash_algorithm": {"algorithm": _ASN1_HASH_NAMES[cid.hash_name]},
                        "issuer_name_hash": cid.issuer_name_hash,
                        "issuer_key_hash": cid.issuer_key_hash,
                        "serial_number": cid.serial},
            "cert_status": status,
            "this_update": _generalized(this_update),
            "next_update": _generalized(next_update),
        })
    data: dict[str, object] = {
        "responder_id": asn1_ocsp.ResponderId(
            name="by_key", value=x509.SubjectKeyIdentifier.from_public_key(
                responder.certificate.public_key()).digest),
        "produced_at": _generalized(produced_at),
        "responses": responses,
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False,
                                        "extn_value": nonce}]
    tbs = asn1_ocsp.ResponseData(data)
    tbs_der = tbs.dump()
    algorithm, signature = _sign_bytes(responder.key, tbs_der)
    basic = asn1_ocsp.BasicOCSPResponse({
        "tbs_response_data": tbs,
        "signature_algorithm": {"algorithm": algorithm},
        "signature": signature,
        "certs": [asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
                  for cert in (responder.certificate, *responder.chain)],
    })
    return asn1_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
    }).dump()


_CRL_REASON_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "key_compromise",
    x509.ReasonFlags.ca_compromise: "ca_compromise",
    x509.ReasonFlags.affiliation_changed: "affiliation_changed",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessation_of_operation",
    x509.ReasonFlags.certificate_hold: "certificate_hold",
    x509.ReasonFlags.remove_from_crl: "remove_from_crl",
    x509.ReasonFlags.privilege_withdrawn: "privilege_withdrawn",
    x509.ReasonFlags.aa_compromise: "aa_compromise",
}


def _generalized(moment: datetime) -> asn1_core.GeneralizedTime:
    return asn1_core.GeneralizedTime(moment.replace(microsecond=0))


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 and larger curves, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _sign_bytes(key: CertificateIssuerPrivateKeyTypes, data: bytes) -> tuple[str, bytes]:
    """Sign ``data`` with the key the way the builders do: PKCS#1 v1.5 or ECDSA.

    :returns: the asn1crypto name of the signature algorithm and the signature.
    """
    algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return f"{algorithm.name}_rsa", key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"{algorithm.name}_ecdsa", key.sign(data, ec.ECDSA(algorithm))
    raise TypeError("the responder key must be RSA or EC")


# --- the delegated responder certificate -----------------------------------------------------


def generate_responder_key(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A fresh responder key: ``rsa2048`` or ``p256``."""
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown responder key algorithm {algorithm!r}")


def issue_responder_certificate(
    *, ca_key: CertificateIssuerPrivateKeyTypes, ca_certificate: x509.Certificate,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, serial: int, not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued by the CA,
    digitalSignature, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck (§4.2.2.2.1), so clients
    never ask about the responder itself; kept short-lived instead."""
    organization = ca_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    country = ca_certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    subject = x509.Name([
        *(x509.NameAttribute(NameOID.COUNTRY_NAME, str(a.value)) for a in country[:1]),
        *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(a.value)) for a in organization[:1]),
        x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP Responder {not_before:%Y%m%d%H%M%S}"),
    ])
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    algorithm = hashes.SHA384() if isinstance(ca_key, ec.EllipticCurvePrivateKey) else (
        hashes.SHA256())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, algorithm)
    )


def backdated(moment: datetime) -> datetime:
    """Validity starts a little earlier than ``moment`` for clients whose clock runs behind."""
    return moment - timedelta(minutes=5)
