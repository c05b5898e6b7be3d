"""Every table module, so that ``metadata`` describes the whole schema."""

from app.storage import csc_tables as csc_tables
from app.storage import identity_tables as identity_tables
from app.storage import ops_tables as ops_tables
from app.storage import status_tables as status_tables
from app.storage import tsa_tables as tsa_tables
from app.storage.tables import metadata as metadata

__all__ = ["metadata"]
