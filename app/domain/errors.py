"""The one internal error type. The HTTP edge maps each kind to a problem+json status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. ``code`` is a stable machine word; ``detail`` is safe to show a client."""

    kind = "invalid"
    code = "invalid_request"
    title = "Invalid request"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    kind = "invalid"
    code = "invalid_request"
    title = "Invalid request"


class NotFound(DomainError):
    kind = "not_found"
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    kind = "conflict"
    code = "conflict"
    title = "Conflict"


class PinInvalid(DomainError):
    kind = "pin_invalid"
    code = "pin_invalid"
    title = "Wrong PIN"


class PinLocked(DomainError):
    kind = "pin_locked"
    code = "pin_locked"
    title = "Certificate locked"


class Unauthenticated(DomainError):
    kind = "unauthenticated"
    code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(DomainError):
    kind = "forbidden"
    code = "forbidden"
    title = "Forbidden"


class RateLimited(DomainError):
    kind = "rate_limited"
    code = "rate_limited"
    title = "Too many requests"


class DependencyUnavailable(DomainError):
    kind = "unavailable"
    code = "dependency_unavailable"
    title = "Service unavailable"
