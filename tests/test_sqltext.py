"""Splitting SQL on tokens (never on a regular expression) and checksums that ignore layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stairway.schema.sqltext import SqlSyntaxError, checksum, split_statements

PLPGSQL = """CREATE FUNCTION touch() RETURNS trigger AS $body$
BEGIN
  NEW.updated := now(); -- a semicolon in a body
  RETURN NEW;
END
$body$ LANGUAGE plpgsql;
DO $$ BEGIN PERFORM 1; END $$;
COMMENT ON TABLE "odd; name" IS 'it''s; fine';
CREATE INDEX CONCURRENTLY ix ON t (a)
"""


def test_bodies_strings_comments_and_quoted_names_are_not_cut() -> None:
    statements = split_statements(PLPGSQL)
    assert [s.line for s in statements] == [1, 7, 8, 9]
    assert statements[0].text.endswith("LANGUAGE plpgsql")
    assert "RETURN NEW;" in statements[0].text
    assert statements[1].text == "DO $$ BEGIN PERFORM 1; END $$"
    assert statements[2].text == "COMMENT ON TABLE \"odd; name\" IS 'it''s; fine'"


def test_sqlite_trigger_body_is_one_statement() -> None:
    sql = (
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
        "  UPDATE a SET n = CASE WHEN 1 THEN 2 ELSE 3 END;\n"
        "  INSERT INTO log VALUES (1);\n"
        "END;\n"
        "SELECT 1;"
    )
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].text.endswith("END")
    assert statements[1].line == 5


def test_first_line_offsets_line_numbers() -> None:
    assert [s.line for s in split_statements("\n\nSELECT 1;\nSELECT 2", first_line=10)] == [12, 13]


def test_unterminated_string_is_an_error_with_a_line() -> None:
    with pytest.raises(SqlSyntaxError):
        split_statements("SELECT 1;\nSELECT 'open")


def test_line_endings_and_trailing_whitespace_do_not_change_the_checksum() -> None:
    base = "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n"
    assert checksum(base) == checksum(base.replace("\n", "\r\n"))
    assert checksum(base) == checksum(base.replace(";\n", ";   \t\n") + "\n\n")
    assert checksum(base) != checksum(base.replace("(1)", "(2)"))


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20))
def test_statements_round_trip(values: list[int]) -> None:
    sql = ";\n".join(f"INSERT INTO t VALUES ({v}, 'x;y')" for v in values)
    statements = split_statements(sql)
    assert [s.text for s in statements] == [f"INSERT INTO t VALUES ({v}, 'x;y')" for v in values]
    assert [s.line for s in statements] == list(range(1, len(values) + 1))
