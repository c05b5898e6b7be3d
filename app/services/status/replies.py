"""What the status service hands the HTTP edge: an OCSP reply and the served CRL.

Both say what they are, not how HTTP carries them: the edge (``app/routers/ocsp_headers.py``)
renders their headers once per object and keeps the rendering in ``wire``, so a reply served
again from memory costs no formatting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.records import CrlMeta


@dataclass(slots=True)
class OcspReply:
    """An OCSP response and what it says (``label``: good, revoked, unknown, several, or the
    error status). ``max_age`` is how long a relying party may cache it (RFC 5019 §6.2, never
    past ``next_update``); None: not at all (a nonce, an error status)."""

    der: bytes
    label: str
    this_update: datetime | None = None
    next_update: datetime | None = None
    max_age: int | None = None
    wire: Any = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class CrlCopy:
    """The stored CRL as served."""

    meta: CrlMeta
    der: bytes
    wire: Any = field(default=None, compare=False, repr=False)
