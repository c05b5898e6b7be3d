"""OCSP (RFC 6960, RFC 5019 profile, RFC 8954 nonces): parse requests, sign responses (the
delegated responder's certificate is :mod:`app.pki.ocsp_responder`'s).

Requests are read with ``cryptography`` (which refuses those with several CertIDs; those are
read with ``asn1crypto``), and each CertID's DER is kept as sent. Responses are assembled with
``asn1crypto`` so that every SingleResponse carries its request's CertID verbatim (Bouncy
Castle compares the structure exactly, ``SEQUENCE {sha1}`` is not ``SEQUENCE {sha1, NULL}``),
then signed with the ``cryptography`` key object (file key or token-backed key alike).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import OCSPExtensionOID

MAX_REQUEST_BYTES = 10 * 1024
MAX_NONCE_BYTES = 32  # RFC 8954 §2.1
MAX_CERT_IDS = 20  # CertIDs answered in one response; more is refused as malformed

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


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


class Params(enum.StrEnum):
    """The parameters of a CertID's hash AlgorithmIdentifier, as the request encoded them."""

    NULL = "null"  # what OpenSSL, Bouncy Castle and RFC 5019 clients send
    ABSENT = "absent"  # what RFC 5754 asks for with SHA-2
    OTHER = "other"  # anything else: echoed, never stored


@dataclass(frozen=True)
class CertId:
    """One CertID of a request: the hash algorithm's name, the issuer hashes and the serial,
    with ``der``, the CertID exactly as the request encoded it (empty: encode ``params``)."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes = b""
    params: Params = Params.NULL

    def encoded(self) -> bytes:
        """The CertID's DER, to echo in the SingleResponse that answers it."""
        if self.der:
            return self.der
        return asn1_ocsp.CertId({
            "hash_algorithm": asn1_algos.DigestAlgorithm.load(
                _DER_BY_SHAPE[self.hash_name, self.params]),
            "issuer_name_hash": self.issuer_name_hash, "issuer_key_hash": self.issuer_key_hash,
            "serial_number": self.serial}).dump()

    @property
    def shape(self) -> str | None:
        """The key of the stored response for this CertID beside its serial (the issuer hashes
        are this CA's, so the hash and its parameters fix the encoding); None: not stored."""
        return shape_key(self.hash_name, self.params)


def shape_key(hash_name: str, params: Params) -> str | None:
    """``sha1`` for SHA-1 with NULL parameters (the shape stored ever since), ``sha1/a`` with
    none; at most 8 characters, the width of ``ocsp_responses.hash_algorithm``."""
    if params is Params.NULL:
        return hash_name
    if params is Params.ABSENT:
        return f"{hash_name}/a"
    return None


def parse_shape_key(key: str) -> tuple[str, Params]:
    """The inverse of :func:`shape_key`."""
    hash_name, _, suffix = key.partition("/")
    return hash_name, Params.ABSENT if suffix == "a" else Params.NULL


def _algorithm_identifier(hash_name: str, params: Params) -> asn1_algos.DigestAlgorithm:
    if params is Params.NULL:
        return asn1_algos.DigestAlgorithm({"algorithm": hash_name,
                                           "parameters": asn1_core.Null()})
    if params is Params.ABSENT:  # asn1crypto would add NULL: encode the bare OID by hand
        oid = asn1_algos.DigestAlgorithmId(hash_name).dump()
        return asn1_algos.DigestAlgorithm.load(b"\x30" + bytes([len(oid)]) + oid)
    raise ValueError("only NULL or absent parameters can be encoded")


# Each supported hash's AlgorithmIdentifier in both shapes, encoded once: DER -> its shape.
_DER_BY_SHAPE = {(name, params): _algorithm_identifier(name, params).dump()
                 for name in HASHES for params in (Params.NULL, Params.ABSENT)}
_SHAPES_BY_DER = {der: shape for shape, der in _DER_BY_SHAPE.items()}


def _params_of(algorithm_der: bytes, hash_name: str) -> Params:
    known = _SHAPES_BY_DER.get(algorithm_der)
    return known[1] if known is not None and known[0] == hash_name else Params.OTHER


def _elements(contents: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """The class, whole encoding and contents of each value in a constructed value's contents."""
    while contents:
        class_, _method, _tag, header, body, trailer = asn1_parser.parse(contents)
        size = len(header) + len(body) + len(trailer)
        yield class_, contents[:size], body
        contents = contents[size:]


def _only_cert_id(der: bytes, hash_name: str, name_hash: bytes, key_hash: bytes,
                  serial: int) -> CertId:
    """The CertID of a one-request OCSPRequest that ``cryptography`` has read, as encoded:
    a walk over the DER (tbsRequest, past its tagged fields to requestList, the Request),
    cheaper than a full parse on this path."""
    tbs = next(_elements(asn1_parser.parse(der)[4]))[2]
    request_list = next(body for class_, _, body in _elements(tbs) if class_ == 0)
    request = next(_elements(request_list))[2]
    cert_id_der, cert_id_body = next(_elements(request))[1:]
    algorithm_der = next(_elements(cert_id_body))[1]
    return CertId(hash_name, name_hash, key_hash, serial, cert_id_der,
                  _params_of(algorithm_der, hash_name))


def _cert_id_of(cert_id: asn1_ocsp.CertId) -> CertId:
    """A parsed CertID with its DER as sent (asn1crypto keeps the parsed encoding)."""
    hash_name = cert_id["hash_algorithm"]["algorithm"].native
    if hash_name not in HASHES:
        raise malformed(f"unsupported CertID hash {hash_name}")
    return CertId(hash_name, bytes(cert_id["issuer_name_hash"].native),
                  bytes(cert_id["issuer_key_hash"].native), int(cert_id["serial_number"].native),
                  cert_id.dump(), _params_of(cert_id["hash_algorithm"].dump(), hash_name))


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
    try:
        cert_id = _only_cert_id(der, hash_name, parsed.issuer_name_hash, parsed.issuer_key_hash,
                                parsed.serial_number)
    except (ValueError, StopIteration) as exc:  # cryptography has read it: not expected
        raise malformed("not a DER OCSPRequest") from exc
    return Request((cert_id,), nonce)


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
            cert_ids.append(_cert_id_of(item["req_cert"]))
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
    included in ``certs``; the responder is named by key hash. Each SingleResponse carries its
    answer's CertID as the request encoded it."""
    if not answers:
        raise ValueError("no answers")
    return _assemble_and_sign(responder, answers, this_update, next_update, produced_at, nonce)


def _assemble_and_sign(responder: ResponderIdentity, answers: Sequence[SingleAnswer],
                  this_update: datetime, next_update: datetime, produced_at: datetime,
                  nonce: bytes | None) -> bytes:
    """ResponseData assembled with asn1crypto, signed by the key."""
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
        responses.append({
            "cert_id": asn1_ocsp.CertId.load(answer.cert_id.encoded()),
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


# asn1crypto names the CRLReason values as cryptography names its flags.
_CRL_REASON_NAMES = {flag: flag.name for flag in x509.ReasonFlags}


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
