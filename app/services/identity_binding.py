"""The secrets behind a certificate's VID (KISA identity binding): R and the holder's RRN.

Both live only under the master-key layer (the KeyProtector), each bound to its row as
associated data: R to the certificate, the RRN to the person. They are wrapped before the
transaction that stores them (a token call never holds a transaction open) and never logged.
An issue knows the RRN and stores it for the person; a renewal or reissue, whose request has
no RRN, unwraps it to bind the successor with a new R. A person issued before this existed
has no stored RRN: such a successor carries no VID until the next issue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from app.domain.errors import DependencyUnavailable
from app.domain.ports import KeyProtector, UnitOfWork, UnitOfWorkFactory
from app.pki import vid

log = logging.getLogger(__name__)


def random_binding(certificate_id: str) -> bytes:
    """Associated data: a wrapped R opens only for its certificate's row."""
    return f"certcloud:vid-random:{certificate_id}".encode()


def rrn_binding(person_id: str) -> bytes:
    """Associated data: a wrapped RRN opens only for its person's row."""
    return f"certcloud:person-rrn:{person_id}".encode()


@dataclass(frozen=True)
class PreparedVid:
    """What a certificate about to be signed carries and what its activation stores."""

    certificate_id: str
    person_id: str
    san: x509.OtherName | None = field(repr=False)
    random_blob: tuple[str, bytes] | None = field(repr=False)
    rrn_blob: tuple[str, bytes] | None = field(repr=False)  # only when newly learnt


class IdentityBinding:
    def __init__(self, uow: UnitOfWorkFactory, protector: KeyProtector) -> None:
        self.uow, self.protector = uow, protector

    async def prepare(self, *, certificate_id: str, person_id: str, name: str,
                      rrn_digits: str | None) -> PreparedVid:
        """A new R for the certificate and its subjectAltName entry. Without ``rrn_digits``
        the person's stored RRN is used; with neither, no VID (``san`` None)."""
        rrn_blob = None
        if rrn_digits is None:
            rrn_digits = await self.rrn_of(person_id)
        else:
            rrn_blob = await self.protector.wrap(rrn_digits.encode(), rrn_binding(person_id))
        if rrn_digits is None:
            log.warning("no RRN on record for the person: the certificate carries no VID",
                        extra={"certificate_id": certificate_id})
            return PreparedVid(certificate_id, person_id, None, None, None)
        random_r = vid.new_random()
        san = vid.subject_alt_name(name, rrn_digits, random_r)
        random_blob = await self.protector.wrap(random_r, random_binding(certificate_id))
        return PreparedVid(certificate_id, person_id, san, random_blob, rrn_blob)

    @staticmethod
    async def store(uow: UnitOfWork, prepared: PreparedVid, now: datetime) -> None:
        """In the activating unit of work (under the person's row lock): the certificate's
        wrapped R, and the person's wrapped RRN when this request brought it."""
        if prepared.random_blob is not None:
            key_id, blob = prepared.random_blob
            await uow.identity.add_vid_random(prepared.certificate_id, master_key_id=key_id,
                                              wrapped=blob, now=now)
        if prepared.rrn_blob is not None:
            key_id, blob = prepared.rrn_blob
            await uow.identity.put_person_rrn(prepared.person_id, master_key_id=key_id,
                                              wrapped=blob, now=now)

    async def random_of(self, certificate_id: str) -> bytes | None:
        """The certificate's R, or None for a certificate without a VID.

        :raises DependencyUnavailable: ``key_store_error``, the blob does not open.
        """
        async with self.uow(write=False) as uow:
            stored = await uow.identity.vid_random(certificate_id)
        if stored is None:
            return None
        return await self._unwrap(*stored, random_binding(certificate_id))

    async def rrn_of(self, person_id: str) -> str | None:
        async with self.uow(write=False) as uow:
            stored = await uow.identity.person_rrn(person_id)
        if stored is None:
            return None
        return (await self._unwrap(*stored, rrn_binding(person_id))).decode()

    async def _unwrap(self, key_id: str, blob: bytes, binding: bytes) -> bytes:
        try:
            return await self.protector.unwrap(key_id, blob, binding)
        except ValueError:
            raise DependencyUnavailable("the key store cannot open this secret",
                                        code="key_store_error") from None
