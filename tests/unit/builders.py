"""Rows for the fakes: a certificate, a verification (tests/unit only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.certificates import VALIDITY, Certificate, StoredState
from app.domain.verification import CODE_TTL, Channel, Purpose, Verification, VerificationStatus
from tests.unit.fakes import CertificateRow, FakeStore

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def add_certificate(store: FakeStore, certificate_id: str = "c1", *, person_id: str = "p1",
                    serial: str = "0a1b", lineage_of: str | None = None,
                    issued: datetime = NOW - timedelta(days=30)) -> CertificateRow:
    row = CertificateRow(
        Certificate(id=certificate_id, person_id=person_id, serial=serial,
                    state=StoredState.ACTIVE, not_before=issued, not_after=issued + VALIDITY,
                    certificate_der=b"", issued_by_client="bank", replaces_id=lineage_of,
                    revocation_reason=None, revoked_at=None, wrong_pins=0),
        pin_lineage_id=lineage_of)
    store.certificates[certificate_id] = row
    return row


def add_verification(store: FakeStore, verification_id: str = "v1", *,
                     client_id: str = "bank", phone: str = "+821012345678",
                     purpose: Purpose | None = Purpose.REVOKE,
                     status: VerificationStatus = VerificationStatus.VERIFIED) -> Verification:
    verification = Verification(
        id=verification_id, client_id=client_id, phone=phone, channel=Channel.SMS,
        purpose=purpose, status=status, wrong_codes=0, created_at=NOW - timedelta(minutes=1),
        expires_at=NOW - timedelta(minutes=1) + CODE_TTL,
        verified_at=NOW - timedelta(seconds=30) if status is VerificationStatus.VERIFIED
        else None, used_at=None)
    store.verifications[verification_id] = (verification, "code-hash")
    return verification
