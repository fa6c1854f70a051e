"""Checking an ``expand`` label against what the statements do, without a database."""

from __future__ import annotations

import logging

import pytest

from stairway.schema.change import Phase
from stairway.schema.phases import PhaseFinding, check_phase
from stairway.schema.sqltext import Statement, split_statements

NOT_EXPAND = [Phase.CONTRACT, Phase.OFFLINE, Phase.BACKGROUND]

BLOCKING = [
    ("drop", "DROP TABLE accounts"),
    ("drop", "DROP INDEX CONCURRENTLY accounts_email_idx"),
    ("drop", "DROP VIEW active_accounts"),
    ("drop", "DROP FUNCTION touch()"),
    ("drop", "DROP EXTENSION pgcrypto"),
    ("drop", "DROP INDEX IF EXISTS a_idx, b_idx"),
    ("drop", "ALTER TABLE accounts DROP COLUMN email"),
    ("drop", "ALTER TABLE accounts DROP CONSTRAINT accounts_email_key"),
    ("drop", "ALTER TABLE accounts ALTER COLUMN email DROP DEFAULT"),
    ("drop", "ALTER TABLE accounts ALTER COLUMN id DROP IDENTITY"),
    ("rename", "ALTER TABLE accounts RENAME TO users"),
    ("rename", "ALTER TABLE accounts RENAME COLUMN email TO mail"),
    ("rename", "ALTER TABLE accounts RENAME email TO mail"),
    ("rename", "ALTER INDEX accounts_email_key RENAME TO accounts_mail_key"),
    ("rename", "ALTER TABLE accounts RENAME CONSTRAINT a_key TO b_key"),
    ("rename", "ALTER SEQUENCE accounts_id_seq RENAME TO users_id_seq"),
    ("rename", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'"),
    ("type-change", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint"),
    ("type-change", "ALTER TABLE accounts ALTER COLUMN id SET DATA TYPE bigint"),
    ("set-not-null", "ALTER TABLE accounts ALTER COLUMN email SET NOT NULL"),
    ("not-null-without-default", "ALTER TABLE accounts ADD COLUMN plan text NOT NULL"),
    ("not-null-without-default", "ALTER TABLE accounts ADD COLUMN plan text DEFAULT NULL NOT NULL"),
    (
        "constraint-without-not-valid",
        "ALTER TABLE orders ADD CONSTRAINT orders_account_fk "
        "FOREIGN KEY (account_id) REFERENCES accounts (id)",
    ),
    ("constraint-without-not-valid", "ALTER TABLE orders ADD CONSTRAINT positive CHECK (n > 0)"),
    ("constraint-without-not-valid", "ALTER TABLE orders ADD CONSTRAINT uq UNIQUE (ref)"),
    ("constraint-without-not-valid", "ALTER TABLE orders ADD PRIMARY KEY (id)"),
    ("constraint-without-not-valid", "ALTER TABLE orders ADD COLUMN a int REFERENCES accounts"),
    ("truncate", "TRUNCATE orders"),
    ("delete-without-where", "DELETE FROM orders"),
    ("data-change", "DELETE FROM orders WHERE id < 1000"),
    ("drop", "DO $$ BEGIN DROP TABLE scratch; ALTER TABLE a RENAME TO b; END $$"),
    (
        "concurrently-in-transaction",
        "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email)",
    ),
    (
        "delete-without-where",
        "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone",
    ),
]

# Errors for expand (they stop the product for a time that grows with the table), warnings in
# every other phase.
LOCKS = [
    ("index-without-concurrently", "CREATE INDEX orders_ref_idx ON orders (ref)"),
    ("index-without-concurrently", "CREATE UNIQUE INDEX ON orders (ref)"),
    ("table-rewrite", "ALTER TABLE orders ADD COLUMN seen timestamptz DEFAULT clock_timestamp()"),
    ("table-rewrite", "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid()"),
    ("table-rewrite", "ALTER TABLE orders ADD COLUMN luck float DEFAULT random()"),
    ("table-rewrite", "ALTER TABLE orders ADD COLUMN n bigserial"),
    ("table-rewrite", "ALTER TABLE orders ADD COLUMN n int GENERATED ALWAYS AS IDENTITY"),
    ("table-rewrite", "ALTER TABLE orders ALTER COLUMN ref TYPE text"),
    ("table-rewrite", "VACUUM FULL orders"),
    ("table-rewrite", "vacuum (full, analyze) orders"),
    ("table-rewrite", "CLUSTER orders USING orders_ref_idx"),
]

SAFE_EXPAND = [
    "CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric NOT NULL)",
    "ALTER TABLE accounts ADD COLUMN nickname text",
    "ALTER TABLE accounts ADD COLUMN nickname text NULL",
    "ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'x'",
    "ALTER TABLE accounts ADD COLUMN created timestamptz NOT NULL DEFAULT now()",
    "ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL",
    "ALTER TABLE accounts ALTER COLUMN plan SET DEFAULT 'free'",
    "ALTER TABLE orders ADD CONSTRAINT orders_account_fk "
    "FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID",
    "ALTER TABLE orders ADD CONSTRAINT positive CHECK (n > 0) NOT VALID",
    "ALTER TABLE orders VALIDATE CONSTRAINT orders_account_fk",
    "ALTER TABLE orders ADD CONSTRAINT orders_ref_key UNIQUE USING INDEX orders_ref_idx",
    "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id_idx",
    "COMMENT ON TABLE orders IS 'drop me later; rename too'",
    "VACUUM orders",
    "DO $$ BEGIN RAISE NOTICE 'drop table scratch; rename a'; END $$",
    "CREATE FUNCTION purge() RETURNS void AS $$ DROP TABLE scratch $$ LANGUAGE sql",
    "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
    "BEGIN\n  DROP TABLE scratch;\n  RETURN NEW;\nEND\n$body$",
]


# Each runs alone in a change marked `-- transaction: none`.
SAFE_OUTSIDE_A_TRANSACTION = [
    "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email)",
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_ref_idx ON accounts (ref)",
]


def check(
    sql: str, phase: Phase = Phase.EXPAND, dialect: str = "postgres", *, transactional: bool = True
) -> list[PhaseFinding]:
    return check_phase(split_statements(sql), phase, dialect, transactional=transactional)


def rules(findings: list[PhaseFinding], *, blocking: bool) -> set[str]:
    return {finding.rule for finding in findings if finding.blocking is blocking}


@pytest.mark.parametrize(("rule", "sql"), BLOCKING)
def test_blocking_rule_contradicts_expand(rule: str, sql: str) -> None:
    assert rule in rules(check(sql), blocking=True)


@pytest.mark.parametrize("phase", NOT_EXPAND)
@pytest.mark.parametrize(("rule", "sql"), BLOCKING)
def test_blocking_rule_is_not_reported_for_other_phases(rule: str, sql: str, phase: Phase) -> None:
    assert not any(finding.blocking for finding in check(sql, phase))


@pytest.mark.parametrize("phase", NOT_EXPAND)
@pytest.mark.parametrize(("rule", "sql"), LOCKS)
def test_lock_warnings_are_reported_in_every_other_phase(rule: str, sql: str, phase: Phase) -> None:
    assert rule in rules(check(sql, phase), blocking=False)


@pytest.mark.parametrize(("rule", "sql"), LOCKS)
def test_long_locks_contradict_expand(rule: str, sql: str) -> None:
    assert rule in rules(check(sql), blocking=True)


@pytest.mark.parametrize("sql", SAFE_EXPAND)
def test_compatible_statements_pass_as_expand(sql: str) -> None:
    assert check(sql) == []


@pytest.mark.parametrize("sql", SAFE_OUTSIDE_A_TRANSACTION)
def test_concurrent_index_builds_pass_as_expand_outside_a_transaction(sql: str) -> None:
    assert check(sql, transactional=False) == []


def test_type_change_is_blocking_and_a_rewrite_warning() -> None:
    sql = "ALTER TABLE accounts ALTER COLUMN id TYPE bigint"
    assert [(f.rule, f.blocking) for f in check(sql)] == [
        ("type-change", True),
        ("table-rewrite", True),
    ]
    assert [(f.rule, f.blocking) for f in check(sql, Phase.CONTRACT)] == [("table-rewrite", False)]


def test_stable_default_is_not_a_rewrite_but_a_volatile_one_is() -> None:
    assert check("ALTER TABLE t ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP") == []
    assert rules(
        check("ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()"), blocking=True
    ) == {"table-rewrite"}


@pytest.mark.parametrize(
    ("sql", "advice"),
    [
        ("ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id)", "NOT VALID"),
        ("ALTER TABLE o ADD CONSTRAINT uq UNIQUE (ref)", "USING INDEX"),
        ("ALTER TABLE o ADD CONSTRAINT uq UNIQUE (ref)", "CONCURRENTLY"),
        ("ALTER TABLE o ADD CONSTRAINT ex EXCLUDE USING gist (r WITH &&)", "offline"),
        ("ALTER TABLE o ADD COLUMN n int NOT NULL", "SET NOT NULL in a contract change"),
        ("ALTER TABLE o RENAME COLUMN a TO b", "contract change"),
    ],
)
def test_messages_say_what_to_do_instead(sql: str, advice: str) -> None:
    (finding,) = check(sql)
    assert advice in finding.message


def test_unique_constraint_is_flagged_even_when_marked_not_valid() -> None:
    # PostgreSQL rejects NOT VALID on UNIQUE and PRIMARY KEY, so the marker does not make it safe.
    findings = check("ALTER TABLE o ADD CONSTRAINT uq UNIQUE (ref) NOT VALID")
    assert rules(findings, blocking=True) == {"constraint-without-not-valid"}


@pytest.mark.parametrize(
    ("sql", "blocking"),
    [
        ('ALTER TABLE "Order Lines" DROP COLUMN "Drop"', {"drop"}),
        ('ALTER TABLE "t" RENAME COLUMN "a b" TO "c"', {"rename"}),
        ('ALTER TABLE app."Order" ALTER COLUMN "Qty" SET NOT NULL', {"set-not-null"}),
        ('CREATE TABLE "DROP" ("RENAME" text NOT NULL)', set()),
        ('COMMENT ON COLUMN "drop"."rename" IS \'truncate\'', set()),
        ('ALTER TABLE "drop" ADD COLUMN "rename" text', set()),
    ],
)
def test_quoted_identifiers_are_names_not_keywords(sql: str, blocking: set[str]) -> None:
    assert rules(check(sql), blocking=True) == blocking


def test_multi_action_alter_is_checked_per_action() -> None:
    # VALIDATE makes sqlglot give up on the whole statement; each action is still checked.
    sql = (
        'ALTER TABLE ONLY app."Orders" ADD CONSTRAINT a CHECK (x > 0) NOT VALID,\n'
        "  VALIDATE CONSTRAINT b, ADD CONSTRAINT c CHECK (y IN (1, 2)), DROP COLUMN z"
    )
    findings = check(sql)
    assert [f.rule for f in findings] == ["constraint-without-not-valid", "drop"]
    assert "ADD CONSTRAINT c" in findings[0].message


def test_tables_created_in_the_same_change_are_not_in_use_yet() -> None:
    sql = """CREATE TABLE invoices (id bigint, account_id bigint);
ALTER TABLE invoices ADD COLUMN total numeric NOT NULL;
ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES accounts (id);
CREATE INDEX invoices_account_idx ON invoices (account_id);
CREATE INDEX accounts_plan_idx ON accounts (plan);
"""
    # Line 5 also runs under the SHARE ROW EXCLUSIVE lock line 3's foreign key took on accounts.
    assert [(f.rule, f.line) for f in check(sql)] == [
        ("index-without-concurrently", 5),
        ("held-lock", 5),
    ]


def test_multi_statement_file_reports_each_statement_line() -> None:
    sql = """-- 0007_split_name: an expand change that is not one
ALTER TABLE accounts ADD COLUMN first_name text;

CREATE INDEX CONCURRENTLY accounts_first_idx ON accounts (first_name);
DO $$ BEGIN
  EXECUTE 'DROP TABLE legacy';
END $$;
ALTER TABLE accounts
  DROP COLUMN full_name;
CREATE INDEX accounts_last_idx
  ON accounts (last_name);
"""
    findings = check(sql)
    assert [(f.rule, f.blocking, f.line) for f in findings] == [
        ("concurrently-in-transaction", True, 4),
        ("drop", True, 6),
        ("drop", True, 8),
        ("index-without-concurrently", True, 10),
        ("held-lock", True, 10),
    ]
    assert [(f.rule, f.line) for f in check(sql, Phase.CONTRACT)] == [
        ("concurrently-in-transaction", 4),
        ("index-without-concurrently", 10),
        ("held-lock", 10),
    ]


def test_line_comes_from_the_statement() -> None:
    statements = [Statement("DROP TABLE a", 41), Statement("TRUNCATE b", 97)]
    assert [f.line for f in check_phase(statements, Phase.EXPAND)] == [41, 97]


def test_describe_names_level_rule_and_line() -> None:
    (finding,) = check_phase([Statement("DROP TABLE a", 12)], Phase.EXPAND)
    assert finding.describe().startswith("line 12: error [drop] DROP TABLE a ")
    (warning,) = check_phase([Statement("CREATE INDEX i ON a (x)", 3)], Phase.CONTRACT)
    assert warning.describe().startswith("line 3: warning [index-without-concurrently] ")


def test_lock_warnings_are_postgres_only_and_blocking_rules_are_not() -> None:
    sql = "CREATE INDEX i ON t (a); ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0); DROP TABLE u"
    assert [f.rule for f in check(sql, dialect="sqlite")] == ["drop"]
    assert check("DROP TABLE u", dialect="postgresql")[0].rule == "drop"


def test_fallbacks_leave_sqlglot_logging_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("sqlglot")
    before = logger.level
    with caplog.at_level(logging.DEBUG):
        check("DO $$ BEGIN PERFORM 1; END $$; ALTER TABLE t VALIDATE CONSTRAINT c")
    assert [r for r in caplog.records if r.name.startswith("sqlglot")] == []
    assert logger.level == before


@pytest.mark.parametrize("sql", ["", "-- only a comment", "SELECT 1", "VACUUM", "ANALYZE orders"])
def test_statements_without_schema_changes_pass(sql: str) -> None:
    assert check(sql) == []
