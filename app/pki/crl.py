"""The CRL (RFC 5280 §5): one full CRL of the CA's end-entity certificates.

It is built with ``cryptography``'s :class:`~cryptography.x509.CertificateRevocationListBuilder`
given the whole list at once (``revoked_certificates=``; chained ``add_revoked_certificate``
copies the list on every call). A large CRL is built in a child process so the server's event
loop and its GIL stay free: the child builds the TBSCertList with a throwaway key of the same
signature algorithm, and this process signs those bytes with the CA key (a file key or a
token-backed one alike) and puts the CertificateList together with ``asn1crypto``, the one step
``cryptography`` has no API for.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from app.domain.serials import is_valid_serial, serial_int

REASON_FLAGS = {
    1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation, 6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl, 9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}


def reason_flag(code: int | None) -> x509.ReasonFlags | None:
    """The reasonCode to put on an entry or OCSP answer; ``None`` for unspecified (0), which
    RFC 5280 §5.3.1 says to leave out rather than state."""
    return None if code is None else REASON_FLAGS.get(code)


# An entry: (serial, revoked_at POSIX seconds, reason code or None).
EntryTuple = tuple[int, int, int | None]
# Entries travel packed, 29 bytes each (serial: 20 bytes big-endian, revoked_at: 8 bytes signed,
# reason: 1 byte, 255 for none): one bytes object crosses to a child process as a plain copy,
# where a list of 100,000 tuples would hold the GIL for a long pickle.
ENTRY_SIZE = 29
_NO_REASON = 255


def pack_entry(serial_hex: str, revoked_at: datetime | int, reason: int | None) -> bytes:
    """One packed entry; ``revoked_at`` as a datetime or whole POSIX seconds.

    :raises ValueError: a serial longer than 20 octets (RFC 5280 §4.1.2.2 allows no more).
    """
    serial = serial_int(serial_hex)
    if not is_valid_serial(serial):
        raise ValueError("a CRL serial must be positive and at most 20 octets")
    seconds = revoked_at if isinstance(revoked_at, int) else int(revoked_at.timestamp())
    return (serial.to_bytes(20, "big") + seconds.to_bytes(8, "big", signed=True)
            + bytes((_NO_REASON if reason is None else reason,)))


def unpack_entries(packed: bytes) -> list[EntryTuple]:
    if len(packed) % ENTRY_SIZE:
        raise ValueError("packed CRL entries have a partial record")
    entries: list[EntryTuple] = []
    for offset in range(0, len(packed), ENTRY_SIZE):
        record = packed[offset:offset + ENTRY_SIZE]
        reason = record[28]
        entries.append((int.from_bytes(record[:20], "big"),
                        int.from_bytes(record[20:28], "big", signed=True),
                        None if reason == _NO_REASON else reason))
    return entries


@dataclass(frozen=True)
class CrlParams:
    """Everything but the entries and the key; plain data, so it can go to a child process."""

    ca_certificate_der: bytes
    number: int
    this_update: datetime
    next_update: datetime
    distribution_point: str  # the CRLDP URL that issued certificates carry


def _builder(params: CrlParams, entries: Sequence[EntryTuple]
             ) -> x509.CertificateRevocationListBuilder:
    ca = x509.load_der_x509_certificate(params.ca_certificate_der)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    reason_extensions: dict[int | None, list[x509.Extension[x509.ExtensionType]]] = {}
    for code in (None, 0, *REASON_FLAGS):
        flag = reason_flag(code)
        reason_extensions[code] = [] if flag is None else [
            x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(flag))]
    revoked = [
        x509.RevokedCertificateBuilder(serial, datetime.fromtimestamp(revoked_at, UTC),
                                       reason_extensions.get(code, [])).build()
        for serial, revoked_at, code in entries]
    return (
        x509.CertificateRevocationListBuilder(
            issuer_name=ca.subject, last_update=params.this_update,
            next_update=params.next_update, revoked_certificates=revoked)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .add_extension(x509.CRLNumber(params.number), critical=False)
        .add_extension(x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(params.distribution_point)],
            relative_name=None, only_contains_user_certs=True, only_contains_ca_certs=False,
            only_some_reasons=None, indirect_crl=False, only_contains_attribute_certs=False),
            critical=True)
    )


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    """The hash the CA signs with; the same rule as the certificates it issues."""
    return hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()


def build_crl(key: CertificateIssuerPrivateKeyTypes, params: CrlParams, packed: bytes) -> bytes:
    """The signed CRL (DER) for the packed entries, in this process. Blocking: call it from a
    worker thread."""
    crl = _builder(params, unpack_entries(packed)).sign(key, signature_hash(key))
    return crl.public_bytes(serialization.Encoding.DER)


@functools.cache
def _throwaway_key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa":
        # Its signature is thrown away (see build_tbs), so its size does not matter.
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    return ec.generate_private_key(ec.SECP256R1())


def key_kind(key: CertificateIssuerPrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec"
    raise TypeError("the CA key must be RSA or EC")


def build_tbs(kind: str, params: CrlParams, packed: bytes) -> bytes:
    """The TBSCertList (DER) for the CA key of ``kind`` ("rsa" or "ec"). Runs in a child
    process; the throwaway key only gives the builder something to sign with, so the TBS names
    the same signature algorithm the CA key signs with (sha256WithRSAEncryption or
    ecdsa-with-SHA384). Its signature is discarded."""
    algorithm: hashes.SHA256 | hashes.SHA384 = hashes.SHA384() if kind == "ec" else (
        hashes.SHA256())
    crl = _builder(params, unpack_entries(packed)).sign(_throwaway_key(kind), algorithm)
    return crl.tbs_certlist_bytes


def sign_tbs(key: CertificateIssuerPrivateKeyTypes, tbs: bytes) -> bytes:
    """Sign a TBSCertList with the CA key and return the CertificateList (DER); the signature
    is verified with the CA's public key before it is used.

    :raises ValueError: the TBS names another algorithm than this key signs with.
    :raises cryptography.exceptions.InvalidSignature: the key made a bad signature.
    """
    parsed = asn1_crl.TbsCertList.load(tbs, strict=True)
    algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey):
        expected = f"{algorithm.name}_rsa"
        signature = key.sign(tbs, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        expected = f"{algorithm.name}_ecdsa"
        signature = key.sign(tbs, ec.ECDSA(algorithm))
    else:
        raise TypeError("the CA key must be RSA or EC")
    if parsed["signature"]["algorithm"].native != expected:
        raise ValueError("the TBSCertList names another signature algorithm")
    # Check the signature over the very bytes signed (a token can misbehave). Not through
    # CertificateRevocationList.is_signature_valid: that re-encodes every entry (0.45 s at
    # 100,000) while holding the GIL.
    public_key = key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, tbs, padding.PKCS1v15(), algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, tbs, ec.ECDSA(algorithm))
    der: bytes = asn1_crl.CertificateList({
        "tbs_cert_list": parsed, "signature_algorithm": parsed["signature"],
        "signature": signature}).dump()
    return der
