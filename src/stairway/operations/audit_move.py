"""A site's audit log moved to another installation while it keeps serving: a tail exported
from a position up to a fresh signed checkpoint, imported where the earlier part already is.

``export_tail`` signs the source's committed head, then reads the entries after the position
up to that checkpoint in one read: entries appended meanwhile lie beyond the checkpoint and wait
for the next catch-up. ``import_tail`` takes a tail only when the trusted key signed it and it
chains on from the last entry this site imported from that log. ``move`` does both for two
sites this machine reaches, the position read from the target, as often as wanted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from stairway import audit, audit_anchor, audit_tail
from stairway.audit import Head, audit_table
from stairway.audit_anchor import Signed
from stairway.audit_witness import PublicKey
from stairway.context import Context, anchor, checkpoint
from stairway.errors import TransferError
from stairway.sitelock import site_lock
from stairway.transfer import tail
from stairway.transfer.export import LogRows
from stairway.transfer.tail import TailImport
from stairway.transfer.trust import AuditTrust

PAGE = 2000  # entries read at a time: memory stays flat however long the tail


@dataclass(frozen=True)
class TailExport:
    """What ``export_tail`` wrote: the entries after ``after`` up to the signed ``head``."""

    path: Path
    after: Head
    head: Head
    entries: int
    key: str

    def describe(self) -> str:
        """The export in a sentence, with the position the next catch-up starts from."""
        return (
            f"{self.entries} audit entries after entry {self.after.id} written to {self.path}, "
            f"up to entry {self.head.id} as signed by audit key {self.key}"
        )


def export_tail(ctx: Context, path: Path, after: Head = audit_tail.START) -> TailExport:
    """The site's audit entries after ``after`` up to a checkpoint signed now, to ``path``.

    Raises:
        TransferError: ``path`` cannot be written, the log is empty or cannot be signed, or
            it holds no entry ``after`` names (``TailRefused``: another hash there).
    """
    _writable(path)
    _check_after(ctx, after)  # before signing: a refused export leaves the witness alone
    signed = audit_anchor.signed_head(ctx.engine, anchor(ctx))
    if signed is None:
        raise TransferError(
            "the audit log cannot be signed: its key or witness is not whole",
            hint="run `stairway audit verify` on this site and repair what it names",
        )
    rows = _between(ctx, after, signed)
    tail.write(path, ctx.catalog.product, after, rows, signed)
    head = Head(signed.point.seq, signed.point.hash)
    return TailExport(path, after, head, rows.count, signed.key.id)


def _writable(path: Path) -> None:
    if path.is_dir() or not path.parent.is_dir():
        raise TransferError(
            f"cannot write the audit tail to {path}: not a file in an existing directory",
            hint="give --out a file name in a directory that exists",
        )


def _check_after(ctx: Context, after: Head) -> None:
    """This log holds the entry ``after`` names (entries are never changed once written,
    so what is found now holds when the tail is read)."""
    with ctx.engine.connect() as conn:
        head = audit.head(conn)
        held = _hash_of(conn, after.id) if after.id else audit.GENESIS
    if head is None:
        raise TransferError(
            "this site's audit log is empty: there is nothing to move",
            hint="check --site names the installation the log moves from",
        )
    if after.id > head.id:
        raise TransferError(
            f"--after names entry {after.id}, past this log's last entry ({head.id})",
            hint="give the position the target prints (`stairway audit position`)",
        )
    if held != after.hash:
        raise audit_tail.TailRefused(
            f"this log's entry {after.id} is not the one the target imported: expected hash "
            f"{after.hash}, got {held}; this log was rewritten, or the target took another",
            hint="check the target's position with `stairway audit position`, and this log "
            "with `stairway audit verify`",
            expected=after.hash,
            got=str(held),
        )


def _between(ctx: Context, after: Head, signed: Signed) -> LogRows:
    """The entries after ``after`` up to the signed one, counted now and read page by page as
    the file is written: the checkpoint bounds them (entries appended meanwhile wait for the
    next catch-up) and entries never change, so the pages add up to one consistent read."""
    point = signed.point
    if after.id > point.seq:
        raise TransferError(
            f"--after names entry {after.id}, past the last signed one (entry {point.seq})",
            hint="run `stairway audit verify` on this site: its witness stopped signing",
        )
    between = (audit_table.c.id > after.id) & (audit_table.c.id <= point.seq)
    with ctx.engine.connect() as conn:
        count = int(conn.execute(select(func.count()).where(between)).scalar_one())
    return LogRows(count, _paged(ctx.engine, after, signed))


def _paged(engine: Engine, after: Head, signed: Signed) -> Iterator[dict[str, Any]]:
    """The rows up to the checkpoint, ``PAGE`` at a time, each page a short read of its own
    (no read held open while the file is written); the last must be the signed one."""
    point, last = signed.point, (after.id, after.hash)
    while last[0] < point.seq:
        page = _page(engine, last[0], point.seq)
        if not page:
            break
        yield from page
        last = (page[-1]["id"], page[-1]["hash"])
    if last != (point.seq, point.hash):
        raise TransferError(
            f"this log no longer matches its checkpoint at entry {point.seq}",
            hint="run `stairway audit verify` on this site",
        )


def _page(engine: Engine, after: int, until: int) -> list[dict[str, Any]]:
    between = (audit_table.c.id > after) & (audit_table.c.id <= until)
    query = select(audit_table).where(between).order_by(audit_table.c.id).limit(PAGE)
    with engine.connect() as conn:
        return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]


def _hash_of(conn: Connection, number: int) -> str | None:
    if not conn.dialect.has_table(conn, audit_table.name):
        return None
    query = select(audit_table.c.hash).where(audit_table.c.id == number)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def import_tail(ctx: Context, path: Path, trust: PublicKey | None = None) -> TailImport:
    """The entries of the audit tail at ``path`` this site does not hold yet, appended in one
    transaction and signed; ``trust`` is the source's audit public key (default: this site's
    own). A tail refused, or with nothing new, leaves the site's log and witness alone."""
    believed = _trusted(ctx, trust)
    found = tail.read(path, believed)
    if found.product not in (None, ctx.catalog.product):
        raise TransferError(
            f"the audit tail is of {found.product!r}, this site runs {ctx.catalog.product!r}",
            hint="import it into the installation of the same product it was moved to",
        )
    with site_lock(ctx):
        done = tail.import_tail(ctx.engine, found, path.name)
    if done.taken:
        checkpoint(ctx)
    return done


def _trusted(ctx: Context, trust: PublicKey | None) -> AuditTrust:
    """Without a key, this site's own: a tail of its own log comes back; another's needs one."""
    if trust is not None:
        return AuditTrust(trust)
    if not anchor(ctx).key_file.exists():
        return AuditTrust()
    return AuditTrust(audit_anchor.public_key(ctx.engine, anchor(ctx)), own=True)


def position(ctx: Context, key: PublicKey) -> Head:
    """Where this site stands in the log signed by ``key``: its last entry imported."""
    with ctx.engine.connect() as conn:
        return audit_tail.imported_head(conn, key.id)


@dataclass(frozen=True)
class Move:
    """One run of ``move``: the tail exported from the source and what the target took."""

    exported: TailExport
    imported: TailImport


def move(source: Context, target: Context, trust: PublicKey | None = None) -> Move:
    """The source's audit entries the target does not hold yet, moved: the target's position
    read, the tail after it exported up to a checkpoint signed now, and imported. Run it while
    the source serves as often as wanted; the last run, with the source stopped, ends the move.
    ``trust`` is the key the target checks the tail with (default: the source's own)."""
    key = trust or audit_anchor.public_key(source.engine, anchor(source))
    after = position(target, key)
    work = target.site.path.resolve().parent
    with tempfile.TemporaryDirectory(prefix=".stairway-audit-move-", dir=work) as scratch:
        path = Path(scratch) / "audit-tail.zst"
        exported = export_tail(source, path, after)
        return Move(exported, import_tail(target, path, key))
