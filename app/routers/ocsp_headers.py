"""The HTTP form of status replies: RFC 5019 §6.2 caching headers and ETags, and the raw ASGI
header lists of the fast lane.

Each reply object is rendered once, on its first use, and keeps the rendering (``wire``): a
reply served again from the status service's memory costs no formatting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from app.security_headers import SECURITY_HEADERS
from app.services.status import CrlCopy, OcspReply

_NO_STORE = {"Cache-Control": "no-store"}


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@dataclass(frozen=True, slots=True)
class OcspWire:
    """The extra headers of a GET reply and its ETag; the full ASGI header lists of a POST
    and of a GET reply."""

    headers: dict[str, str]
    etag: str | None
    post_raw: list[tuple[bytes, bytes]] = field(repr=False)
    get_raw: list[tuple[bytes, bytes]] = field(repr=False)


@dataclass(frozen=True, slots=True)
class CrlWire:
    headers: dict[str, str]
    etag: str


def ocsp_wire(reply: OcspReply) -> OcspWire:
    """The reply's rendering, made on first use (call as ``reply.wire or ocsp_wire(reply)``)."""
    if reply.max_age is None or reply.this_update is None or reply.next_update is None:
        headers, etag = dict(_NO_STORE), None
    else:
        etag = '"' + hashlib.sha256(reply.der).hexdigest()[:40] + '"'
        headers = {
            "Cache-Control": f"max-age={reply.max_age}, public, no-transform, must-revalidate",
            "Last-Modified": http_date(reply.this_update),
            "Expires": http_date(reply.next_update), "ETag": etag,
        }
    post_raw = [(b"content-type", b"application/ocsp-response"),
                (b"content-length", str(len(reply.der)).encode()), *SECURITY_HEADERS]
    wire = OcspWire(headers, etag, post_raw, post_raw + [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.items()])
    reply.wire = wire
    return wire


def crl_wire(copy: CrlCopy) -> CrlWire:
    """The CRL's headers, made on first use (call as ``copy.wire or crl_wire(copy)``)."""
    meta = copy.meta
    etag = f'"{meta.sha256[:40]}"'
    wire = CrlWire({"ETag": etag, "Last-Modified": http_date(meta.this_update),
                    "Expires": http_date(meta.next_update),
                    "Cache-Control": "public, no-cache"}, etag)
    copy.wire = wire
    return wire
