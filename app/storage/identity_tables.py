"""Identity binding (KISA VID) secrets on the shared ``metadata``; migration 0010.

* ``vid_randoms``: each certificate's random R, wrapped by the KeyProtector (the master-key
  layer) with the certificate id as associated data; never stored in clear.
* ``person_rrns``: the holder's RRN, wrapped the same way with the person id, so a renewal or
  reissue (which has no RRN in its request) can make the successor's VID with a new R.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, LargeBinary, String, Table

from app.storage.tables import UtcDateTime, metadata

vid_randoms = Table(
    "vid_randoms", metadata,
    Column("certificate_id", String(36), ForeignKey("certificates.id"),
           primary_key=True),
    Column("master_key_id", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

person_rrns = Table(
    "person_rrns", metadata,
    Column("person_id", String(36), ForeignKey("persons.id"),
           primary_key=True),
    Column("master_key_id", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
