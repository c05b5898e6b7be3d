"""Checking a signature a relying party received: CMS SignedData (RFC 5652) or a raw one.

Parsing is ``asn1crypto``'s, every signature check is ``cryptography``'s. Nothing here touches
storage or the clock: the caller passes the CA certificates it trusts and judges the signer's
status (``app.domain.signature_validity``). A signature that does not check is a *finding*
(a reason code in the reply), never an exception; only input that cannot be read at all raises
:class:`~app.domain.errors.InvalidInput` (a 422 at the edge).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.domain.errors import InvalidInput
from app.pki.signing import DIGEST_SIZES, HASH_NAMES, digest, hash_algorithm

_ = tsp  # registers the ESS and time-stamp attribute types with asn1crypto.cms

SIGNATURE_TIMESTAMP_TOKEN = "signature_time_stamp_token"  # id-aa-signatureTimeStampToken


@dataclass(frozen=True)
class SignerRef:
    """How a SignerInfo names its certificate: issuer and serial, or a key identifier."""

    issuer_der: bytes | None = None
    serial: int | None = None
    key_identifier: bytes | None = None

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.serial is not None:
            return (certificate.serial_number == self.serial
                    and certificate.issuer.public_bytes() == self.issuer_der)
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return False
        return ski.value.digest == self.key_identifier


@dataclass(frozen=True)
class ParsedCms:
    """The one SignerInfo of a SignedData, and what it needs checked."""

    signer: SignerRef
    certificates: tuple[bytes, ...]  # DER, as carried in ``certificates``
    content: bytes | None  # the encapsulated content; None when detached
    hash_name: str | None  # None: a digest algorithm this service does not check
    signed_attrs: bytes | None  # DER with the SET OF tag (RFC 5652 §5.4), None if absent
    message_digest: bytes | None
    signing_time: datetime | None
    signature: bytes
    signature_algorithm: cms.SignedDigestAlgorithm
    timestamp_token: bytes | None  # DER ContentInfo of the signature time-stamp token


@dataclass(frozen=True)
class TimestampCheck:
    """A signature time-stamp token checked: its time, or why it does not count."""

    time: datetime | None
    problem: str | None = None


def parse_cms(der: bytes) -> ParsedCms:
    """:raises InvalidInput: ``signature_malformed``, ``cms_not_signed_data`` or
        ``cms_signer_count``: not a DER ContentInfo holding a SignedData with one SignerInfo."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise InvalidInput("the CMS is not SignedData", code="cms_not_signed_data")
        signed = info["content"]
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise InvalidInput("the SignedData must carry exactly one SignerInfo",
                               code="cms_signer_count")
        return _parse_signer(signed, signer_infos[0])
    except InvalidInput:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        raise InvalidInput("the signature is not a DER CMS SignedData",
                           code="signature_malformed") from None


def _parse_signer(signed: cms.SignedData, info: cms.SignerInfo) -> ParsedCms:
    sid = info["sid"]
    if sid.name == "issuer_and_serial_number":
        ref = SignerRef(issuer_der=sid.chosen["issuer"].dump(),
                        serial=sid.chosen["serial_number"].native)
    else:
        ref = SignerRef(key_identifier=sid.chosen.native)
    certificates = tuple(choice.chosen.dump() for choice in signed["certificates"]
                         if choice.name == "certificate")
    encap = signed["encap_content_info"]
    content = None if isinstance(encap["content"], core.Void) else bytes(encap["content"])
    hash_name = info["digest_algorithm"]["algorithm"].native
    attrs = info["signed_attrs"]
    signed_attrs = message_digest = signing_time = None
    if not isinstance(attrs, core.Void):
        encoded = attrs.dump()
        signed_attrs = b"\x31" + encoded[1:]  # [0] IMPLICIT -> SET OF, same contents
        found_digest = _attribute(attrs, "message_digest")
        message_digest = found_digest if isinstance(found_digest, bytes) else None
        moment = _attribute(attrs, "signing_time")
        signing_time = moment.astimezone(UTC) if isinstance(moment, datetime) else None
    token = None
    unsigned = info["unsigned_attrs"]
    if not isinstance(unsigned, core.Void):
        for attribute in unsigned:
            if attribute["type"].native == SIGNATURE_TIMESTAMP_TOKEN:
                token = attribute["values"][0].dump()
    return ParsedCms(
        signer=ref, certificates=certificates, content=content,
        hash_name=hash_name if hash_name in HASH_NAMES else None,
        signed_attrs=signed_attrs, message_digest=message_digest, signing_time=signing_time,
        signature=info["signature"].native, signature_algorithm=info["signature_algorithm"],
        timestamp_token=token)


def _attribute(attrs: cms.CMSAttributes, name: str) -> object | None:
    for attribute in attrs:
        if attribute["type"].native == name:
            return attribute["values"][0].native
    return None


def find_signer(parsed: ParsedCms) -> x509.Certificate | None:
    """The certificate the SignerInfo names, among those the CMS carries."""
    for der in parsed.certificates:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if parsed.signer.matches(certificate):
            return certificate
    return None


def content_digest(parsed: ParsedCms, data: bytes | None, given_digest: bytes | None
                   ) -> bytes | None:
    """The digest of the signed content: of the encapsulated content, else of ``data``, else
    the caller's digest (None when the algorithm is not one this service checks)."""
    if parsed.hash_name is None:
        return None
    if parsed.content is not None:
        return digest(parsed.content, parsed.hash_name)
    if data is not None:
        return digest(data, parsed.hash_name)
    return given_digest


def check_cms(parsed: ParsedCms, certificate: x509.Certificate, data: bytes | None,
              given_digest: bytes | None) -> list[str]:
    """The reasons the SignerInfo does not hold for ``certificate`` and this content (empty:
    it holds). ``data`` or ``given_digest`` are what the relying party has besides the CMS."""
    reasons: list[str] = []
    if parsed.hash_name is None:
        return ["algorithm_unsupported"]
    if not parsed.signer.matches(certificate):
        reasons.append("signer_mismatch")
    expected = content_digest(parsed, data, given_digest)
    if parsed.content is not None and (data is not None or given_digest is not None):
        theirs = digest(data, parsed.hash_name) if data is not None else given_digest
        if theirs is None or not hmac.compare_digest(theirs, expected or b""):
            reasons.append("content_mismatch")
    if parsed.signed_attrs is None:
        if expected is None or not _verify(certificate.public_key(), parsed.signature,
                                           expected, parsed.hash_name,
                                           parsed.signature_algorithm):
            reasons.append("signature_invalid")
        return reasons
    if "content_mismatch" not in reasons and (
            parsed.message_digest is None or expected is None
            or not hmac.compare_digest(parsed.message_digest, expected)):
        reasons.append("content_mismatch")
    if not _verify(certificate.public_key(), parsed.signature,
                   digest(parsed.signed_attrs, parsed.hash_name), parsed.hash_name,
                   parsed.signature_algorithm):
        reasons.append("signature_invalid")
    return reasons


def check_raw(signature: bytes, certificate: x509.Certificate, value: bytes, hash_name: str,
              *, pss: bool = False) -> list[str]:
    """A raw signature over the digest ``value`` (PKCS#1 v1.5 or PSS, or DER ECDSA)."""
    algorithm = cms.SignedDigestAlgorithm({"algorithm": "rsassa_pss" if pss
                                           else "rsassa_pkcs1v15"})
    if isinstance(certificate.public_key(), ec.EllipticCurvePublicKey):
        algorithm = cms.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})
    ok = _verify(certificate.public_key(), signature, value, hash_name, algorithm)
    return [] if ok else ["signature_invalid"]


def _verify(public_key: PublicKeyTypes, signature: bytes, value: bytes, hash_name: str,
            algorithm: cms.SignedDigestAlgorithm) -> bool:
    """Whether ``signature`` is ``public_key``'s over the digest ``value``."""
    if len(value) != DIGEST_SIZES.get(hash_name, -1):
        return False
    prehashed = Prehashed(hash_algorithm(hash_name))
    try:
        kind = algorithm.signature_algo
        if isinstance(public_key, ec.EllipticCurvePublicKey) and kind == "ecdsa":
            public_key.verify(signature, value, ec.ECDSA(prehashed))
            return True
        if isinstance(public_key, rsa.RSAPublicKey) and kind == "rsassa_pkcs1v15":
            public_key.verify(signature, value, padding.PKCS1v15(), prehashed)
            return True
        if isinstance(public_key, rsa.RSAPublicKey) and kind == "rsassa_pss":
            salt = DIGEST_SIZES[hash_name]
            params = algorithm["parameters"]
            if not isinstance(params, core.Void) and params.native is not None:
                if params["hash_algorithm"]["algorithm"].native != hash_name:
                    return False
                salt = params["salt_length"].native
            public_key.verify(signature, value, padding.PSS(
                mgf=padding.MGF1(hash_algorithm(hash_name)), salt_length=salt), prehashed)
            return True
    except (InvalidSignature, ValueError, TypeError):
        return False
    return False


def issuer_among(certificate: x509.Certificate, cas: Sequence[x509.Certificate]
                 ) -> x509.Certificate | None:
    """The CA certificate among ``cas`` whose key signed ``certificate`` (any of them: an
    earlier CA certificate or key still in the chain counts)."""
    for ca in cas:
        try:
            certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def check_timestamp(token_der: bytes, signature: bytes, cas: Sequence[x509.Certificate]
                    ) -> TimestampCheck:
    """A signature time-stamp token (RFC 3161, CAdES-T): its SignedData checks against a TSA
    certificate that one of ``cas`` issued (EKU timeStamping, valid at the token's time) and
    its messageImprint is the hash of ``signature`` (the SignerInfo's signature value)."""
    try:
        parsed = parse_cms(token_der)
        info = cms.ContentInfo.load(token_der)["content"]["encap_content_info"]
        if info["content_type"].native != "tst_info" or parsed.content is None:
            return TimestampCheck(None, "timestamp_invalid")
        tst = tsp.TSTInfo.load(parsed.content)
        gen_time = tst["gen_time"].native.astimezone(UTC)
        imprint = tst["message_imprint"]
        imprint_hash = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
    except (InvalidInput, ValueError, TypeError, KeyError, AttributeError):
        return TimestampCheck(None, "timestamp_invalid")
    if imprint_hash not in HASH_NAMES or not hmac.compare_digest(
            digest(signature, imprint_hash), hashed):
        return TimestampCheck(None, "timestamp_mismatch")
    tsa = find_signer(parsed)
    if tsa is None or issuer_among(tsa, cas) is None or not _is_tsa(tsa, gen_time):
        return TimestampCheck(None, "timestamp_untrusted")
    if check_cms(parsed, tsa, None, None):
        return TimestampCheck(None, "timestamp_invalid")
    return TimestampCheck(gen_time)


def _is_tsa(certificate: x509.Certificate, at: datetime) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return (ExtendedKeyUsageOID.TIME_STAMPING in usage
            and certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc)


def load_certificate_pem(text: str) -> x509.Certificate:
    """:raises InvalidInput: ``certificate_invalid``, not one PEM certificate."""
    try:
        return x509.load_pem_x509_certificate(text.encode())
    except (ValueError, UnicodeError):
        raise InvalidInput("certificate_pem is not a PEM certificate",
                           code="certificate_invalid") from None


def subject_text(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


__all__ = ["ParsedCms", "SignerRef", "TimestampCheck",
           "check_cms", "check_raw", "check_timestamp", "content_digest", "find_signer",
           "issuer_among", "load_certificate_pem", "parse_cms", "subject_text"]
