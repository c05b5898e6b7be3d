"""The RFC 3161 time-stamping authority: its signer (key and certificate) and the replies."""

from app.pki.tsp import MAX_REQUEST_BYTES  # the route refuses more before reading on
from app.services.tsa.service import Stamper, TimeStampService

__all__ = ["MAX_REQUEST_BYTES", "Stamper", "TimeStampService"]
