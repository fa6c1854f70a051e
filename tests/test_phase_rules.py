"""The phase rules that read more than one statement at a time, or inside one: index builds and
transactions, DO blocks, the lock ledger, rewrites, row changes and loosening drops.

Each rule has a case an expand change must be refused for, and a look-alike that must pass.
"""

from __future__ import annotations

import string

from hypothesis import assume, given
from hypothesis import strategies as st

from stairway.schema.change import Phase
from stairway.schema.phases import PhaseFinding, check_phase
from stairway.schema.sqltext import split_statements


def check(
    sql: str, phase: Phase = Phase.EXPAND, *, transactional: bool = True
) -> list[PhaseFinding]:
    return check_phase(split_statements(sql), phase, transactional=transactional)


def errors(sql: str, *, transactional: bool = True) -> set[str]:
    return {f.rule for f in check(sql, transactional=transactional) if f.blocking}


def warnings(sql: str, phase: Phase = Phase.EXPAND) -> set[str]:
    return {f.rule for f in check(sql, phase) if not f.blocking}


# --- index builds ----------------------------------------------------------------------------


def test_plain_index_on_an_existing_table_is_refused() -> None:
    assert errors("CREATE INDEX ix_runs_state ON runs (state)") == {"index-without-concurrently"}
    assert errors("CREATE UNIQUE INDEX uq_runs_key ON runs (key)") == {"index-without-concurrently"}


def test_plain_index_on_a_table_created_in_the_same_change_passes() -> None:
    sql = "CREATE TABLE runs (id int, state text); CREATE INDEX ix_runs_state ON runs (state)"
    assert check(sql) == []


def test_concurrent_index_passes_only_outside_a_transaction() -> None:
    sql = "CREATE INDEX CONCURRENTLY ix_runs_state ON runs (state)"
    assert check(sql, transactional=False) == []
    assert errors(sql) == {"concurrently-in-transaction"}
    assert "transaction: none" in check(sql)[0].message


def test_plain_index_is_a_warning_in_other_phases() -> None:
    sql = "CREATE INDEX ix_runs_state ON runs (state)"
    assert warnings(sql, Phase.CONTRACT) == {"index-without-concurrently"}


def test_unique_constraint_built_from_columns_is_refused_but_using_index_passes() -> None:
    assert errors("ALTER TABLE runs ADD CONSTRAINT uq_key UNIQUE (key)") == {
        "constraint-without-not-valid"
    }
    assert check("ALTER TABLE runs ADD CONSTRAINT uq_key UNIQUE USING INDEX uq_runs_key") == []


def test_reindex_needs_concurrently_outside_a_transaction() -> None:
    assert errors("REINDEX TABLE runs") == {"index-without-concurrently"}
    assert errors("REINDEX INDEX CONCURRENTLY ix_runs_state") == {"concurrently-in-transaction"}
    assert check("REINDEX INDEX CONCURRENTLY ix_runs_state", transactional=False) == []
    assert check("CREATE TABLE runs (id int); REINDEX TABLE runs") == []


# --- DO blocks -------------------------------------------------------------------------------


def test_do_block_with_drop_column_is_refused_at_the_line_of_the_drop() -> None:
    sql = "DO $$\nBEGIN\n  ALTER TABLE runs DROP COLUMN state;\nEND $$"
    (finding,) = check(sql)
    assert (finding.rule, finding.blocking, finding.line) == ("drop", True, 3)


def test_do_block_that_only_raises_a_notice_passes() -> None:
    assert check("DO $$ BEGIN RAISE NOTICE 'dropping nothing; truncate nothing'; END $$") == []


def test_control_statements_are_not_findings() -> None:
    sql = """DO LANGUAGE plpgsql $body$
DECLARE
  n int := 0;
BEGIN
  SELECT count(*) INTO n FROM runs;
  PERFORM pg_sleep(0);
  n := n + 1;
  IF n > 0 THEN RAISE NOTICE 'runs: %', n; END IF;
END
$body$"""
    assert check(sql) == []


def test_statements_inside_if_loop_and_exception_blocks_are_read() -> None:
    sql = """DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM runs) THEN
    FOR i IN 1..3 LOOP
      ALTER TABLE runs RENAME COLUMN state TO status;
    END LOOP;
  END IF;
EXCEPTION WHEN others THEN
  TRUNCATE runs;
END $$"""
    assert [(f.rule, f.line) for f in check(sql)] == [("rename", 5), ("truncate", 9)]


def test_execute_of_a_literal_is_read_as_its_statement() -> None:
    assert errors("DO $$ BEGIN EXECUTE 'DROP TABLE legacy'; END $$") == {"drop"}
    assert errors("DO $$ BEGIN EXECUTE format('ALTER TABLE t DROP COLUMN c'); END $$") == {"drop"}
    assert check("DO $$ BEGIN EXECUTE 'ALTER TABLE t ADD COLUMN c text'; END $$") == []


def test_execute_of_sql_built_at_run_time_is_refused_as_unreadable() -> None:
    for sql in [
        "DO $$ DECLARE q text := 'SELECT 1'; BEGIN EXECUTE q; END $$",
        "DO $$ BEGIN EXECUTE 'ALTER TABLE ' || quote_ident('t') || ' ADD c int'; END $$",
        "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD c int', 't'); END $$",
    ]:
        (finding,) = check(sql)
        assert finding.rule == "unreadable-sql" and finding.blocking
        assert "cannot be read" in finding.message


def test_do_block_in_another_language_is_unreadable() -> None:
    assert errors("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE t') $$") == {"unreadable-sql"}


def test_function_bodies_are_not_read() -> None:
    sql = (
        "CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$ "
        "BEGIN EXECUTE 'DROP TABLE ' || 't'; END $$"
    )
    assert check(sql) == []


def test_concurrently_inside_a_do_block_runs_in_its_transaction() -> None:
    sql = "DO $$ BEGIN EXECUTE 'CREATE INDEX CONCURRENTLY ix_a ON a (x)'; END $$"
    assert errors(sql, transactional=False) == {"concurrently-in-transaction"}


TAGS = st.text(alphabet=string.ascii_letters + "_", min_size=0, max_size=8)


@given(tag=TAGS, upper=st.booleans())
def test_any_dollar_quote_tag_is_read(tag: str, upper: bool) -> None:
    assume(tag == "" or not tag[0].isdigit())
    do = "DO" if upper else "do"
    sql = f"{do} ${tag}$ BEGIN ALTER TABLE runs DROP COLUMN state; END ${tag}$"
    assert errors(sql) == {"drop"}
    safe = f"{do} ${tag}$ BEGIN RAISE NOTICE 'drop table runs'; END ${tag}$"
    assert check(safe) == []


# --- the lock ledger -------------------------------------------------------------------------


def test_bulk_insert_after_a_foreign_key_to_an_existing_table_is_refused() -> None:
    sql = """CREATE TABLE run_notes (id bigint, run_id bigint REFERENCES runs (id));
INSERT INTO run_notes (id, run_id) SELECT id, id FROM runs;"""
    (finding,) = check(sql)
    assert (finding.rule, finding.blocking, finding.line) == ("held-lock", True, 2)
    assert "line 1" in finding.message and "SHARE ROW EXCLUSIVE on runs" in finding.message


def test_insert_values_after_a_foreign_key_passes() -> None:
    sql = """CREATE TABLE run_notes (id bigint, run_id bigint REFERENCES runs (id));
INSERT INTO run_notes (id, run_id) VALUES (1, 1), (2, 1);"""
    assert check(sql) == []


def test_validate_after_add_column_gains_nothing_in_one_transaction() -> None:
    sql = """ALTER TABLE runs ADD COLUMN note text;
ALTER TABLE runs VALIDATE CONSTRAINT ck_runs_state;"""
    assert errors(sql) == {"held-lock"}
    assert check(sql, transactional=False) == []


def test_validate_alone_passes() -> None:
    assert check("ALTER TABLE runs VALIDATE CONSTRAINT ck_runs_state") == []


def test_explicit_lock_is_entered_in_the_ledger() -> None:
    sql = "LOCK TABLE runs IN SHARE MODE; CREATE TABLE copy AS SELECT * FROM runs"
    assert errors(sql) == {"held-lock"}
    assert check("LOCK TABLE runs IN ACCESS SHARE MODE; CREATE TABLE c AS SELECT * FROM runs") == []


def test_held_lock_is_a_warning_outside_expand() -> None:
    sql = "ALTER TABLE runs ADD COLUMN note text; DELETE FROM runs WHERE id < 10"
    assert "held-lock" in warnings(sql, Phase.CONTRACT)


# --- rewrites --------------------------------------------------------------------------------


def test_stored_generated_column_rewrites_an_existing_table() -> None:
    sql = "ALTER TABLE runs ADD COLUMN total int GENERATED ALWAYS AS (a + b) STORED"
    assert errors(sql) == {"table-rewrite"}
    assert warnings(sql, Phase.OFFLINE) == {"table-rewrite"}


def test_stored_generated_column_on_a_new_table_passes() -> None:
    sql = (
        "CREATE TABLE runs (a int, b int); "
        "ALTER TABLE runs ADD COLUMN total int GENERATED ALWAYS AS (a + b) STORED"
    )
    assert check(sql) == []


# --- unnamed constraints ---------------------------------------------------------------------


def test_unnamed_constraints_are_read_as_the_named_ones() -> None:
    for sql in [
        "ALTER TABLE runs ADD CHECK (attempts >= 0)",
        "ALTER TABLE runs ADD FOREIGN KEY (flow_id) REFERENCES flows (id)",
        "ALTER TABLE runs ADD UNIQUE (key)",
    ]:
        assert errors(sql) == {"constraint-without-not-valid"}, sql


def test_unnamed_constraints_not_valid_pass() -> None:
    assert check("ALTER TABLE runs ADD CHECK (attempts >= 0) NOT VALID") == []
    assert check("ALTER TABLE runs ADD FOREIGN KEY (flow_id) REFERENCES flows (id) NOT VALID") == []


# --- row changes -----------------------------------------------------------------------------


def test_update_of_columns_the_running_release_uses_is_refused() -> None:
    sql = "UPDATE flow_run SET state_type = 'CANCELLED' WHERE state_type = 'RUNNING'"
    (finding,) = check(sql)
    assert (finding.rule, finding.blocking) == ("data-change", True)
    assert "background change" in finding.message
    assert check(sql, Phase.BACKGROUND) == []


def test_backfill_of_a_column_the_change_added_is_a_warning() -> None:
    sql = "ALTER TABLE runs ADD COLUMN note text; UPDATE runs SET note = '' WHERE note IS NULL"
    assert "backfill" in warnings(sql)
    assert "data-change" not in errors(sql, transactional=False)


def test_delete_with_where_on_an_existing_table_is_refused_but_not_on_a_new_one() -> None:
    assert errors("DELETE FROM runs WHERE id < 10") == {"data-change"}
    assert check("CREATE TABLE scratch (id int); DELETE FROM scratch WHERE id < 10") == []


def test_update_of_a_table_created_in_the_same_change_passes() -> None:
    assert check("CREATE TABLE t (id int, n int); UPDATE t SET n = 1 WHERE id = 1") == []


IDENTIFIER = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@given(column=IDENTIFIER, upper=st.booleans(), quoted=st.booleans())
def test_backfill_is_recognised_in_any_case_or_quoting(
    column: str, upper: bool, quoted: bool
) -> None:
    assume(column not in ("set", "where", "from", "table", "add", "column", "null", "text"))
    written = f'"{column}"' if quoted else (column.upper() if upper else column)
    sql = f"ALTER TABLE runs ADD COLUMN {column} text; UPDATE runs SET {written} = 'x'"
    assert "backfill" in warnings(sql)
    assert "data-change" not in errors(sql)


# --- loosening drops -------------------------------------------------------------------------


def test_dropping_a_foreign_key_or_check_passes() -> None:
    assert check("ALTER TABLE runs DROP CONSTRAINT runs_flow_id_fkey") == []
    assert check("ALTER TABLE runs DROP CONSTRAINT IF EXISTS ck_runs_attempts") == []
    both = "ALTER TABLE runs DROP CONSTRAINT fk_runs_flow, DROP CONSTRAINT runs_n_check"
    assert check(both) == []


def test_dropping_a_unique_or_primary_key_or_an_unknown_constraint_is_refused() -> None:
    for name in ["runs_key_key", "runs_pkey", "uq_runs_key", "pk_runs", "runs_something"]:
        assert errors(f"ALTER TABLE runs DROP CONSTRAINT {name}") == {"drop"}, name


def test_dropping_a_plain_index_passes_concurrently_and_warns_otherwise() -> None:
    assert check("DROP INDEX CONCURRENTLY ix_runs_state", transactional=False) == []
    plain = check("DROP INDEX ix_runs_state")
    assert [(f.rule, f.blocking) for f in plain] == [("drop-index-without-concurrently", False)]


def test_dropping_a_unique_or_unknown_index_is_refused() -> None:
    assert "drop" in errors("DROP INDEX CONCURRENTLY uq_runs_key", transactional=False)
    assert "drop" in errors("DROP INDEX CONCURRENTLY runs_key_idx", transactional=False)


def test_dropping_an_index_created_in_the_same_change_passes() -> None:
    sql = "CREATE TABLE t (a int); CREATE UNIQUE INDEX t_a ON t (a); DROP INDEX t_a"
    assert errors(sql) == set()


# --- transaction boundaries inside a change ---------------------------------------------------

AUTOCOMMIT_BLOCK = """ALTER TABLE runs ADD COLUMN state_name text;
COMMIT;
CREATE INDEX CONCURRENTLY ix_runs_state_name ON runs (state_name);
BEGIN;
"""


def test_concurrently_between_commit_and_begin_passes_in_a_transactional_change() -> None:
    assert check(AUTOCOMMIT_BLOCK) == []
    assert check("END; CREATE INDEX CONCURRENTLY ix_a ON a (x); START TRANSACTION") == []


def test_concurrently_without_the_commit_is_refused() -> None:
    sql = AUTOCOMMIT_BLOCK.replace("COMMIT;\n", "")
    assert errors(sql) == {"concurrently-in-transaction"}
    after_begin = AUTOCOMMIT_BLOCK + "CREATE INDEX CONCURRENTLY ix_b ON runs (b)"
    assert errors(after_begin) == {"concurrently-in-transaction"}
    chained = "COMMIT AND CHAIN; CREATE INDEX CONCURRENTLY ix_a ON a (x)"
    assert errors(chained) == {"concurrently-in-transaction"}


def test_begin_opens_a_transaction_in_a_change_outside_one() -> None:
    sql = "BEGIN; CREATE INDEX CONCURRENTLY ix_a ON a (x); COMMIT"
    assert errors(sql, transactional=False) == {"concurrently-in-transaction"}


def test_a_lock_taken_before_commit_is_not_held_after_it() -> None:
    sql = "ALTER TABLE runs ADD COLUMN note text; COMMIT; INSERT INTO archive SELECT * FROM runs"
    assert errors(sql) == set()


def test_a_lock_taken_after_begin_is_held() -> None:
    sql = (
        "COMMIT; BEGIN; ALTER TABLE runs ADD COLUMN note text; "
        "INSERT INTO archive SELECT * FROM runs"
    )
    assert errors(sql) == {"held-lock"}


# --- index renames ----------------------------------------------------------------------------


def test_renaming_an_index_passes() -> None:
    assert check("ALTER INDEX ix_concurrency_limit__tag RENAME TO uq_concurrency_limit__tag") == []
    assert check("ALTER INDEX IF EXISTS app.runs_state_idx RENAME TO runs_status_idx") == []


def test_renaming_a_column_or_an_index_backing_a_constraint_is_refused() -> None:
    assert errors("ALTER TABLE runs RENAME COLUMN state TO status") == {"rename"}
    assert errors("ALTER INDEX runs_ref_key RENAME TO runs_reference_key") == {"rename"}


# --- filling NULLs ------------------------------------------------------------------------------

NULL_FILL = """WITH batch AS (SELECT id FROM runs WHERE state_name IS NULL LIMIT 500)
UPDATE runs SET state_name = s.name FROM states s, batch
WHERE runs.state_id = s.id AND runs.id = batch.id"""


def test_update_filling_only_nulls_through_a_batch_query_is_a_backfill_warning() -> None:
    (finding,) = check(NULL_FILL)
    assert (finding.rule, finding.blocking) == ("backfill", False)
    assert check(NULL_FILL, Phase.CONTRACT) == []


def test_update_filling_only_nulls_is_recognised_in_where_and_in_subqueries() -> None:
    assert errors("UPDATE runs SET note = '' WHERE note IS NULL AND id < 10") == set()
    in_batch = (
        "UPDATE runs SET note = '' WHERE runs.id IN "
        "(SELECT id FROM runs WHERE (note IS NULL) LIMIT 500)"
    )
    assert warnings(in_batch) == {"backfill"}
    inline = (
        "UPDATE runs r SET note = '' FROM (SELECT id FROM runs WHERE note IS NULL LIMIT 9) b "
        "WHERE r.id = b.id"
    )
    assert warnings(inline) == {"backfill"}


def test_update_without_the_null_restriction_is_refused() -> None:
    assert errors(NULL_FILL.replace("state_name IS NULL", "state_id > 0")) == {"data-change"}
    assert errors(NULL_FILL.replace("IS NULL", "IS NOT NULL")) == {"data-change"}
    assert errors(NULL_FILL.replace("runs.id = batch.id", "runs.state_id = batch.id")) == {
        "data-change"
    }


def test_update_restricting_only_some_of_its_columns_or_by_or_is_refused() -> None:
    both = "UPDATE runs SET note = '', state = 'x' WHERE note IS NULL"
    assert errors(both) == {"data-change"}
    either = "UPDATE runs SET note = '' WHERE note IS NULL OR id < 10"
    assert errors(either) == {"data-change"}
    other_table = (
        "WITH batch AS (SELECT id FROM notes WHERE note IS NULL) "
        "UPDATE runs SET note = '' FROM batch WHERE runs.id = batch.id"
    )
    assert errors(other_table) == {"data-change"}
