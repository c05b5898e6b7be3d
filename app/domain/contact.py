"""The contact data on record for a person, and what a change of it keeps of the old."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.verification import PreviousPhone


@dataclass(frozen=True)
class ContactOnRecord:
    name: str
    phone: str
    email: str
    # The phone (and the name that went with it) that the current phone replaced.
    previous_phone: str | None = None
    previous_name: str | None = None
    phone_replaced_at: datetime | None = None

    @property
    def previous(self) -> PreviousPhone | None:
        if self.previous_phone is None or self.phone_replaced_at is None:
            return None
        return PreviousPhone(self.previous_phone, self.phone_replaced_at)

    def changed_to(self, *, name: str, phone: str, email: str, now: datetime
                   ) -> ContactOnRecord:
        """The record after an issuance (or a take-back) gave these contact data.

        A new phone keeps the one it replaces as the previous phone, unless an earlier
        previous phone still counts: a second change inside the grace period must not wipe
        the person's way back. Returning to the previous phone clears it.
        """
        if phone == self.phone:
            return replace(self, name=name, email=email)
        if phone == self.previous_phone:
            return ContactOnRecord(name, phone, email)
        previous = self.previous
        if previous is not None and previous.counts_at(now):
            return replace(self, name=name, phone=phone, email=email)
        return ContactOnRecord(name, phone, email, previous_phone=self.phone,
                               previous_name=self.name, phone_replaced_at=now)



def contact_on_record(person: Any) -> ContactOnRecord:
    """The contact data of a stored person (any record with the person's columns)."""
    return ContactOnRecord(person.name, person.phone, person.email,
                           previous_phone=person.previous_phone,
                           previous_name=person.previous_name,
                           phone_replaced_at=person.phone_replaced_at)
