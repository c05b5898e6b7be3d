"""The plain records storage hands the use cases (beside the domain's own entities)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.certificates import StoredState


class PinCheckSlot(enum.Enum):
    RESERVED = "reserved"
    BUSY = "busy"  # as many checks in flight as tries left: wait for one to settle
    LOCKED = "locked"


class CodeTry(enum.Enum):
    """What taking a try of a verification code found."""

    TAKEN = "taken"
    REFUSED = "refused"  # no longer pending (verified, failed, used) or expired


@dataclass(frozen=True)
class CertificateState:
    """What status answers need of a certificate row."""

    serial: str
    state: StoredState
    not_after: datetime
    revoked_at: datetime | None
    revocation_reason: int | None


@dataclass(frozen=True)
class Change:
    generation: int
    kind: str
    detail: str | None


@dataclass(frozen=True)
class CrlMeta:
    number: int
    generation: int
    this_update: datetime
    next_update: datetime
    entries: int
    sha256: str


@dataclass(frozen=True)
class StoredSad:
    id: str
    credential_id: str
    client_id: str
    hash_algorithm: str
    hashes: str
    sealed: bytes | None
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class OutboxNotice:
    id: str
    phone: str
    text: str


@dataclass(frozen=True)
class AuditRow:
    """One stored row of the audit chain (``details`` as stored: canonical JSON)."""

    seq: int
    occurred_at: datetime
    client_id: str | None
    action: str
    certificate_id: str | None
    result: str
    details: str
    prev_hash: str
    hash: str
    key_id: str


@dataclass(frozen=True)
class BlobMove:
    """A blob rewrapped under a new master key, to replace the one read (if still there)."""

    row_id: str
    old_key_id: str
    old_blob: bytes = field(repr=False)
    new_key_id: str
    new_blob: bytes = field(repr=False)


@dataclass(frozen=True)
class MasterKeyInfo:
    """One master key as ``certcloud keys status`` shows it."""

    id: str
    location: str  # "local" or "pkcs11"
    created_at: datetime | None
    current: bool
