"""CMS SignedData (RFC 5652) with the CAdES-BES signed attributes (ETSI EN 319 122-1).

``cryptography``'s ``PKCS7SignatureBuilder`` cannot add signingCertificateV2, so the structure is
assembled with ``asn1crypto`` and only the signature itself comes from ``cryptography``:

* SignerIdentifier ``issuerAndSerialNumber`` (SignedData and SignerInfo version 1);
* signed attributes contentType (id-data), signingTime, messageDigest and
  signingCertificateV2 (ESS, RFC 5035) naming the signer certificate by SHA-256 hash and
  issuer/serial;
* the signature over the DER of the signed attributes as a SET OF (RFC 5652 §5.4), which
  ``asn1crypto`` sorts as DER requires;
* the signer certificate in ``certificates``; the content inside (attached) or left out
  (detached, RFC 5652 §5.2 ``eContent`` absent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from asn1crypto import algos, cms, core, tsp  # tsp registers signing_certificate_v2
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from app.pki.keys import UserPrivateKey
from app.pki.signing import (
    DIGEST_SIZES,
    HashName,
    Mechanism,
    Padding,
    SigningInputError,
    check_digest,
    check_mechanism,
    digest,
    sign_digest,
)

_ = tsp  # imported for its side effect: the attribute type is known to asn1crypto.cms


_A = TypeVar("_A", bound=core.Asn1Value)


def _frozen(value: _A) -> _A:
    """The same value re-loaded from its DER. asn1crypto re-encodes a freshly built (mutated)
    value again at every level it is nested in; a loaded one is copied as is. Freezing each
    part before nesting it takes a CMS structure from ~40 ms to ~2 ms."""
    return type(value).load(value.dump())


def signing_time(moment: datetime) -> cms.Time:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 §11.3)."""
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if 1950 <= moment.year < 2050:
        return cms.Time(name="utc_time", value=moment)
    return cms.Time(name="generalized_time", value=moment)


def signing_certificate_v2(certificate_der: bytes, issuer_der: bytes, serial: int
                           ) -> tsp.SigningCertificateV2:
    """ESSCertIDv2 with SHA-256 (the DEFAULT, so the algorithm is omitted in DER)."""
    issuer_serial = _frozen(tsp.IssuerSerial({
        "issuer": _frozen(asn1_x509.GeneralNames([
            asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(issuer_der))
        ])),
        "serial_number": serial,
    }))
    ess = _frozen(tsp.ESSCertIDv2({"cert_hash": hashlib.sha256(certificate_der).digest(),
                                   "issuer_serial": issuer_serial}))
    return _frozen(tsp.SigningCertificateV2({"certs": [ess]}))


def signature_algorithm(key: UserPrivateKey, mechanism: Mechanism
                        ) -> algos.SignedDigestAlgorithm:
    if mechanism.padding is Padding.PSS:
        hash_algo = algos.DigestAlgorithm({"algorithm": mechanism.hash_name})
        return algos.SignedDigestAlgorithm({
            "algorithm": "rsassa_pss",
            "parameters": algos.RSASSAPSSParams({
                "hash_algorithm": hash_algo,
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": hash_algo},
                "salt_length": DIGEST_SIZES[mechanism.hash_name],
            }),
        })
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{mechanism.hash_name}_ecdsa"})
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})


def build_signed_data(
    *, key: UserPrivateKey, certificate_der: bytes, mechanism: Mechanism, signed_at: datetime,
    content: bytes | None = None, content_digest: bytes | None = None, detached: bool = False,
    extra_certificates: Sequence[bytes] = (),
    stamp: Callable[[bytes, HashName], bytes] | None = None,
) -> bytes:
    """A DER ``ContentInfo`` holding CAdES-BES SignedData over ``content`` (or its digest).

    :param key: the signer's private key; it matches ``certificate_der``.
    :param mechanism: the digest algorithm, and for RSA the padding of the signature.
    :param signed_at: the signingTime attribute.
    :param content: the data; inside the structure unless ``detached``.
    :param content_digest: the digest of data the caller keeps; needs ``detached``.
    :param extra_certificates: DER certificates to add after the signer's (e.g. its CA).
    :param stamp: a time-stamper given the signature value and the digest algorithm, returning
        a DER TimeStampToken; it goes in the unsigned attribute id-aa-signatureTimeStampToken
        (CAdES-T, ETSI EN 319 122-1 §5.3).
    :raises SigningInputError: neither or both of content and digest, a digest of the wrong
        length, an attached signature without the content, or a mechanism the key cannot do.
    """
    if (content is None) == (content_digest is None):
        raise SigningInputError("give the content or its digest, not both")
    if content_digest is not None and not detached:
        raise SigningInputError("a signature over a digest alone must be detached")
    check_mechanism(key, mechanism)
    if content is not None:
        content_digest = digest(content, mechanism.hash_name)
    assert content_digest is not None
    check_digest(content_digest, mechanism.hash_name)

    parsed = x509.load_der_x509_certificate(certificate_der)
    issuer_der, serial = parsed.issuer.public_bytes(), parsed.serial_number
    signed_attrs = _frozen(cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [signing_time(signed_at)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [content_digest]}),
        cms.CMSAttribute({"type": "signing_certificate_v2",
                          "values": [signing_certificate_v2(certificate_der, issuer_der,
                                                            serial)]}),
    ]))
    # RFC 5652 §5.4: the signature covers the DER of the attributes with the SET OF tag.
    attrs_digest = digest(signed_attrs.dump(), mechanism.hash_name)
    signature = sign_digest(key, attrs_digest, mechanism)
    unsigned: dict[str, object] = {}
    if stamp is not None:
        token = cms.ContentInfo.load(stamp(signature, mechanism.hash_name))
        unsigned["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute(
            {"type": "signature_time_stamp_token", "values": [token]})])

    digest_algorithm = algos.DigestAlgorithm({"algorithm": mechanism.hash_name})
    signer_info = _frozen(cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": asn1_x509.Name.load(issuer_der), "serial_number": serial}),
        "digest_algorithm": digest_algorithm,
        "signed_attrs": signed_attrs,
        "signature_algorithm": signature_algorithm(key, mechanism),
        "signature": signature,
        **unsigned,
    }))
    # Freshly loaded, untouched objects: asn1crypto then copies their DER as is instead of
    # re-encoding the whole certificate (which costs tens of milliseconds).
    certificates = [cms.CertificateChoices(name="certificate",
                                           value=asn1_x509.Certificate.load(der))
                    for der in (certificate_der, *extra_certificates)]
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [digest_algorithm],
        "encap_content_info": {
            "content_type": "data",
            "content": None if detached else content,
        },
        "certificates": certificates,
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
