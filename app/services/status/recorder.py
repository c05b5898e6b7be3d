"""The port the certificate use cases revoke and issue through."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


class RevocationRecorder(Protocol):
    """What the certificate use cases call when they revoke or issue.

    ``record`` runs inside the revoking transaction with its connection; ``publish`` runs
    after the commit and before the reply; ``presign`` after an issuance has committed.
    """

    async def record(self, conn: AsyncConnection, certificate_id: str) -> int | None: ...

    async def publish(self, generation: int | None) -> None: ...

    async def presign(self, serial: str) -> None: ...


class _NoRecorder:
    async def record(self, conn: AsyncConnection, certificate_id: str) -> int | None:
        return None

    async def publish(self, generation: int | None) -> None:
        return None

    async def presign(self, serial: str) -> None:
        return None


NO_RECORDER: RevocationRecorder = _NoRecorder()
