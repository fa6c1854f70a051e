"""Following DDL statements to keep a schema's shape: which tables, columns and keys they leave.

Tables are held in a plain dict while one change is replayed; :class:`~stairway.schema.shape.Shape`
wraps the result. Whatever a statement does that is not followed here makes the table it touches
unknown (removed from the dict), or every table when it cannot be told which: an unknown table
is never judged safe, so losing track only ever costs an allowance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokenizer_core import Token, TokenType

from stairway.schema.coercion import column_type
from stairway.schema.phase_scope import parse_tokens
from stairway.schema.relations import (
    ColumnShape,
    Key,
    KeyKind,
    TableShape,
    default_name,
    with_column,
    with_key,
    without_key,
)
from stairway.schema.sqltext import SqlSyntaxError, tokenize

Tables = dict[str, TableShape]
_DEFAULT_SCHEMA = "public"
_SERIAL = frozenset(
    {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}
)
# Storage options and UNLOGGED leave the columns as declared; TEMPORARY, INHERITS, LIKE,
# PARTITION OF do not (a temporary table hides the permanent one of the same name). Exact
# classes: sqlglot's TemporaryProperty and most others are subclasses of Property.
_PLAIN_PROPERTIES = (exp.Property, exp.UnloggedProperty, exp.PartitionedByProperty)
_SUFFIXES = {
    KeyKind.PRIMARY_KEY: "pkey",
    KeyKind.UNIQUE: "key",
    KeyKind.FOREIGN_KEY: "fkey",
    KeyKind.CHECK: "check",
    KeyKind.UNIQUE_INDEX: "idx",
    KeyKind.INDEX: "idx",
}


# Statements that leave every table's shape as it was: read by their first word, not parsed
# (a data migration's many INSERTs and UPDATEs would cost most of a replay).
_SHAPELESS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "SELECT", "WITH", "MERGE", "COPY", "COMMENT", "GRANT",
        "REVOKE", "ANALYZE", "NOTIFY", "BEGIN", "COMMIT", "START", "END", "SAVEPOINT",
        "RELEASE", "ROLLBACK", "LOCK", "TRUNCATE",
    }
)  # fmt: skip


def apply(tables: Tables, text: str) -> None:
    """Change ``tables`` as the statement ``text`` changes the schema."""
    words = text.split(None, 1)
    if words and words[0].upper() in _SHAPELESS and "search_path" not in text.lower():
        return
    try:
        tokens = tokenize(text)
    except SqlSyntaxError:
        tables.clear()
        return
    if not tokens:
        return
    if any(token.text.lower() == "search_path" for token in tokens):
        tables.clear()  # unqualified names may now mean other tables
        return
    trees = _parse(text, tokens)
    if trees is None:
        _unreadable(tables, tokens)
        return
    for tree in trees:
        _follow(tables, tree)


def _parse(text: str, tokens: list[Token]) -> list[exp.Expression] | None:
    found = parse_tokens(text, tokens, "postgres")
    if found is None or any(isinstance(tree, exp.Command) for tree in found):
        return None
    return found


# --- names ---------------------------------------------------------------------------------


def table_key(node: exp.Expression | None) -> str:
    """The normalised name of a table node: ``users``, ``audit.events``, ``Users`` for "Users".

    The default schema is left out, so ``public.users`` and ``users`` are the same table;
    ``SET search_path`` makes the replay forget everything rather than rely on that.
    """
    schema, name = _schema_and_name(node)
    return f"{schema}.{name}" if schema else name


def _schema_and_name(node: exp.Expression | None) -> tuple[str, str]:
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        return "", ""
    table = normalize_identifiers(node.copy(), dialect="postgres")
    parts = [part.name for part in table.parts]
    schema = ".".join(parts[:-1])
    return ("" if schema == _DEFAULT_SCHEMA else schema), parts[-1]


def identifier_name(node: exp.Expression) -> str:
    """PostgreSQL's name for an identifier or column node: unquoted names fold to lower case."""
    if isinstance(node, exp.Column):
        node = node.this
    return str(normalize_identifiers(node.copy(), dialect="postgres").name)


def collation_name(node: object) -> str | None:
    """The collation a COLLATE clause names, or None for none."""
    return identifier_name(node) if isinstance(node, exp.Expression) else None


def _plain_names(nodes: Sequence[exp.Expression]) -> tuple[tuple[str, ...], bool]:
    """Column names among ``nodes``, and whether they are nothing but plain columns."""
    names = [identifier_name(n) for n in nodes if isinstance(n, (exp.Identifier, exp.Column))]
    return tuple(names), len(names) == len(nodes)


# --- statements ----------------------------------------------------------------------------


def _follow(tables: Tables, tree: exp.Expression) -> None:
    kind = str(tree.args.get("kind") or "").upper()
    if isinstance(tree, exp.Create) and kind == "TABLE":
        _create_table(tables, tree)
    elif isinstance(tree, exp.Create) and kind == "INDEX":
        _create_index(tables, tree)
    elif isinstance(tree, exp.Alter) and kind == "TABLE":
        _alter_table(tables, tree)
    elif isinstance(tree, exp.Alter) and kind == "INDEX":
        _rename_index(tables, tree)
    elif isinstance(tree, exp.Drop):
        _drop(tables, tree, kind)


def _create_table(tables: Tables, tree: exp.Create) -> None:
    key = table_key(tree.this)
    if tree.args.get("exists"):
        return  # skipped if the table exists; if it is not known, it stays unknown
    tables.pop(key, None)
    properties = tree.args.get("properties")
    plain = not properties or all(type(p) in _PLAIN_PROPERTIES for p in properties.expressions)
    if plain and isinstance(tree.this, exp.Schema) and not tree.expression:
        schema, name = _schema_and_name(tree.this)
        table = _defined(TableShape(name, schema), tree.this.expressions)
        if table is not None:
            tables[key] = table


def _defined(table: TableShape, items: Sequence[exp.Expression]) -> TableShape | None:
    for item in items:
        followed = _add_column(table, item) if isinstance(item, exp.ColumnDef) else None
        followed = followed or _add_constraint(table, item)
        if followed is None:
            return None
        table = followed
    return table


def _create_index(tables: Tables, tree: exp.Create) -> None:
    index = tree.this
    if not isinstance(index, exp.Index):
        return
    table = tables.get(key := table_key(index.args.get("table")))
    params = index.args.get("params")
    if table is None or not isinstance(params, exp.IndexParameters):
        return
    name = identifier_name(index.this) if index.this else None
    if name and table.key(name) is not None:
        return  # IF NOT EXISTS found it (or the statement failed)
    ordered = [o.this if isinstance(o, exp.Ordered) else o for o in params.expressions or []]
    ordered = ordered or [o.this for o in params.args.get("columns") or []]
    columns, plain = _plain_names(ordered)
    kind = KeyKind.UNIQUE_INDEX if tree.args.get("unique") else KeyKind.INDEX
    plain = plain and not params.args.get("where")
    name = name or (default_name(table, columns, "idx") if plain else None)
    tables[key] = with_key(table, Key(kind, name, columns, plain))


def _rename_index(tables: Tables, tree: exp.Alter) -> None:
    renames = [a for a in tree.args.get("actions") or [] if isinstance(a, exp.AlterRename)]
    if not renames:
        return
    schema, old = _schema_and_name(tree.this)
    new = identifier_name(renames[0].this.this) if isinstance(renames[0].this, exp.Table) else ""
    for key, table in list(tables.items()):
        found = table.key(old) if table.schema == schema else None
        if found is not None and found.kind.has_index:
            tables[key] = with_key(without_key(table, found), replace(found, name=new or None))


def _drop(tables: Tables, tree: exp.Drop, kind: str) -> None:
    names = list(tree.args.get("tables") or [])
    if kind == "TABLE":
        for name in names:
            tables.pop(table_key(name), None)
    elif kind == "INDEX":
        for name in names:
            _drop_index(tables, *_schema_and_name(name))
    elif tree.args.get("cascade"):
        tables.clear()  # a type, function or schema dropped with what depends on it


def _drop_index(tables: Tables, schema: str, name: str) -> None:
    for key, table in list(tables.items()):
        if table.schema != schema:
            continue
        found = table.key(name)
        if found is not None and found.kind in (KeyKind.INDEX, KeyKind.UNIQUE_INDEX):
            tables[key] = without_key(table, found)
        elif found is None and any(k.name is None and k.kind.has_index for k in table.keys):
            del tables[key]  # it may have been one we could not name


# --- ALTER TABLE ---------------------------------------------------------------------------


def _alter_table(tables: Tables, tree: exp.Alter) -> None:
    schema, name = _schema_and_name(tree.this)
    table: TableShape | None = tables.pop(table_key(tree.this), None)
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.AlterRename):
            # RENAME TO keeps the schema; if the new name was taken, the statement failed.
            name = _schema_and_name(action.this)[1]
            tables.pop(f"{schema}.{name}" if schema else name, None)
            table = replace(table, name=name) if table is not None else None
        elif table is not None:
            table = _altered(table, action)
    if table is not None:
        tables[f"{schema}.{name}" if schema else name] = table


def _altered(table: TableShape, action: exp.Expression) -> TableShape | None:
    if isinstance(action, exp.ColumnDef):
        exists = table.column(identifier_name(action.this)) is not None
        return table if exists else _add_column(table, action)
    if isinstance(action, exp.AlterColumn):
        return _alter_column(table, action)
    if isinstance(action, exp.RenameColumn):
        return _rename_column(table, action)
    if isinstance(action, exp.AddConstraint):
        return _defined(table, action.expressions)
    if isinstance(action, exp.Drop):
        return _drop_from(table, action)
    return None


def _alter_column(table: TableShape, action: exp.AlterColumn) -> TableShape | None:
    column = table.column(identifier_name(action.this))
    if column is None:
        return None
    dtype = action.args.get("dtype")
    if isinstance(dtype, exp.DataType):
        collation = collation_name(action.args.get("collate"))
        column = replace(column, type=column_type(dtype), collation=collation)
    allow_null = action.args.get("allow_null")
    if allow_null is not None:
        column = replace(column, declared_not_null=not allow_null)
    return with_column(table, column)


def _rename_column(table: TableShape, action: exp.RenameColumn) -> TableShape | None:
    old, new = identifier_name(action.this), identifier_name(action.args["to"])
    column = table.column(old)
    if column is None or table.column(new) is not None:
        return None
    columns = tuple(replace(c, name=new) if c.name == old else c for c in table.columns)
    keys = tuple(
        replace(k, columns=tuple(new if c == old else c for c in k.columns)) for k in table.keys
    )
    return replace(table, columns=columns, keys=keys)


def _drop_from(table: TableShape, action: exp.Drop) -> TableShape | None:
    kind = str(action.args.get("kind") or "").upper()
    for node in action.args.get("tables") or []:
        name = identifier_name(node.this if isinstance(node, exp.Table) else node)
        if kind == "COLUMN":
            table = _drop_column(table, name)
        elif kind == "CONSTRAINT" and (key := table.key(name)) is not None:
            table = without_key(table, key)
        else:
            return None
    return table


def _drop_column(table: TableShape, name: str) -> TableShape:
    # PostgreSQL drops every index and constraint that involves the column with it.
    for key in [k for k in table.keys if name in k.columns]:
        table = without_key(table, key)
    return replace(table, columns=tuple(c for c in table.columns if c.name != name))


# --- columns and constraints ---------------------------------------------------------------


def _add_column(table: TableShape, definition: exp.ColumnDef) -> TableShape | None:
    dtype = definition.args.get("kind")
    if not isinstance(dtype, exp.DataType):
        return None
    name = identifier_name(definition.this)
    column = ColumnShape(name, column_type(dtype), declared_not_null=dtype.this in _SERIAL)
    keys: list[tuple[KeyKind, str | None, tuple[str, ...]]] = []
    for constraint in definition.args.get("constraints") or []:
        kind = constraint.args.get("kind")
        column = _column_constraint(column, kind)
        named = identifier_name(constraint.this) if constraint.this else None
        key_kind = _key_kind(kind)
        if key_kind is not None:
            keys.append((key_kind, named, (name,)))
    table = with_column(table, column)
    for kind, named, columns in keys:
        table = _with_named_key(table, kind, named, columns, plain=True)
    return table


def _column_constraint(column: ColumnShape, kind: object) -> ColumnShape:
    if isinstance(kind, exp.NotNullColumnConstraint):
        return replace(column, declared_not_null=not kind.args.get("allow_null"))
    if isinstance(kind, exp.GeneratedAsIdentityColumnConstraint):
        return replace(column, declared_not_null=True)
    if isinstance(kind, exp.CollateColumnConstraint):
        return replace(column, collation=collation_name(kind.this))
    return column


def _key_kind(kind: object) -> KeyKind | None:
    if isinstance(kind, (exp.PrimaryKeyColumnConstraint, exp.PrimaryKey)):
        return KeyKind.PRIMARY_KEY
    if isinstance(kind, exp.UniqueColumnConstraint):
        return KeyKind.UNIQUE
    if isinstance(kind, (exp.Reference, exp.ForeignKey)):
        return KeyKind.FOREIGN_KEY
    if isinstance(kind, exp.CheckColumnConstraint):
        return KeyKind.CHECK
    if isinstance(kind, exp.ExcludeColumnConstraint):
        return KeyKind.EXCLUDE
    return None


def _add_constraint(table: TableShape, item: exp.Expression) -> TableShape | None:
    """``table`` with a table constraint (named or not); None for one not followed."""
    named = identifier_name(item.this) if isinstance(item, exp.Constraint) else None
    body = item.expressions[0] if isinstance(item, exp.Constraint) and item.expressions else item
    kind = _key_kind(body)
    if kind is None:
        return None
    columns, plain = _constraint_columns(body, kind)
    return _with_named_key(table, kind, named, columns, plain=plain)


def _with_named_key(
    table: TableShape, kind: KeyKind, named: str | None, columns: tuple[str, ...], *, plain: bool
) -> TableShape:
    if named is None and kind in _SUFFIXES:
        named = default_name(table, _name_parts(columns, kind), _SUFFIXES[kind])
    return with_key(table, Key(kind, named, columns, plain))


def _constraint_columns(body: exp.Expression, kind: KeyKind) -> tuple[tuple[str, ...], bool]:
    if kind is KeyKind.UNIQUE and isinstance(body.this, exp.Schema):
        return _plain_names(body.this.expressions)
    if kind in (KeyKind.PRIMARY_KEY, KeyKind.FOREIGN_KEY):
        return _plain_names(body.expressions)
    mentioned = dict.fromkeys(identifier_name(c) for c in body.find_all(exp.Column))
    return tuple(mentioned), False


def _name_parts(columns: tuple[str, ...], kind: KeyKind) -> tuple[str, ...]:
    # PostgreSQL names a primary key after the table alone, a check after its only column.
    if kind is KeyKind.PRIMARY_KEY:
        return ()
    if kind is KeyKind.CHECK:
        return columns if len(columns) == 1 else ()
    return columns


# --- statements sqlglot cannot read --------------------------------------------------------


def _unreadable(tables: Tables, tokens: Sequence[Token]) -> None:
    words = [token.text.upper() for token in tokens[:4]]
    if words[0] in ("DO", "CALL") or any(t.text.upper() == "CASCADE" for t in tokens):
        tables.clear()
    elif words[0] in ("ALTER", "CREATE", "DROP") and "TABLE" in words:
        tables.pop(_name_after(tokens, words.index("TABLE") + 1), None)
    elif words[0] == "CREATE" and "INDEX" in words:
        on = next((i for i, t in enumerate(tokens) if t.token_type == TokenType.ON), None)
        if on is not None:
            tables.pop(_name_after(tokens, on + 1), None)


def _name_after(tokens: Sequence[Token], index: int) -> str:
    """The table name that starts at ``index``, past IF [NOT] EXISTS and ONLY, normalised."""
    while index < len(tokens) and tokens[index].text.upper() in ("IF", "NOT", "EXISTS", "ONLY"):
        index += 1
    parts: list[str] = []
    while index < len(tokens):
        token = tokens[index]
        quoted = token.token_type == TokenType.IDENTIFIER
        parts.append(token.text if quoted else token.text.lower())
        if index + 1 >= len(tokens) or tokens[index + 1].token_type != TokenType.DOT:
            break
        index += 2
    if len(parts) > 1 and parts[-2] == _DEFAULT_SCHEMA:
        parts.pop(-2)
    return ".".join(parts)
