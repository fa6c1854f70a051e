"""What a SQL statement does to a table on PostgreSQL, and under which lock, for estimates.

Each statement becomes an ``Operation``: its kind (what its cost grows with), the table it
works on, and the lock it holds. The kinds are the ones whose time grows with the table:

- ``rewrite``: the table and its indexes are written again (ALTER COLUMN TYPE, ADD COLUMN with a
  value computed per row, VACUUM FULL, CLUSTER), under ACCESS EXCLUSIVE;
- ``update`` / ``delete``: every matching row is written (all rows without WHERE);
- ``scan``: every row is read to validate (SET NOT NULL, ADD CHECK/FOREIGN KEY, VALIDATE);
- ``index``: an index build reads and sorts the table (SHARE, or SHARE UPDATE EXCLUSIVE with
  CONCURRENTLY, which takes about two passes);
- ``instant``: a catalog change (CREATE TABLE, ADD COLUMN without a volatile default, DROP, RENAME).

What sqlglot cannot read is ``unknown``: shown, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from stairway.schema.phases import column_rewrites, parse_statement


class OpKind(StrEnum):
    """What a statement does to its table, which says what its time grows with."""

    REWRITE = "rewrite"
    UPDATE = "update"
    DELETE = "delete"
    SCAN = "scan"
    INDEX = "index"
    INDEX_CONCURRENTLY = "index-concurrently"
    INSTANT = "instant"
    UNKNOWN = "unknown"


ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
# Locks that stop the product's writes (or reads) on the table while they are held.
BLOCKING = frozenset({ACCESS_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE})


@dataclass(frozen=True)
class Operation:
    """One statement's work: its kind, table and lock, and a few words for the report."""

    kind: OpKind
    table: str | None  # as PostgreSQL folds it (lower case unless quoted)
    lock: str | None
    what: str  # a few words for the report

    @property
    def blocks_writes(self) -> bool:
        """Whether the lock it holds stops the product's writes (or reads) on the table."""
        return self.lock in BLOCKING


def operations(text: str) -> list[Operation]:
    """What each statement of ``text`` does, in order.

    A statement sqlglot cannot read is one operation: a constraint validation, ``VACUUM FULL`` or
    ``CLUSTER`` when its words say so, ``unknown`` otherwise.
    """
    trees = parse_statement(text)
    if trees is None:
        return [_unparsed(text)]
    found: list[Operation] = []
    for tree in trees:
        found += _tree(tree)
    return found


def _unparsed(text: str) -> Operation:
    words = text.rstrip().rstrip(";").split()
    upper = [w.upper() for w in words]
    if upper[:2] == ["ALTER", "TABLE"] and "VALIDATE" in upper:
        names = [
            w
            for w, u in zip(words[2:], upper[2:], strict=True)
            if u not in ("ONLY", "IF", "EXISTS")
        ]
        table = names[0].strip('"') if names and names[0].startswith('"') else None
        table = table or (names[0].lower() if names else None)
        return Operation(OpKind.SCAN, table, SHARE_UPDATE_EXCLUSIVE, "constraint validation")
    head = " ".join(words[:2]).upper()
    if head in ("VACUUM FULL", "CLUSTER") or head.startswith("CLUSTER"):
        table = words[-1].rstrip(";").lower() if len(words) > 1 else None
        return Operation(OpKind.REWRITE, table, ACCESS_EXCLUSIVE, head.lower())
    return Operation(OpKind.UNKNOWN, None, None, " ".join(words[:4]))


def _table(node: exp.Expression | None) -> str | None:
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        return None
    folded = normalize_identifiers(node.copy(), dialect="postgres")
    return str(folded.name)


def _tree(tree: exp.Expression) -> list[Operation]:
    if isinstance(tree, exp.Alter):
        return _alter(tree)
    if isinstance(tree, exp.Create):
        return [_create(tree)]
    if isinstance(tree, exp.Update):
        return [Operation(OpKind.UPDATE, _table(tree.this), ROW_EXCLUSIVE, "update rows")]
    if isinstance(tree, exp.Delete):
        return [Operation(OpKind.DELETE, _table(tree.this), ROW_EXCLUSIVE, "delete rows")]
    source = tree.find(exp.From) if isinstance(tree, exp.Insert) else None
    if source is not None:
        table = _table(source.this)
        return [Operation(OpKind.UPDATE, table, ROW_EXCLUSIVE, "insert from a select")]
    if isinstance(tree, exp.Drop | exp.Insert):
        return [Operation(OpKind.INSTANT, _table(tree.this), ACCESS_EXCLUSIVE, "catalog change")]
    return [Operation(OpKind.INSTANT, None, None, tree.key)]


def _create(tree: exp.Create) -> Operation:
    kind = str(tree.args.get("kind") or "").upper()
    if kind != "INDEX":
        return Operation(OpKind.INSTANT, None, None, f"create {kind.lower()}")
    index = tree.this
    table = _table(index.args.get("table")) if isinstance(index, exp.Index) else None
    if tree.args.get("concurrently"):
        return Operation(OpKind.INDEX_CONCURRENTLY, table, SHARE_UPDATE_EXCLUSIVE, "index build")
    return Operation(OpKind.INDEX, table, SHARE, "index build")


def _alter(tree: exp.Alter) -> list[Operation]:
    table = _table(tree.this)
    not_valid = bool(tree.args.get("not_valid"))
    found = [_action(action, table, not_valid) for action in tree.args.get("actions") or []]
    return found or [Operation(OpKind.INSTANT, table, ACCESS_EXCLUSIVE, "alter table")]


def _action(action: exp.Expression, table: str | None, not_valid: bool) -> Operation:
    if isinstance(action, exp.AlterColumn):
        if action.args.get("dtype"):
            return Operation(OpKind.REWRITE, table, ACCESS_EXCLUSIVE, "column type change")
        if action.args.get("allow_null") is False:
            return Operation(OpKind.SCAN, table, ACCESS_EXCLUSIVE, "SET NOT NULL check")
    if isinstance(action, exp.ColumnDef) and column_rewrites(action):
        return Operation(OpKind.REWRITE, table, ACCESS_EXCLUSIVE, "column with per-row value")
    if isinstance(action, exp.AddConstraint):
        return _constraint(action, table, not_valid)
    if "VALIDATE" in action.sql(dialect="postgres").upper():
        return Operation(OpKind.SCAN, table, SHARE_UPDATE_EXCLUSIVE, "constraint validation")
    return Operation(OpKind.INSTANT, table, ACCESS_EXCLUSIVE, "catalog change")


def _constraint(action: exp.AddConstraint, table: str | None, not_valid: bool) -> Operation:
    text = action.sql(dialect="postgres").upper()
    if "PRIMARY KEY" in text or "UNIQUE" in text:
        return Operation(OpKind.INDEX, table, ACCESS_EXCLUSIVE, "unique index build")
    if not_valid:
        return Operation(OpKind.INSTANT, table, ACCESS_EXCLUSIVE, "constraint, NOT VALID")
    lock = SHARE_ROW_EXCLUSIVE if "FOREIGN KEY" in text or "REFERENCES" in text else None
    return Operation(OpKind.SCAN, table, lock or ACCESS_EXCLUSIVE, "constraint check")
