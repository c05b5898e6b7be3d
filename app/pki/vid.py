"""KISA identity binding (KCAC.TS.SIVID): the VID in a certificate's subjectAltName.

The certificate names its holder by a *virtual* identifier, never the resident registration
number itself::

    otherName ::= { type-id id-kisa-identifyData (1.2.410.200004.10.1.1),
                    value [0] EXPLICIT IdentifyData }
    IdentifyData ::= SEQUENCE { realName UTF8String,
                                userInfos SEQUENCE OF AttributeTypeAndValue }
    -- each userInfo: { type id-VID (1.2.410.200004.10.1.1.1), value VID }
    VID ::= SEQUENCE { hashAlg AlgorithmIdentifier, virtualID OCTET STRING }
    virtualID = H(H(DER(HashContent))),
    HashContent ::= SEQUENCE { idn PrintableString, randomNum BIT STRING }

with H = SHA-256 (named in hashAlg), idn the 13 RRN digits and randomNum R, 20 random bytes
made for each certificate. Whoever holds R and the RRN recomputes the VID; the certificate alone
reveals neither. The userInfos are AttributeTypeAndValue pairs, as Korean relying-party
libraries read them. Some of those libraries also accept virtualID inside a [0] EXPLICIT tag;
it is left untagged here, as the VID definition above has it, because generic DER parsers
(asn1crypto, and so pyHanko's path validation) cannot read an unknown context tag in an
otherName value.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from asn1crypto import algos, core
from cryptography import x509

ID_KISA_IDENTIFY_DATA = "1.2.410.200004.10.1.1"
ID_VID = "1.2.410.200004.10.1.1.1"
R_SIZE = 20
_SHA256 = "sha256"


class HashContent(core.Sequence):
    _fields = [("idn", core.PrintableString), ("random_num", core.OctetBitString)]


class Vid(core.Sequence):
    _fields = [("hash_alg", algos.DigestAlgorithm),
               ("virtual_id", core.OctetString)]


class UserInfo(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any)]


class UserInfos(core.SequenceOf):
    _child_spec = UserInfo


class IdentifyData(core.Sequence):
    _fields = [("real_name", core.UTF8String), ("user_infos", UserInfos)]


def new_random() -> bytes:
    """R: 20 random bytes for one certificate."""
    return secrets.token_bytes(R_SIZE)


def virtual_id(rrn_digits: str, random_r: bytes) -> bytes:
    """SHA-256(SHA-256(DER(HashContent { idn, randomNum })))."""
    content = HashContent({"idn": rrn_digits, "random_num": random_r})
    return hashlib.sha256(hashlib.sha256(content.dump()).digest()).digest()


def identify_data(real_name: str, rrn_digits: str, random_r: bytes) -> bytes:
    """The DER IdentifyData for the otherName's value."""
    vid = Vid({"hash_alg": algos.DigestAlgorithm({"algorithm": _SHA256}),
               "virtual_id": virtual_id(rrn_digits, random_r)})
    return IdentifyData({"real_name": real_name,
                         "user_infos": [{"type": ID_VID, "value": core.Any.load(vid.dump())}]
                         }).dump()


def subject_alt_name(real_name: str, rrn_digits: str, random_r: bytes) -> x509.OtherName:
    """The subjectAltName entry (``cryptography`` wraps the value in the [0] EXPLICIT tag)."""
    return x509.OtherName(x509.ObjectIdentifier(ID_KISA_IDENTIFY_DATA),
                          identify_data(real_name, rrn_digits, random_r))


def certificate_vid(certificate: x509.Certificate) -> tuple[str, bytes] | None:
    """The (hash algorithm, virtualID) in the certificate, or None if it carries no VID."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id.dotted_string != ID_KISA_IDENTIFY_DATA:
            continue
        try:
            data = IdentifyData.load(name.value)
            for info in data["user_infos"]:
                if info["type"].dotted == ID_VID:
                    vid = Vid.load(info["value"].dump())
                    return vid["hash_alg"]["algorithm"].native, vid["virtual_id"].native
        except (ValueError, TypeError, KeyError):
            return None
    return None


def matches(certificate: x509.Certificate, rrn_digits: str, random_r: bytes) -> bool:
    """Whether the certificate's VID is the one this RRN and R make (constant-time compare)."""
    found = certificate_vid(certificate)
    if found is None or found[0] != _SHA256:
        return False
    return hmac.compare_digest(found[1], virtual_id(rrn_digits, random_r))
