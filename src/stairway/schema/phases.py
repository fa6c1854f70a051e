"""Checking a change's declared phase against what its statements actually do.

An ``expand`` change must leave the running release working: statements that remove, rename or
tighten what that release uses, or change the rows it reads, contradict the label. It must also
not stop that release's queries for a time that grows with a table: PostgreSQL statements that
hold a lock blocking writes (or reads) while they scan, rewrite or index a table are errors for
``expand`` and warnings in every other phase. See ``phase_findings.Weight``.

Statements are read with sqlglot's parser. What it cannot parse (it falls back to ``Command``)
is read from its token stream instead, so strings are never looked into; the body of a ``DO``
block is read as the PL/pgSQL it is (``plpgsql``). While a change runs in a transaction, the
locks each statement takes are kept in a ledger (``phase_locks``), because they are held until
that transaction ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokenizer_core import Token

from stairway.schema import phase_findings as hits
from stairway.schema.change import Phase
from stairway.schema.loosening import loose_index, unique_by_name
from stairway.schema.phase_alter import (
    alter,
    alter_piece,
    column_rewrites,
    scan_words,
    table_actions,
)
from stairway.schema.phase_fills import null_filled
from stairway.schema.phase_findings import Hit, PhaseFinding, Weight
from stairway.schema.phase_locks import (
    Held,
    LockLedger,
    LockMode,
    held_lock_message,
    transaction_control,
)
from stairway.schema.phase_scope import (
    Effects,
    Scope,
    column_key,
    keyword,
    named_table,
    parse_tokens,
    sql_names,
    summary,
    table_key,
    token_list,
    top_level_words,
)
from stairway.schema.plpgsql import PlKind, do_block
from stairway.schema.plpgsql import statements as plpgsql_statements
from stairway.schema.shape import Shape
from stairway.schema.sqltext import Statement

__all__ = ["PhaseFinding", "check_phase", "column_rewrites", "parse_statement"]


def check_phase(
    statements: Sequence[Statement],
    phase: Phase,
    dialect: str = "postgres",
    *,
    transactional: bool = True,
    earlier: Callable[[], Shape] | None = None,
) -> list[PhaseFinding]:
    """Findings for ``statements`` labelled ``phase``; blocking ones only for ``expand``.

    ``transactional`` says whether the change starts in a transaction (the default), in which
    case the locks of earlier statements are still held while later ones run. A ``COMMIT`` among
    the statements ends that transaction, and a ``BEGIN`` starts one (``transaction_control``):
    Alembic's ``autocommit_block()`` renders as ``COMMIT`` ... ``BEGIN``. ``earlier`` gives the
    schema as the catalog's earlier changes left it: with it, a type change that only widens a
    column and a NOT NULL the column already has are known to be harmless.
    """
    name = "postgres" if dialect == "postgresql" else dialect
    postgres = isinstance(Dialect.get_or_raise(name), Postgres)
    scope = Scope(name, postgres, transactional, earlier=earlier)
    findings: list[PhaseFinding] = []
    for statement in statements:
        opens = _transaction_control(statement.text, name)
        if opens is not None:
            scope.transactional, scope.ledger = opens, LockLedger()
            continue
        if not scope.transactional:
            scope.ledger = LockLedger()  # each statement commits on its own
        for hit in _statement(statement.text, statement.line, scope):
            finding = hit.finding(phase, statement.line)
            findings += [finding] if finding else []
        scope.read.append(statement.text)
    return findings


_CONTROLS = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"})


def _transaction_control(text: str, dialect: str) -> bool | None:
    """``transaction_control`` of the statement, tokenized only when its first word may be
    one (tokenizing every statement twice would double the check's cost)."""
    first = text.split(None, 1)[:1]
    if not first or first[0].rstrip(";").upper() not in _CONTROLS:
        return None
    return transaction_control([keyword(t) for t in token_list(text, dialect)])


def _statement(text: str, line: int, scope: Scope) -> list[Hit]:
    """The hits of one statement, then its locks entered in the ledger."""
    outer, scope.effects = scope.effects, Effects()
    found = _inspect(text, line, scope)
    found += _held_locks(summary(text), scope)
    for table, mode in scope.effects.locks:
        scope.ledger.take(Held(table, mode, summary(text), line))
    scope.effects = outer
    return found


def _held_locks(statement: str, scope: Scope) -> list[Hit]:
    held = scope.ledger.stopping_the_product()
    if not (scope.postgres and scope.effects.grows and held):
        return []
    message = held_lock_message(statement, scope.effects.grows, held)
    return [Hit("held-lock", Weight.STALLS, message)]


def _inspect(text: str, line: int, scope: Scope) -> list[Hit]:
    tokens = token_list(text, scope.dialect)
    if not tokens:
        return []
    scope.statement = summary(text)
    lead = keyword(tokens[0])
    if lead in ("VACUUM", "CLUSTER"):
        return _maintenance(tokens, scope)
    if scope.postgres and lead in _BY_WORDS:
        return _BY_WORDS[lead](text, line, scope)
    trees = parse_tokens(text, tokens, scope.dialect)
    if trees is None or any(isinstance(tree, exp.Command) for tree in trees):
        return _fallback(text, tokens, scope)
    return [hit for tree in trees for hit in _tree(tree, scope)]


# --- DO blocks: the statements their PL/pgSQL body runs ------------------------------------


def _do(text: str, line: int, scope: Scope) -> list[Hit]:
    block = do_block(text)
    if block is None or not block.readable:
        language = f" in {block.language}" if block else ""
        return [hits.unreadable_hit(f"this DO block{language}")]
    inner = plpgsql_statements(block.body)
    if inner is None:
        return [hits.unreadable_hit("this DO block")]
    transactional, scope.transactional = scope.transactional, True  # a DO block is atomic
    found: list[Hit] = []
    for statement in inner:
        at = line + text.count("\n", 0, block.offset + statement.offset)
        if statement.kind is PlKind.DYNAMIC:
            found.append(replace(hits.unreadable_hit(f"EXECUTE {statement.text}"), line=at))
        else:
            found += [replace(h, line=h.line or at) for h in _statement(statement.text, at, scope)]
    scope.transactional = transactional
    return found


# --- statements sqlglot parses -------------------------------------------------------------


def _tree(tree: exp.Expression, scope: Scope) -> list[Hit]:
    found = _row_changes(tree, scope)
    if isinstance(tree, exp.Drop):
        found += _drop(tree, scope)
    elif isinstance(tree, exp.Alter) and not _index_rename(tree):
        found += alter(tree, scope)
    elif isinstance(tree, exp.TruncateTable):
        found.append(_truncate(tree, scope))
    elif isinstance(tree, exp.Create):
        found += _create(tree, scope)
    elif isinstance(tree, exp.Insert):
        _insert(tree, scope)
    return found


def _index_rename(tree: exp.Alter) -> bool:
    """``ALTER INDEX ... RENAME TO`` of an index that backs no constraint.

    Queries name tables and columns, not indexes, so the running release does not notice; since
    PostgreSQL 12 the rename takes only SHARE UPDATE EXCLUSIVE. An index backing a unique or
    primary key constraint is renamed with its constraint, which ``ON CONFLICT ON CONSTRAINT``
    names: a name that may be one (``uq_``, ``_key``, ``_pkey`` ...) stays a rename.
    """
    kind = str(tree.args.get("kind") or "").upper()
    actions = list(tree.args.get("actions") or [])
    if kind != "INDEX" or not actions or not isinstance(tree.this, exp.Table):
        return False
    renames = all(isinstance(action, exp.AlterRename) for action in actions)
    return renames and not unique_by_name(tree.this.name)


def _row_changes(tree: exp.Expression, scope: Scope) -> list[Hit]:
    """UPDATE and DELETE anywhere in the statement (a WITH query too)."""
    found = [hit for update in tree.find_all(exp.Update) for hit in _update(update, scope)]
    for delete in tree.find_all(exp.Delete):
        found += _delete(delete, scope)
    return found


def _update(update: exp.Update, scope: Scope) -> list[Hit]:
    key, table = table_key(update.this, scope), update.this.sql(scope.dialect)
    scope.grow(f"updates rows of {table}")
    if not key or key in scope.created:
        return []
    targets = [eq.this for eq in update.expressions if isinstance(eq, exp.EQ)]
    columns, keys = sql_names(targets, scope), {column_key(t, scope) for t in targets}
    added = scope.added.get(key, set())
    if targets and keys <= added:
        return [hits.backfill_hit(table, columns)]
    if targets and keys <= added | null_filled(update, scope):
        return [hits.null_fill_hit(table, columns)]
    return [hits.update_hit(table, columns)]


def _delete(delete: exp.Delete, scope: Scope) -> list[Hit]:
    table = delete.this.sql(scope.dialect)
    scope.grow(f"deletes rows of {table}")
    if not delete.args.get("where"):
        return [hits.delete_all_hit(table)]
    return [] if table_key(delete.this, scope) in scope.created else [hits.delete_hit(table)]


def _insert(insert: exp.Insert, scope: Scope) -> None:
    """INSERT ... SELECT FROM a table copies rows: its time grows with them. VALUES does not."""
    sources = _source_tables(insert.expression)
    if not sources:
        return
    scope.grow(f"copies rows from {sql_names(sources, scope)}")
    target = table_key(insert.this, scope)
    if target in scope.created:
        scope.filled.add(target)


def _source_tables(query: exp.Expression | exp.Query | None) -> list[exp.Table]:
    """The tables a query reads in its own FROM and JOINs (not in its subqueries)."""
    if isinstance(query, exp.SetOperation):
        return _source_tables(query.left) + _source_tables(query.right)
    if not isinstance(query, exp.Select):
        return []
    sources = [query.args.get("from_"), *(query.args.get("joins") or [])]
    return [s.this for s in sources if s is not None and isinstance(s.this, exp.Table)]


def _drop(tree: exp.Drop, scope: Scope) -> list[Hit]:
    tables = list(tree.args.get("tables") or [])
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "INDEX":
        return _drop_index(tree, tables, scope)
    if kind == "TABLE" and tables and all(table_key(t, scope) in scope.created for t in tables):
        return []
    for table in tables if kind == "TABLE" else []:
        scope.lock(table_key(table, scope), LockMode.ACCESS_EXCLUSIVE)
    return [hits.drop_hit(f"DROP {kind} {sql_names(tables, scope)}".strip())]


def _drop_index(tree: exp.Drop, indexes: Sequence[exp.Expression], scope: Scope) -> list[Hit]:
    """Dropping an index that enforces nothing only loosens the schema (see ``loosening``)."""
    names = sql_names(indexes, scope)
    concurrently = bool(tree.args.get("concurrently"))
    found = []
    if scope.postgres and concurrently and scope.transactional:
        found.append(hits.concurrently_in_transaction_hit("DROP INDEX CONCURRENTLY"))
    if scope.postgres and not concurrently:
        found.append(hits.drop_index_hit(names))
    keys = [table_key(index, scope) for index in indexes]
    if not all(key in scope.indexes or loose_index(key) for key in keys):
        found.insert(0, hits.drop_hit(f"DROP INDEX {names}"))
    return found


def _truncate(tree: exp.TruncateTable, scope: Scope) -> Hit:
    for table in tree.expressions:
        scope.lock(table_key(table, scope), LockMode.ACCESS_EXCLUSIVE)
    return hits.truncate_hit(f"TRUNCATE {sql_names(tree.expressions, scope)}")


def _create(tree: exp.Create, scope: Scope) -> list[Hit]:
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "TABLE":
        _create_table(tree, scope)
    elif kind == "TRIGGER":
        trigger = tree.find(exp.TriggerProperties)
        table = trigger.args.get("table") if trigger else None
        scope.lock(table_key(table, scope), LockMode.SHARE_ROW_EXCLUSIVE)
    elif kind == "INDEX" and isinstance(tree.this, exp.Index):
        return _create_index(tree, tree.this, scope)
    return []


def _create_table(tree: exp.Create, scope: Scope) -> None:
    """A new table; its foreign keys lock the tables they reference (SHARE ROW EXCLUSIVE)."""
    key = table_key(tree.this, scope)
    for reference in tree.find_all(exp.Reference):
        scope.lock(table_key(reference.this, scope), LockMode.SHARE_ROW_EXCLUSIVE)
    sources = _source_tables(tree.expression)
    if sources:
        scope.grow(f"copies rows from {sql_names(sources, scope)}")
        scope.filled.add(key)
    scope.created.add(key)


def _create_index(tree: exp.Create, index: exp.Index, scope: Scope) -> list[Hit]:
    if index.this:
        scope.indexes.add(table_key(exp.to_table(index.this.sql(scope.dialect)), scope))
    if not scope.postgres:
        return []
    if tree.args.get("concurrently"):
        what = "CREATE INDEX CONCURRENTLY"
        return [hits.concurrently_in_transaction_hit(what)] if scope.transactional else []
    table = index.args.get("table")
    key = table_key(table, scope)
    scope.lock(key, LockMode.SHARE)
    if key in scope.created and key not in scope.filled:
        return []  # an index on an empty table is built at once
    name = table.sql(scope.dialect) if table else "its table"
    scope.grow(f"builds an index over {name}")
    return [] if key in scope.created else [hits.index_hit("CREATE INDEX", name)]


def parse_statement(text: str, dialect: str = "postgres") -> list[exp.Expression] | None:
    """sqlglot's trees for one statement; None when it cannot read it as SQL."""
    tokens = token_list(text, dialect)
    trees = parse_tokens(text, tokens, dialect) if tokens else None
    if trees is None or any(isinstance(tree, exp.Command) for tree in trees):
        return None
    return trees


def _fallback(text: str, tokens: Sequence[Token], scope: Scope) -> list[Hit]:
    words = top_level_words(tokens)
    if words[0] in ("DROP", "TRUNCATE"):
        return scan_words(words, scope.statement)
    if words[0] != "ALTER":
        return []
    if len(words) > 1 and words[1] == "TABLE":
        return [hit for piece in table_actions(text, tokens) for hit in alter_piece(piece, scope)]
    return scan_words(words, scope.statement)


def _maintenance(tokens: Sequence[Token], scope: Scope) -> list[Hit]:
    if not scope.postgres:
        return []
    lead = keyword(tokens[0])
    # sqlglot keeps everything after VACUUM as one string token; its options are inside it.
    options = token_list(tokens[1].text, scope.dialect) if len(tokens) > 1 else []
    if lead == "VACUUM" and "FULL" not in [keyword(option) for option in options]:
        return []
    what = "VACUUM FULL" if lead == "VACUUM" else "CLUSTER"
    scope.grow("rewrites the table")
    return [
        Hit(
            "table-rewrite",
            Weight.STALLS,
            f"{what} rewrites the table under ACCESS EXCLUSIVE, blocking reads and writes for "
            "the whole rewrite; use plain VACUUM, or run it in an offline change",
        )
    ]


def _rest_words(text: str, scope: Scope) -> tuple[str, list[Token]]:
    """The text after a statement's first word, and its tokens (sqlglot keeps the words after
    LOCK, and after words it does not know, as one string)."""
    rest = text.lstrip()
    rest = rest[len(rest.split(maxsplit=1)[0]) :]
    return rest, token_list(rest, scope.dialect)


def _lock_table(text: str, line: int, scope: Scope) -> list[Hit]:
    """``LOCK [TABLE] [ONLY] name [, ...] [IN mode MODE] [NOWAIT]``: the mode, on each table."""
    rest, tokens = _rest_words(text, scope)
    words = [keyword(t) for t in tokens]
    stop = next((i for i, w in enumerate(words) if w in ("IN", "NOWAIT")), len(words))
    mode = LockMode.ACCESS_EXCLUSIVE
    if "MODE" in words[stop:]:
        mode = LockMode.named(" ".join(words[stop + 1 : words.index("MODE")])) or mode
    first = next((i for i, w in enumerate(words[:stop]) if w not in ("TABLE", "ONLY")), stop)
    names = rest[tokens[first].start : tokens[stop - 1].end + 1] if first < stop else ""
    for name in filter(str.strip, names.split(",")):
        scope.lock(named_table(name, scope), mode)
    return []


def _reindex(text: str, line: int, scope: Scope) -> list[Hit]:
    """``REINDEX`` builds every index again under SHARE, like CREATE INDEX."""
    rest, tokens = _rest_words(text, scope)
    words = [keyword(t) for t in tokens]
    if "CONCURRENTLY" in words:
        what = "REINDEX CONCURRENTLY"
        return [hits.concurrently_in_transaction_hit(what)] if scope.transactional else []
    target = next((i for i, w in enumerate(words) if w in _REINDEX_TARGETS), len(words))
    name = rest[tokens[target + 1].start :].strip() if target + 1 < len(tokens) else ""
    key = named_table(name, scope) if words[target : target + 1] == ["TABLE"] else ""
    if key and key in scope.created:
        return []
    scope.lock(key, LockMode.SHARE)
    scope.grow(f"rebuilds the indexes of {name or 'the table'}")
    return [hits.index_hit(summary(text), name or "the table")]


_REINDEX_TARGETS = frozenset({"INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM"})
_BY_WORDS = {"DO": _do, "LOCK": _lock_table, "REINDEX": _reindex}
