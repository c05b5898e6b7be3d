"""The CA as the use cases see it: make a key pair, sign its certificate."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.domain.serials import serial_hex
from app.pki.ca import CertificateAuthority, Profile, issue_end_entity, subject_for
from app.pki.keys import KeyAlgorithm, UserPrivateKey, generate_user_key

__all__ = ["Issuer", "SignedCertificate", "serial_hex"]  # serial_hex: app.domain.serials


@dataclass(frozen=True)
class SignedCertificate:
    serial: str
    der: bytes


class Issuer:
    def __init__(self, ca: CertificateAuthority, profile: Profile,
                 key_algorithm: KeyAlgorithm) -> None:
        self.ca, self.profile, self.key_algorithm = ca, profile, key_algorithm

    async def new_key(self) -> UserPrivateKey:
        return await asyncio.to_thread(generate_user_key, self.key_algorithm)

    @staticmethod
    def new_serial() -> int:
        return x509.random_serial_number()  # 159 random bits, positive

    async def sign(self, *, key: UserPrivateKey, name: str, person_id: str, serial: int,
                   not_before: datetime, not_after: datetime,
                   identify_data: x509.OtherName | None = None) -> bytes:
        certificate = await asyncio.to_thread(
            issue_end_entity, self.ca, self.profile, public_key=key.public_key(),
            subject=subject_for(name, person_id), serial=serial, not_before=not_before,
            not_after=not_after, identify_data=identify_data)
        return certificate.public_bytes(serialization.Encoding.DER)


def pem_of(der: bytes) -> str:
    return ssl.DER_cert_to_PEM_cert(der) if der else ""
