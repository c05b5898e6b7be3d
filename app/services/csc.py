"""The Cloud Signature Consortium API v1 (1.0.4.0) use cases: credentials and SCAL 2 signing.

``credentials/authorize`` takes the PIN and the hashes, checks the PIN by opening the key (a
wrong PIN counts towards the lockout), makes the raw signatures at once, and drops the key. The
signatures are kept, encrypted under a key derived from the Signature Activation Data (SAD), in
a database row bound to the credential, the bank client, exactly those hashes and an expiry.
``signatures/signHash`` hands them out once: the row is consumed by a conditional update, so
a SAD is single-use across any number of replicas. Neither the SAD nor a private key is ever
stored; a database reader without the SAD learns nothing usable.

Why sign at authorisation: with SCAL 2 the hashes are fixed by the SAD, so the signatures are
determined there already, and the key never has to exist outside one request (the alternative,
keeping a re-wrapped key until ``signHash``, would leave key material at rest). The cost is that
the signature algorithm must be fixed at authorisation: PKCS#1 v1.5 for RSA and ECDSA for EC
keys, with the digest algorithm given by the hash length. ``credentials/info`` advertises only
those, so RSASSA-PSS is offered on ``/v1/…/signatures`` but not over CSC.

CSC signatures never renew the certificate: the client has already put this certificate into
the signed attributes it hashed, and renewing would revoke it under the signature being made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.domain.certificates import Certificate, CertificateStatus
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.identity import check_pin_format
from app.domain.ports import Clock, UnitOfWorkFactory
from app.domain.records import StoredSad
from app.pki.signing import (
    Mechanism,
    SigningInputError,
    csc_signature_algorithms,
    hash_name_for_size,
    mechanism_for_csc,
)
from app.services.certificates import CertificateService
from app.services.lookup import LookupService
from app.services.signing import MAX_BATCH, SigningService

log = logging.getLogger(__name__)

SAD_LIFETIME = timedelta(minutes=5)
MAX_HASHES = MAX_BATCH  # credentials/info "multisign"
_PURGE_AFTER = timedelta(hours=1)  # expired SAD rows are deleted this long after expiry
_NONCE = 12


class CscRequestError(InvalidInput):
    """A CSC request the standard calls ``invalid_request``; ``detail`` is its description."""


@dataclass(frozen=True)
class Credential:
    """A credential as ``credentials/info`` describes it."""

    certificate: Certificate
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    parsed: x509.Certificate
    status: CertificateStatus

    @property
    def key_enabled(self) -> bool:
        return self.status is CertificateStatus.ACTIVE and not self.certificate.locked

    @property
    def algorithms(self) -> list[str]:
        return csc_signature_algorithms(self.public_key)

    @property
    def key_bits(self) -> int:
        return self.public_key.key_size if isinstance(self.public_key, rsa.RSAPublicKey) \
            else self.public_key.curve.key_size

    @property
    def curve_oid(self) -> str | None:
        if isinstance(self.public_key, ec.EllipticCurvePublicKey):
            return {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34",
                    "secp521r1": "1.3.132.0.35"}.get(self.public_key.curve.name)
        return None


@dataclass(frozen=True)
class Authorization:
    sad: str
    expires_in: int


def decode_hashes(values: Sequence[str]) -> list[bytes]:
    """Standard base64, strictly.

    :raises CscRequestError: a value that is not base64.
    """
    decoded = []
    for value in values:
        try:
            decoded.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise CscRequestError("Invalid Base64 hash string parameter",
                                  code="base64_invalid") from None
    return decoded


def _sad_id(sad: str) -> str:
    return hashlib.sha256(sad.encode()).hexdigest()


def _sad_cipher(sad: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"certcloud:csc:sad-signatures").derive(sad.encode())
    return AESGCM(key)


def _binding(sad_id: str, credential_id: str, client_id: str) -> bytes:
    return f"certcloud:csc-sad:{sad_id}:{credential_id}:{client_id}".encode()


class CscService:
    def __init__(self, uow: UnitOfWorkFactory, certificates: CertificateService,
                 signing: SigningService, lookup: LookupService, clock: Clock) -> None:
        self.uow, self.certificates, self.signing, self.clock = uow, certificates, signing, clock
        self.lookup = lookup

    # --- credentials ---------------------------------------------------------------------

    async def list_credentials(self, *, client_id: str, user_id: str) -> list[str]:
        """``credentials/list``: the person's active credential (by RRN), if any; limited
        and audited as every lookup by RRN is.

        :raises RateLimited: the client's lookups of this minute are used up.
        """
        try:
            found = await self.lookup.lookup(client_id=client_id, rrn=user_id, via="csc")
        except InvalidInput:
            raise CscRequestError("Invalid parameter userID", code="user_id_invalid") from None
        now = self.clock.now()
        return [c.id for c in found if c.status_at(now) is CertificateStatus.ACTIVE]

    async def credential(self, credential_id: str) -> Credential:
        """:raises CscRequestError: no such credential."""
        try:
            certificate = await self.certificates.get(credential_id)
        except NotFound:
            raise CscRequestError("Invalid parameter credentialID",
                                  code="credential_invalid") from None
        parsed = x509.load_der_x509_certificate(certificate.certificate_der)
        public_key = parsed.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        return Credential(certificate, public_key, parsed,
                          certificate.status_at(self.clock.now()))

    # --- authorize and signHash ----------------------------------------------------------

    async def authorize(self, *, client_id: str, credential_id: str, pin: str,
                        num_signatures: int, hashes_b64: Sequence[str]) -> Authorization:
        """``credentials/authorize`` at SCAL 2: PIN + hashes -> a SAD for exactly those.

        :raises CscRequestError: bad parameters, a malformed PIN included (nothing is tried,
            counted or signed).
        :raises PinInvalid: wrong PIN (counted); ``PinLocked``; ``Conflict``: revoked/expired.
        :raises RateLimited: the certificate's signatures of this minute are used up.
        """
        try:
            check_pin_format(pin)
        except InvalidInput:
            raise CscRequestError("Invalid parameter PIN: it must be 6 digits",
                                  code="pin_malformed") from None
        if num_signatures < 1:
            raise CscRequestError("Invalid value for parameter numSignatures",
                                  code="num_signatures_invalid")
        if num_signatures > MAX_HASHES or len(hashes_b64) > MAX_HASHES:
            raise CscRequestError("Numbers of signatures is too high", code="too_many_items")
        if not hashes_b64:
            raise CscRequestError("Missing (or invalid type) array parameter hash",
                                  code="hash_required")
        if len(hashes_b64) != num_signatures:
            raise CscRequestError("numSignatures must equal the number of hash values",
                                  code="num_signatures_invalid")
        digests = decode_hashes(hashes_b64)
        sizes = {len(value) for value in digests}
        try:
            if len(sizes) != 1:
                raise SigningInputError("mixed hash lengths")
            hash_name = hash_name_for_size(sizes.pop())
        except SigningInputError:
            raise CscRequestError("Invalid hash length: the hash values must all be SHA-256, "
                                  "SHA-384 or SHA-512 digests",
                                  code="digest_length_invalid") from None
        credential = await self.credential(credential_id)  # unknown -> invalid_request
        certificate, signatures = await self.signing.sign_digests(
            client_id=client_id, certificate_id=credential.certificate.id, pin=pin, digests=digests,
            mechanism=Mechanism(hash_name))

        now = self.clock.now()
        sad = secrets.token_urlsafe(32)
        sad_id = _sad_id(sad)
        nonce = os.urandom(_NONCE)
        plain = json.dumps([base64.b64encode(s).decode() for s in signatures]).encode()
        sealed = nonce + _sad_cipher(sad).encrypt(
            nonce, plain, _binding(sad_id, certificate.id, client_id))
        canonical = json.dumps([base64.b64encode(d).decode() for d in digests])
        async with self.uow() as uow:
            await uow.sads.purge(now - _PURGE_AFTER)
            await uow.sads.add(sad_id=sad_id, credential_id=certificate.id,
                               client_id=client_id, hash_algorithm=hash_name, hashes=canonical,
                               sealed=sealed, now=now, expires_at=now + SAD_LIFETIME)
            await uow.commit()
        log.info("CSC authorization", extra={"certificate_id": certificate.id,
                                             "client_id": client_id, "count": len(digests)})
        return Authorization(sad, int(SAD_LIFETIME.total_seconds()))

    async def sign_hash(self, *, client_id: str, credential_id: str, sad: str,
                        hashes_b64: Sequence[str], sign_algo: str, hash_algo: str | None,
                        sign_algo_params: str | None) -> list[bytes]:
        """``signatures/signHash``: the signatures for ``hash`` in its order, once per SAD.

        Every check runs before the SAD is consumed, so a mistaken call leaves it usable; the
        SAD of another bank or credential is refused without touching it.

        :raises CscRequestError: an unknown, used, expired or foreign SAD; hashes it does not
            cover; an algorithm that does not fit them; a credential no longer usable.
        """
        if not hashes_b64:
            raise CscRequestError("Missing (or invalid type) array parameter hash",
                                  code="hash_required")
        if len(hashes_b64) > MAX_HASHES:
            raise CscRequestError("Numbers of signatures is too high", code="too_many_items")
        requested = decode_hashes(hashes_b64)
        now = self.clock.now()
        sad_id = _sad_id(sad)
        async with self.uow(write=False) as uow:
            stored = await uow.sads.get(sad_id)
        if stored is None or stored.client_id != client_id \
                or stored.credential_id != credential_id:
            raise CscRequestError("Invalid parameter SAD", code="sad_invalid")
        if stored.used_at is not None or stored.sealed is None:
            raise CscRequestError("The SAD was already used", code="sad_used")
        if now >= stored.expires_at:
            raise CscRequestError("SAD expired", code="sad_expired")
        authorized = [base64.b64decode(h) for h in json.loads(stored.hashes)]
        if Counter(requested) - Counter(authorized):
            raise CscRequestError("Invalid parameter hash: not authorized by this SAD",
                                  code="hash_not_authorized")
        credential = await self.credential(credential_id)
        if sign_algo_params:
            raise CscRequestError("Invalid parameter signAlgoParams",
                                  code="sign_algo_params_invalid")
        try:
            mechanism = mechanism_for_csc(credential.public_key, sign_algo, hash_algo)
        except SigningInputError as exc:
            raise CscRequestError(f"Invalid parameter signAlgo or hashAlgo: {exc}",
                                  code="algorithm_invalid") from None
        if mechanism.hash_name != stored.hash_algorithm:
            raise CscRequestError(
                f"Invalid hash length: the hash values are {stored.hash_algorithm} digests, "
                f"not {mechanism.hash_name}", code="digest_length_invalid")
        if not credential.key_enabled:
            raise Conflict(f"the credential is {self._state(credential)}",
                           code="credential_unusable")

        async with self.uow() as uow:
            consumed = await uow.sads.consume(
                sad_id, credential_id=credential_id, client_id=client_id, now=now)
            await uow.commit()
        if not consumed:  # another replica used it in the meantime, or it just expired
            raise CscRequestError("Invalid parameter SAD", code="sad_invalid")
        signatures = self._open(stored, sad)
        by_hash: dict[bytes, list[bytes]] = {}
        for value, signature in zip(authorized, signatures, strict=True):
            by_hash.setdefault(value, []).append(signature)
        log.info("CSC signHash", extra={"certificate_id": credential_id,
                                        "client_id": client_id, "count": len(requested)})
        return [by_hash[value].pop(0) for value in requested]

    @staticmethod
    def _state(credential: Credential) -> str:
        if credential.status is not CertificateStatus.ACTIVE:
            return credential.status.value
        return "locked"

    @staticmethod
    def _open(stored: StoredSad, sad: str) -> list[bytes]:
        assert stored.sealed is not None
        nonce, body = stored.sealed[:_NONCE], stored.sealed[_NONCE:]
        plain = _sad_cipher(sad).decrypt(
            nonce, body, _binding(stored.id, stored.credential_id, stored.client_id))
        return [base64.b64decode(s) for s in json.loads(plain)]


def generalized_time(moment: datetime) -> str:
    """CSC ``validFrom``/``validTo``: GeneralizedTime text, YYYYMMDDHHMMSSZ."""
    return moment.strftime("%Y%m%d%H%M%SZ")
