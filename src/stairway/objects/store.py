"""The product's objects table, as the catalog's ``[objects]`` names it.

Bodies are read as text and parsed once by ``Migrator.parse`` whatever the column type (TEXT,
JSON or JSONB), so reading is the same on SQLite and PostgreSQL and costs one orjson parse.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import NoSuchTableError

from stairway.errors import ObjectMigrationError
from stairway.objects.migrate import Migrator, Outcome, stamp_version
from stairway.objects.migration import Document
from stairway.objects.spec import ObjectsModel
from stairway.versions import Version


@dataclass(frozen=True)
class StoredObject:
    """One object as read: its id, type, the release that wrote it, and its outcome."""

    id: object
    type: str
    written_by: Version | None
    outcome: Outcome

    @property
    def document(self) -> Document:
        """The object's body in the running release's shape."""
        return self.outcome.document


def encode(document: Document) -> str:
    """``document`` as the JSON text stored in the body column."""
    return orjson.dumps(document).decode()


class ObjectStore:
    """Reads, migrates on read, and writes back objects of one table: an object whatever
    release wrote it is served in the running release's shape, and a stale one is written back
    migrated (at once by ``get``, in batches by the bulk rewrite)."""

    def __init__(self, engine: Engine, spec: ObjectsModel, migrator: Migrator, current: str):
        self.engine = engine
        self.spec = spec
        self.migrator = migrator
        self.current = current
        self.table = _reflect(engine, spec)
        # A table holds a few distinct stamps and millions of objects: each stamp is read once.
        self._stamps: dict[object, Version | None] = {}

    @property
    def id_column(self) -> ColumnElement[Any]:
        """The table's id column, as ``[objects]`` names it."""
        return self.table.c[self.spec.id]

    def selection(self) -> list[ColumnElement[Any]]:
        """id, type, body as text, written-by (or NULL): the columns every read takes."""
        c = self.table.c
        version = c[self.spec.version] if self.spec.version else cast(None, Text)
        return [c[self.spec.id], c[self.spec.type], cast(c[self.spec.body], Text), version]

    def materialise(self, row: Sequence[object]) -> StoredObject:
        """A row of ``selection()`` parsed and migrated."""
        oid, type_, body, written = row
        try:
            written_by = self._stamps[written]
        except KeyError:
            written_by = self._stamps[written] = stamp_version(written, self.migrator.grammar)
        stamp = written if isinstance(written, str) else None  # the migrator caches per stamp
        try:
            outcome = self.migrator.parse(str(type_), _text(body), stamp)
        except ObjectMigrationError as err:
            raise ObjectMigrationError(f"object {oid}: {err.message}", hint=err.hint) from None
        return StoredObject(oid, str(type_), written_by, outcome)

    def get(self, oid: object) -> StoredObject | None:
        """One object, migrated; written back at once when its stored form was stale."""
        with self.engine.begin() as conn:
            query = select(*self.selection()).where(self.id_column == oid)
            row = conn.execute(query).first()
            if row is None:
                return None
            found = self.materialise(tuple(row))
            if found.outcome.stale:
                self.write(conn, [found])
            return found

    def scan(self, batch: int = 1000) -> Iterator[StoredObject]:
        """Every object in id order, migrated in memory only (for read-only callers: verify)."""
        last: object = None
        while True:
            query = select(*self.selection()).order_by(self.id_column).limit(batch)
            if last is not None:
                query = query.where(self.id_column > last)
            with self.engine.connect() as conn:
                rows = [tuple(r) for r in conn.execute(query)]
            for row in rows:
                yield self.materialise(row)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def find(self, conn: Connection, type_: str, oid: object = None) -> Iterator[StoredObject]:
        """Objects of ``type_`` (only the one with id ``oid`` when given), migrated in memory."""
        c = self.table.c
        query = select(*self.selection()).where(c[self.spec.type] == type_)
        if oid is not None:
            query = query.where(self.id_column == oid)
        for row in conn.execute(query.order_by(self.id_column)):
            yield self.materialise(tuple(row))

    def insert(
        self,
        conn: Connection,
        oid: object,
        type_: str,
        document: Document,
        shaped_by: Version | None = None,
    ) -> None:
        """Store a new object in the current release's shape, stamped with it. A document in
        an older release's shape (``shaped_by``: a delta of that release, applied on a site
        created later) is migrated first; one a migration cannot bring all the way is stored as
        it is, stamped with the release whose shape it has, so the migrations still find it."""
        stamp: str = self.current
        if shaped_by is not None and str(shaped_by) != self.current:
            migrated = self.migrator.migrate(type_, copy.deepcopy(document), shaped_by)
            if any(a.blocked for a in migrated.attention):
                stamp = str(shaped_by)
            else:
                document = migrated.document
        values: dict[str, object] = {
            self.spec.id: oid,
            self.spec.type: type_,
            self.spec.body: self._body_param(),
        }
        if self.spec.version:
            values[self.spec.version] = stamp
        conn.execute(insert(self.table).values(**values), {"_body": encode(document)})

    def counts(self) -> dict[str, int]:
        """Objects in the table per type."""
        type_ = self.table.c[self.spec.type]
        with self.engine.connect() as conn:
            rows = conn.execute(select(type_, func.count()).group_by(type_))
            return {str(t): int(n) for t, n in rows}

    def write(self, conn: Connection, objects: Sequence[StoredObject]) -> None:
        """Store the migrated form of ``objects`` and stamp them with the current release."""
        if not objects:
            return
        if conn.dialect.name == "postgresql":
            self._write_postgres(conn, objects)
            return
        values: dict[str, object] = {self.spec.body: self._body_param()}
        if self.spec.version:
            values[self.spec.version] = self.current
        statement = update(self.table).where(self.id_column == bindparam("_id")).values(**values)
        params = [{"_id": o.id, "_body": encode(o.document)} for o in objects]
        conn.execute(statement, params)

    def _write_postgres(self, conn: Connection, objects: Sequence[StoredObject]) -> None:
        """One UPDATE per batch, joined to the batch sent as one JSON array.

        A statement per row, or arrays adapted element by element, is several times slower;
        orjson writes the whole batch at once and the documents are embedded, not re-quoted.
        """
        quote = conn.dialect.identifier_preparer.quote
        c = self.table.c
        id_type = c[self.spec.id].type.compile(dialect=conn.dialect)
        body_type = c[self.spec.body].type.compile(dialect=conn.dialect)
        stamp = f", {quote(self.spec.version)} = :current" if self.spec.version else ""
        statement = text(
            f"UPDATE {quote(self.spec.table)} AS t SET {quote(self.spec.body)} = "
            f"v.body::{body_type}{stamp} "
            f"FROM json_to_recordset(CAST(:batch AS json)) AS v(id {id_type}, body json) "
            f"WHERE t.{quote(self.spec.id)} = v.id"
        )
        batch = orjson.dumps([{"id": o.id, "body": o.document} for o in objects]).decode()
        conn.execute(statement, {"batch": batch, "current": self.current})

    def _body_param(self) -> ColumnElement[Any]:
        body_type = self.table.c[self.spec.body].type
        param = bindparam("_body", type_=Text)
        # A JSON column takes the text we already serialised; SQLAlchemy would encode it again.
        return cast(param, body_type) if isinstance(body_type, JSON) else param


def _reflect(engine: Engine, spec: ObjectsModel) -> Table:
    try:
        table = Table(spec.table, MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise ObjectMigrationError(
            f"the objects table {spec.table!r} does not exist in this database",
            hint="migrate the schema first, or fix [objects] table in stairway.toml",
        ) from None
    wanted = [spec.id, spec.type, spec.body, *([spec.version] if spec.version else [])]
    missing = [name for name in wanted if name not in table.c]
    if missing:
        raise ObjectMigrationError(
            f"the objects table {spec.table!r} has no column {', '.join(missing)}",
            hint="fix the column names in [objects] in stairway.toml",
        )
    return table


def _text(body: object) -> bytes | str:
    if isinstance(body, bytes | str):
        return body
    raise ObjectMigrationError(
        f"an object body is {type(body).__name__}, not JSON text",
        hint="point the catalog's [objects] body column at the column holding the JSON text",
    )
