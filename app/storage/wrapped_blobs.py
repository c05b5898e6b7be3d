"""Every table that holds blobs wrapped under a master key, for rotation (app.services.rotation).

Each read is one short transaction and each batch of moves one transaction of conditional
updates (one executemany) with a read-back, so a crash loses at most the batch in flight and a
PIN change that lands meanwhile is never overwritten. Counts also cover, as unregistered, any
other table with a ``master_key_id`` column, so no key such a table still uses is retired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, select, update

from app.domain.records import BlobMove
from app.storage.db import Database
from app.storage.schema import metadata


@dataclass(frozen=True)
class BlobTable:
    """A table that holds wrapped blobs: its primary key, key id and blob columns, and the
    associated data each blob was wrapped with (from the row's id)."""

    name: str
    table: Table
    id_column: str
    key_id_column: str
    blob_column: str
    binding: Callable[[str], bytes]


class SqlWrappedBlobs:
    def __init__(self, db: Database, tables: Sequence[BlobTable]) -> None:
        self.db, self._tables = db, {table.name: table for table in tables}
        self.names: Sequence[str] = [table.name for table in tables]

    def binding(self, store: str, row_id: str) -> bytes:
        return self._tables[store].binding(row_id)

    def _counted(self) -> list[tuple[str, Table, str, str | None]]:
        counted: list[tuple[str, Table, str, str | None]] = [
            (t.name, t.table, t.key_id_column, t.blob_column) for t in self._tables.values()]
        covered = {(t.table.name, t.key_id_column) for t in self._tables.values()}
        for table in metadata.sorted_tables:
            if "master_key_id" in table.c and (table.name, "master_key_id") not in covered:
                counted.append((f"{table.name}.master_key_id (unregistered)", table,
                                "master_key_id", None))
        return counted

    async def counts(self) -> dict[str, dict[str, int]]:
        """Blobs per key id, per store (unregistered tables too), in one read."""
        counts: dict[str, dict[str, int]] = {}
        async with self.db.transaction(write=False) as conn:
            for name, table, key_column, blob_column in self._counted():
                key_col = table.c[key_column]
                query = select(key_col, func.count()).where(key_col.is_not(None))
                if blob_column is not None:
                    query = query.where(table.c[blob_column].is_not(None))
                rows = (await conn.execute(query.group_by(key_col))).all()
                counts[name] = {row[0]: int(row[1]) for row in rows}
        return counts

    async def count_not_on(self, target: str) -> int:
        total = 0
        async with self.db.transaction(write=False) as conn:
            for t in self._tables.values():
                table = t.table
                total += int((await conn.execute(
                    select(func.count()).select_from(table).where(
                        table.c[t.key_id_column].is_not(None),
                        table.c[t.key_id_column] != target,
                        table.c[t.blob_column].is_not(None)))).scalar_one())
        return total

    async def batch_not_on(self, store: str, target: str, after_id: str, limit: int
                           ) -> list[tuple[str, str, bytes]]:
        """(id, key id, blob) of up to ``limit`` rows after ``after_id`` not on ``target``."""
        t = self._tables[store]
        id_col = t.table.c[t.id_column]
        key_col, blob_col = t.table.c[t.key_id_column], t.table.c[t.blob_column]
        async with self.db.transaction(write=False) as conn:
            rows = (await conn.execute(
                select(id_col, key_col, blob_col)
                .where(key_col.is_not(None), key_col != target, blob_col.is_not(None),
                       id_col > after_id)
                .order_by(id_col).limit(limit))).all()
        return [(str(row[0]), str(row[1]), bytes(row[2])) for row in rows]

    async def move(self, store: str, moves: Sequence[BlobMove]) -> int:
        """Each move applies only if the row still holds the blob read; returns how many
        did (the read-back tells them from the rows someone changed meanwhile)."""
        t = self._tables[store]
        id_col = t.table.c[t.id_column]
        key_col, blob_col = t.table.c[t.key_id_column], t.table.c[t.blob_column]
        params: list[dict[str, Any]] = [
            {"b_id": m.row_id, "b_old_key": m.old_key_id, "b_old_blob": m.old_blob,
             "b_new_key": m.new_key_id, "b_new_blob": m.new_blob} for m in moves]
        statement = (update(t.table)
                     .where(and_(id_col == bindparam("b_id"), key_col == bindparam("b_old_key"),
                                 blob_col == bindparam("b_old_blob")))
                     .values({t.key_id_column: bindparam("b_new_key"),
                              t.blob_column: bindparam("b_new_blob")}))
        async with self.db.transaction() as conn:
            await conn.execute(statement, params)
            now_stored = {str(row[0]): bytes(row[1]) for row in await conn.execute(
                select(id_col, blob_col).where(id_col.in_([p["b_id"] for p in params])))}
        return sum(1 for p in params if now_stored.get(p["b_id"]) == p["b_new_blob"])
