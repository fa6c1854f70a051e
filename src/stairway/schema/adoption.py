"""Whether a database built before Stairway really holds changes 1..N, before ``baseline`` says so.

What changes 1..N create is not guessed from their text: they are applied, one by one, to an
empty scratch database of the same engine (a new database on the same PostgreSQL server, or a
temporary SQLite file), whose tables and columns are read after each change. The live
database's tables and columns are then compared with that. Stairway's own ``stairway_*`` tables
are left out on both sides. Only names are compared: not types, indexes, constraints or rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine, inspect, text

from stairway.errors import SchemaError, StairwayError
from stairway.schema import recorder
from stairway.schema.executor import apply
from stairway.schema.source import ChangeSource
from stairway.scratch import scratch_engine

Shape = Mapping[str, frozenset[str]]  # table -> its columns
OWN_PREFIX = "stairway_"
_PG_COLUMNS = text(
    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
    "JOIN information_schema.tables t "
    "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
    "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
)


@dataclass(frozen=True)
class ShapeDiff:
    """How a database's tables and columns differ from what changes 1..N create."""

    missing_tables: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()  # table.column
    extra_tables: tuple[str, ...] = ()  # created only by changes above N
    extra_columns: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        """Whether the tables and columns are exactly those the changes create."""
        return not (
            self.missing_tables or self.missing_columns or self.extra_tables or self.extra_columns
        )

    def describe(self) -> str:
        """What differs, as one sentence; empty when nothing does."""
        parts = [
            _listed("missing tables", self.missing_tables),
            _listed("missing columns", self.missing_columns),
            _listed("tables that only later changes create", self.extra_tables),
            _listed("columns that only later changes create", self.extra_columns),
        ]
        return "; ".join(p for p in parts if p)


def _listed(what: str, names: tuple[str, ...]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"{what}: {shown}"


def compare_shapes(expected: Shape, actual: Shape, known: Shape) -> ShapeDiff:
    """``actual`` against ``expected``. What ``actual`` has beyond ``expected`` counts only when
    some change of the catalog (``known``) creates it: other tables are the operator's own."""
    missing_tables = sorted(set(expected) - set(actual))
    missing_columns = [
        f"{t}.{c}" for t in sorted(expected) if t in actual for c in sorted(expected[t] - actual[t])
    ]
    extra_tables = sorted(t for t in set(actual) - set(expected) if t in known)
    extra_columns = [
        f"{t}.{c}"
        for t in sorted(set(expected) & set(actual))
        for c in sorted(actual[t] - expected[t])
        if c in known.get(t, frozenset())
    ]
    return ShapeDiff(
        tuple(missing_tables), tuple(missing_columns), tuple(extra_tables), tuple(extra_columns)
    )


def shape_of(engine: Engine) -> dict[str, frozenset[str]]:
    """The database's tables and their columns, without Stairway's own tables."""
    found: dict[str, set[str]] = {}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            for table, column in conn.execute(_PG_COLUMNS):
                found.setdefault(str(table), set()).add(str(column))
    else:
        inspector = inspect(engine)
        for table in inspector.get_table_names():
            found[table] = {str(c["name"]) for c in inspector.get_columns(table)}
    return {t: frozenset(c) for t, c in found.items() if not t.startswith(OWN_PREFIX)}


def product_tables(engine: Engine) -> list[str]:
    """The database's tables that are not Stairway's own."""
    return sorted(shape_of(engine))


def shapes_by_change(live: Engine, catalog: ChangeSource) -> list[dict[str, frozenset[str]]]:
    """The shape of an empty database after change 0 (nothing), 1, 2 ... of ``catalog``."""
    with _scratch(live) as scratch:
        with scratch.begin() as conn:
            recorder.ensure_tables(conn)
        shapes = [shape_of(scratch)]
        for change in catalog.changes:
            try:
                apply(scratch, change, "scratch")
            except StairwayError as failure:
                raise SchemaError(
                    f"cannot tell what changes 1..{change.number} create: {change.label} failed "
                    f"in an empty scratch database ({failure.message})",
                    hint="check the database by hand, then baseline with --force",
                ) from failure
            shapes.append(shape_of(scratch))
        return shapes


@contextmanager
def _scratch(live: Engine) -> Iterator[Engine]:
    with ExitStack() as stack:
        try:
            scratch = stack.enter_context(scratch_engine(live, "shape"))
        except psycopg.Error as failure:
            raise SchemaError(
                "cannot create a scratch database to rebuild the catalog's changes in: "
                f"{str(failure).strip()}",
                hint="grant the site's user CREATEDB, or check the database by hand and "
                "baseline with --force",
            ) from None
        yield scratch


def union(shapes: Sequence[Shape]) -> dict[str, frozenset[str]]:
    """Every table and column some prefix of the changes creates."""
    known: dict[str, frozenset[str]] = {}
    for shape in shapes:
        for table, columns in shape.items():
            known[table] = known.get(table, frozenset()) | columns
    return known


@dataclass(frozen=True)
class Survey:
    """The live database's shape beside the shape after each change of the catalog."""

    shapes: tuple[Shape, ...]  # after change 0 (nothing), 1, 2 ...
    actual: Shape

    def diff(self, at: int) -> ShapeDiff:
        """How the live database differs from what changes 1..``at`` create."""
        return compare_shapes(self.shapes[at], self.actual, union(self.shapes))

    def guess(self) -> tuple[int, int] | None:
        """The lowest and highest N whose changes 1..N create exactly the live tables and
        columns. They differ when changes between them alter no table or column (a backfill):
        whether those ran cannot be seen."""
        matching = {n for n in range(1, len(self.shapes)) if self.diff(n).matches}
        if not matching:
            return None
        low = high = max(matching)
        while low - 1 in matching:  # the run of changes that leave no trace, just below
            low -= 1
        return low, high


def suggestion(guess: tuple[int, int]) -> str:
    """What to run for a database whose shape is that of changes 1..low (to 1..high)."""
    low, high = guess
    if low == high:
        return (
            f"its tables and columns are those of changes 1..{low}: `stairway baseline --at {low}`"
        )
    return (
        f"its tables and columns are those of changes 1..{low} and of 1..{high} alike (changes "
        f"{low + 1}..{high} alter no table or column): `stairway baseline --at {low}` if they "
        f"did not run, which runs them again, or `stairway baseline --at {high}` if they did"
    )


def survey(live: Engine, catalog: ChangeSource) -> Survey:
    """The live database's tables and columns beside those after each change of ``catalog``,
    found by applying the changes to a scratch database.
    """
    return Survey(tuple(shapes_by_change(live, catalog)), shape_of(live))


def refuse_unlike(live: Engine, catalog: ChangeSource, at: int) -> None:
    """Refuse to record changes 1..``at`` as present when the database does not hold them."""
    found = survey(live, catalog)
    diff = found.diff(at)
    if diff.matches:
        return
    guess = found.guess()
    better = (
        suggestion(guess)
        if guess
        else "no number of changes creates exactly its tables and columns: bring the database "
        "in line by hand"
    )
    raise SchemaError(
        f"the database does not hold what changes 1..{at} create: {diff.describe()}",
        hint=f"{better}; or, once checked by hand, `stairway baseline --at {at} --force` "
        "(docs/schema-engine.md)",
    )


def adoption_hint(live: Engine, catalog: ChangeSource) -> str | None:
    """For a database with product tables and no Stairway records: how to adopt it."""
    tables = product_tables(live)
    if not tables:
        return None
    said = f"not adopted: the database holds {len(tables)} table(s) but no Stairway records"
    try:
        guess = survey(live, catalog).guess()
    except StairwayError:
        guess = None
    if guess:
        return f"{said}; {suggestion(guess)}"
    return (
        f"{said}; adopt it with `stairway baseline --at N`, N being the last change of the "
        "catalog whose tables and columns it already has (baseline checks that it does)"
    )
