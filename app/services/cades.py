"""What CMS signatures carry besides CAdES-BES: the CA certificates below the root (so a
relying party holding only the root builds the path) and, on request, a signature time-stamp
from the built-in TSA (CAdES-T)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from app.domain.errors import DependencyUnavailable
from app.pki.ca import CertificateAuthority
from app.services.tsa import Stamper, TimeStampService


@dataclass(frozen=True)
class CmsExtras:
    chain_der: tuple[bytes, ...] = ()
    timestamps: TimeStampService | None = None

    @classmethod
    def of(cls, ca: CertificateAuthority, timestamps: TimeStampService | None) -> CmsExtras:
        return cls(tuple(c.public_bytes(serialization.Encoding.DER) for c in ca.below_root),
                   timestamps)

    async def stamper(self, wanted: bool) -> Stamper | None:
        """The time-stamper for this request (None when not asked for).

        :raises DependencyUnavailable: asked for, and no TSA certificate is valid now.
        """
        if not wanted:
            return None
        stamper = None if self.timestamps is None else await self.timestamps.stamper()
        if stamper is None:
            raise DependencyUnavailable("the time-stamping authority cannot sign now; retry",
                                        code="timestamp_unavailable")
        return stamper
