"""The schema's shape replayed from statements, its judgements, and both checked on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlglot
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres

from conftest import new_pg_database
from stairway.schema.coercion import ColumnType, column_type, widens
from stairway.schema.shape import Shape, set_not_null_is_noop, type_change_is_safe


def dtype(sql: str) -> exp.DataType:
    """The type as the phase check gets it: from an ALTER COLUMN ... TYPE statement."""
    alter = sqlglot.parse_one(f"ALTER TABLE t ALTER COLUMN c TYPE {sql}", dialect="postgres")
    action = alter.args["actions"][0]
    assert isinstance(action, exp.AlterColumn)
    found = action.args["dtype"]
    assert isinstance(found, exp.DataType)
    return found


def ctype(sql: str) -> ColumnType:
    return column_type(dtype(sql))


def shape_of(sql: str) -> Shape:
    return Shape.empty().after(sql)


# --- widening ------------------------------------------------------------------------------

# (old, new, PostgreSQL changes only its catalog and every value reads the same)
WIDENINGS = [
    ("varchar(10)", "varchar(20)", True),
    ("varchar(20)", "varchar(10)", False),
    ("varchar(10)", "varchar", True),
    ("varchar", "varchar(10)", False),
    ("varchar(10)", "text", True),
    ("varchar", "text", True),
    ("text", "varchar", True),
    ("text", "varchar(10)", False),
    ("char(5)", "text", False),
    ("char(5)", "varchar(10)", False),
    ("char(5)", "char(10)", False),
    ("numeric(10,2)", "numeric(12,2)", True),
    ("numeric(10,2)", "numeric", True),
    ("numeric(10,2)", "numeric(12,3)", False),
    ("numeric(12,2)", "numeric(10,2)", False),
    ("numeric", "numeric(10,2)", False),
    ("varbit(5)", "varbit(10)", True),
    ("varbit(10)", "varbit(5)", False),
    ("timestamp(3)", "timestamp(6)", True),
    ("timestamp(3)", "timestamp", True),
    ("timestamptz(6)", "timestamptz(3)", False),
    ("timestamp", "timestamptz", False),
    ("cidr", "inet", False),
    ("int", "bigint", False),
    ("smallint", "int", False),
    ("int", "int", True),
    ("text", "text", True),
    ("numeric(10,2)", "numeric(10,2)", True),
    ("json", "jsonb", False),
    ("text", "citext", False),
]
WIDENING_IDS = [f"{old}->{new}" for old, new, _ in WIDENINGS]


@pytest.mark.parametrize(("old", "new", "expected"), WIDENINGS, ids=WIDENING_IDS)
def test_widens_accepts_each_widening_and_refuses_its_look_alike(
    old: str, new: str, expected: bool
) -> None:
    assert widens(ctype(old), ctype(new)) is expected


def test_type_names_are_postgresql_s_own() -> None:
    assert ctype("character varying(5)") == ColumnType("varchar", (5,))
    assert ctype("char") == ColumnType("bpchar", (1,))
    assert ctype("numeric(7)") == ColumnType("numeric", (7, 0))
    assert ctype("serial") == ctype("integer") == ColumnType("int4")
    assert ctype("varchar(3)[]") == ColumnType("_varchar", (3,))


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_varchar_widens_exactly_when_the_limit_does_not_shrink(n: int, m: int) -> None:
    assert widens(ColumnType("varchar", (n,)), ColumnType("varchar", (m,))) is (m >= n)


@given(st.integers(1, 1000), st.integers(1, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_numeric_widens_only_at_the_same_scale(p: int, q: int, s: int, t: int) -> None:
    assume(s <= p and t <= q)
    expected = s == t and q >= p
    assert widens(ColumnType("numeric", (p, s)), ColumnType("numeric", (q, t))) is expected


# --- the checker's questions ---------------------------------------------------------------

USERS = """
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email varchar(200) NOT NULL,
    nick varchar(20),
    code char(4),
    tag text COLLATE "C",
    price numeric(10,2)
);
"""


@pytest.mark.parametrize(
    ("column", "new", "expected"),
    [
        ("email", "text", True),
        ("email", "varchar(100)", False),
        ("nick", "varchar(40)", True),
        ("price", "numeric(12,2)", True),
        ("price", "numeric(12,3)", False),
        ("id", "bigint", True),
        ("id", "int", False),
        ("code", "text", False),
        ("tag", "varchar", False),  # the collation would change to the default
        ("missing", "text", False),
    ],
)
def test_type_change_is_safe_on_a_replayed_table(column: str, new: str, expected: bool) -> None:
    assert type_change_is_safe(shape_of(USERS), "users", column, dtype(new)) is expected


def test_type_change_keeping_the_collation_is_safe_and_a_using_clause_is_not() -> None:
    shape, collate = shape_of(USERS), exp.to_identifier("C", quoted=True)
    assert type_change_is_safe(shape, "users", "tag", dtype("text"), collate=collate)
    using = exp.column("nick")
    assert not type_change_is_safe(shape, "users", "nick", dtype("text"), using=using)


def test_an_unknown_table_is_never_judged_safe() -> None:
    assert not type_change_is_safe(Shape.empty(), "users", "email", dtype("text"))
    assert not set_not_null_is_noop(Shape.empty(), "users", "email")
    shape = shape_of(USERS + "ALTER TABLE users OWNER TO app;")
    assert shape.table("users") is None
    assert not type_change_is_safe(shape, "users", "email", dtype("text"))


def test_set_not_null_is_a_noop_on_not_null_and_primary_key_columns_only() -> None:
    shape = shape_of(USERS + "CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b));")
    assert set_not_null_is_noop(shape, "users", "email")
    assert set_not_null_is_noop(shape, "users", "id")
    assert set_not_null_is_noop(shape, "pairs", "b")
    assert not set_not_null_is_noop(shape, "users", "nick")
    loosened = shape.after("ALTER TABLE users ALTER COLUMN email DROP NOT NULL")
    assert not set_not_null_is_noop(loosened, "users", "email")
    tightened = shape.after("ALTER TABLE users ALTER COLUMN nick SET NOT NULL")
    assert set_not_null_is_noop(tightened, "users", "nick")


def test_serial_and_identity_columns_are_not_null() -> None:
    shape = shape_of("CREATE TABLE t (a serial, b int GENERATED BY DEFAULT AS IDENTITY, c int)")
    assert [c.not_null for c in shape.tables["t"].columns] == [True, True, False]


# --- replay --------------------------------------------------------------------------------


def test_replay_follows_renames_of_columns_and_tables() -> None:
    shape = shape_of(
        USERS
        + """
        ALTER TABLE users RENAME COLUMN nick TO handle;
        ALTER TABLE users RENAME TO accounts;
        ALTER TABLE accounts ALTER COLUMN handle TYPE varchar(50);
        """
    )
    assert shape.table("users") is None
    handle = shape.column("accounts", "handle")
    assert handle is not None and handle.type == ColumnType("varchar", (50,))
    assert shape.column("accounts", "nick") is None


def test_replay_follows_drops_and_additions() -> None:
    shape = shape_of(
        USERS
        + """
        ALTER TABLE users DROP COLUMN code, ADD COLUMN IF NOT EXISTS bio text NOT NULL DEFAULT '';
        CREATE TABLE gone (a int);
        DROP TABLE IF EXISTS gone;
        """
    )
    assert shape.column("users", "code") is None
    bio = shape.column("users", "bio")
    assert bio is not None and bio.not_null
    assert shape.table("gone") is None


def test_replay_follows_unique_constraints_and_indexes() -> None:
    shape = shape_of(
        USERS
        + """
        ALTER TABLE users ADD CONSTRAINT users_nick_uq UNIQUE (nick);
        CREATE UNIQUE INDEX CONCURRENTLY users_code_idx ON users (code);
        CREATE UNIQUE INDEX users_lower_email ON users (lower(email));
        CREATE UNIQUE INDEX users_live_email ON users (email) WHERE price > 0;
        """
    )
    assert shape.unique_index_covering("users", ["nick", "email"]) is not None
    assert shape.unique_index_covering("users", ["email"]) is None
    dropped = shape.after(
        "ALTER TABLE users DROP CONSTRAINT users_nick_uq; DROP INDEX users_code_idx"
    )
    assert dropped.unique_index_covering("users", ["nick"]) is None
    assert dropped.unique_index_covering("users", ["code"]) is None
    renamed = shape.after("ALTER TABLE users RENAME COLUMN nick TO handle")
    key = renamed.unique_index_covering("users", ["handle"])
    assert key is not None and key.name == "users_nick_uq"


def test_default_constraint_names_can_be_dropped_and_unknown_ones_forget_the_table() -> None:
    shape = shape_of("CREATE TABLE t (a int PRIMARY KEY, b int UNIQUE)")
    dropped = shape.after("ALTER TABLE t DROP CONSTRAINT t_b_key")
    assert dropped.table("t") is not None
    assert dropped.unique_index_covering("t", ["b"]) is None
    assert shape.after("ALTER TABLE t DROP CONSTRAINT t_b_not_null").table("t") is None


def test_dropping_the_primary_key_leaves_only_declared_not_null() -> None:
    shape = shape_of("CREATE TABLE t (a int PRIMARY KEY, b int NOT NULL)")
    after = shape.after("ALTER TABLE t DROP CONSTRAINT t_pkey")
    assert not set_not_null_is_noop(after, "t", "a")
    assert set_not_null_is_noop(after, "t", "b")


@pytest.mark.parametrize(
    "statement",
    [
        "DO $$ BEGIN EXECUTE 'ALTER TABLE users ALTER COLUMN nick TYPE int USING 0'; END $$",
        "SET search_path TO other",
        "DROP TYPE mood CASCADE",
        "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_nick_idx",
        "CREATE TEMPORARY TABLE users (nick int)",
        "CREATE TABLE users (LIKE other)",
    ],
)
def test_a_statement_the_replay_cannot_follow_forgets_the_table(statement: str) -> None:
    assert shape_of(USERS + statement).table("users") is None


def test_create_if_not_exists_keeps_a_known_table_and_does_not_learn_an_unknown_one() -> None:
    shape = shape_of(USERS + "CREATE TABLE IF NOT EXISTS users (nick int);")
    nick = shape.column("users", "nick")
    assert nick is not None and nick.type == ColumnType("varchar", (20,))
    assert shape_of("CREATE TABLE IF NOT EXISTS t (a int)").table("t") is None


def test_qualified_and_quoted_names_are_normalised() -> None:
    shape = shape_of('CREATE TABLE public."Mixed" ("Col" int, plain int); CREATE TABLE a.b (c int)')
    assert shape.column('"Mixed"', '"Col"') is not None
    assert shape.column('public."Mixed"', "PLAIN") is not None
    assert shape.column("Mixed", "Col") is None  # unquoted folds to lower case
    assert shape.column("a.b", "c") is not None and shape.column("b", "c") is None


def test_after_returns_a_new_shape_and_keeps_the_old_one() -> None:
    before = shape_of(USERS)
    before.after("DROP TABLE users")
    assert before.table("users") is not None


# --- property: CREATE TABLE replays to the declared columns --------------------------------

TYPES = ["int", "bigint", "text", "varchar(12)", "numeric(8,3)", "boolean", "timestamptz", "uuid"]
_WORDS = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ_", min_size=1, max_size=10)
_COLUMN = st.tuples(_WORDS, st.booleans(), st.sampled_from(TYPES), st.booleans())


def _sql_name(word: str, quoted: bool) -> str:
    return f'"{word}"' if quoted else word


def _pg_name(word: str, quoted: bool) -> str:
    return word if quoted else word.lower()


@given(st.lists(_COLUMN, min_size=1, max_size=8))
def test_a_created_table_gives_back_each_column_s_type_and_nullability(
    columns: list[tuple[str, bool, str, bool]],
) -> None:
    names = [_pg_name(word, quoted) for word, quoted, _, _ in columns]
    assume(len(set(names)) == len(names))
    assume(
        all(
            quoted or word.upper() not in Postgres.Tokenizer.KEYWORDS
            for word, quoted, *_ in columns
        )
    )
    body = ", ".join(f"{_sql_name(w, q)} {t}{' NOT NULL' if nn else ''}" for w, q, t, nn in columns)
    shape = shape_of(f'CREATE TABLE "T" ({body})')
    for (word, quoted, type_sql, not_null), name in zip(columns, names, strict=True):
        column = shape.column('"T"', _sql_name(word, quoted))
        assert column is not None and column.name == name
        assert column.type == ctype(type_sql)
        assert column.not_null is not_null


# --- against PostgreSQL --------------------------------------------------------------------


@pytest.fixture
def pg() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with new_pg_database("stairway_shape") as url, psycopg.connect(url, autocommit=True) as conn:
        yield conn


SCRIPT = """
CREATE SCHEMA audit;
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    "Email" varchar(200) NOT NULL UNIQUE,
    nick varchar(20),
    code char(4),
    price numeric(10,2),
    seen timestamptz(3),
    CONSTRAINT users_pair UNIQUE (nick, code)
);
CREATE TABLE audit.events (id int GENERATED ALWAYS AS IDENTITY, kind text, at timestamp);
ALTER TABLE users RENAME COLUMN nick TO handle;
ALTER TABLE users ADD COLUMN bio text NOT NULL DEFAULT '', DROP COLUMN code;
ALTER TABLE users ALTER COLUMN handle TYPE varchar(40), ALTER COLUMN price SET NOT NULL;
ALTER TABLE users ALTER COLUMN "Email" DROP NOT NULL;
CREATE UNIQUE INDEX users_bio_idx ON users (bio);
CREATE INDEX ON users (seen);
CREATE UNIQUE INDEX users_handle_live ON users (handle) WHERE price > 0;
ALTER TABLE audit.events ADD CONSTRAINT events_kind_at UNIQUE (kind, at);
ALTER TABLE audit.events RENAME TO happenings;
ALTER TABLE users DROP CONSTRAINT "users_Email_key";
ALTER INDEX users_bio_idx RENAME TO users_bio_key;
CREATE TABLE scratch (a int);
DROP TABLE scratch;
"""

_CATALOG_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, t.typname, a.atttypmod, a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind = 'r' AND n.nspname IN ('public', 'audit') AND a.attnum > 0
  AND NOT a.attisdropped
"""
_CATALOG_UNIQUE = """
SELECT n.nspname, c.relname, i.relname,
       array(SELECT a.attname FROM unnest(x.indkey) k
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k)
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE x.indisunique AND x.indpred IS NULL AND 0 <> ALL(x.indkey)
  AND n.nspname IN ('public', 'audit')
"""


def _modifiers(typname: str, typmod: int) -> tuple[int, ...]:
    """PostgreSQL's type modifier as the shape writes it (see format_type)."""
    if typmod < 0:
        return ()
    if typname == "numeric":
        return ((typmod - 4) >> 16, (typmod - 4) & 0xFFFF)
    if typname in ("varchar", "bpchar"):
        return (typmod - 4,)
    return (typmod,)


def _key(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


@pytest.mark.postgres
def test_replayed_columns_and_unique_keys_match_postgresql_s_catalog(
    pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    pg.execute(SCRIPT)
    shape = shape_of(SCRIPT)
    catalog = {
        (_key(str(s), str(t)), str(a)): (ColumnType(str(ty), _modifiers(str(ty), int(str(m)))), nn)
        for s, t, a, ty, m, nn in pg.execute(_CATALOG_COLUMNS).fetchall()
    }
    replayed = {
        (key, c.name): (c.type, c.not_null)
        for key, table in shape.tables.items()
        for c in table.columns
    }
    assert replayed == catalog
    unique = {
        (_key(str(s), str(t)), str(i), tuple(str(c) for c in cols))  # type: ignore[attr-defined]
        for s, t, i, cols in pg.execute(_CATALOG_UNIQUE).fetchall()
    }
    known = {
        (key, k.name, k.columns)
        for key, table in shape.tables.items()
        for k in table.keys
        if k.kind.unique and k.plain
    }
    assert known == unique


def _filenodes(pg: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = pg.execute(
        "SELECT pg_relation_filenode('widen'), pg_relation_filenode(to_regclass('widen_c_idx'))"
    ).fetchone()
    assert row is not None
    return tuple(row)


_SAMPLES = {
    "varchar": "'abc'",
    "text": "'abc'",
    "bpchar": "'ab'",
    "numeric": "12.5",
    "varbit": "B'101'",
    "timestamp": "'2024-01-02 03:04:05.123'",
    "timestamptz": "'2024-01-02 03:04:05.123+00'",
    "cidr": "'10.1.2.3/32'",
    "int4": "7",
    "int2": "7",
    "json": "'{\"a\": 1}'",
}


@pytest.mark.postgres
@pytest.mark.parametrize(("old", "new", "expected"), WIDENINGS, ids=WIDENING_IDS)
def test_widens_agrees_with_postgresql(
    pg: psycopg.Connection[tuple[object, ...]], old: str, new: str, expected: bool
) -> None:
    """A widening keeps the table's and the index's files and reads every value the same."""
    if ctype(new).name == "citext":
        pg.execute("CREATE EXTENSION IF NOT EXISTS citext")
    pg.execute("SET TimeZone = 'UTC'")
    pg.execute(f"CREATE TABLE widen (c {old})")
    if ctype(old).name != "json":  # json has no btree operator class
        pg.execute("CREATE INDEX widen_c_idx ON widen (c)")
    pg.execute(f"INSERT INTO widen VALUES ({_SAMPLES[ctype(old).name]})")
    # format() prints with the type's output function, as a client reads it; c::text would not
    # (inet's cast to text keeps a /32 that its output leaves out).
    read = "SELECT format('%s', c) FROM widen"
    before_files, before_text = _filenodes(pg), pg.execute(read).fetchone()
    pg.execute(f"ALTER TABLE widen ALTER COLUMN c TYPE {new}")
    after_files, after_text = _filenodes(pg), pg.execute(read).fetchone()
    postgres_widens = after_files == before_files and after_text == before_text
    assert widens(ctype(old), ctype(new)) is postgres_widens is expected
