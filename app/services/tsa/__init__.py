"""The RFC 3161 time-stamping authority: its signer (key and certificate) and the replies."""

from app.services.tsa.service import Stamper, TimeStampService

__all__ = ["Stamper", "TimeStampService"]
