"""Object migrations applied while parsing: pure, from plain documents, no database."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stairway.catalog import load_catalog
from stairway.errors import ObjectMigrationError
from stairway.objects.migrate import Migrator, migrate_document
from stairway.objects.migration import ObjectMigration, Op, Transition, reused_paths
from stairway.versions import Version

PEOPLE = Path(__file__).parent / "catalogs" / "people"
V1 = Version("1.0.0")


@pytest.fixture(scope="module")
def migrator() -> Migrator:
    catalog = load_catalog(PEOPLE)
    return Migrator(catalog.object_migrations, subtype_path=("kind",))


def names(outcome_applied: tuple[ObjectMigration, ...]) -> list[str]:
    return [m.describe().split(": ", 1)[1] for m in outcome_applied]


def test_rename_move_and_remove_apply_to_an_old_user(migrator: Migrator) -> None:
    user = {"fullName": "Ada", "address": {"city": "Brno", "zip": "60200"}, "legacyFlags": [1]}
    outcome = migrator.migrate("User", user, V1)
    assert outcome.document == {
        "displayName": "Ada",
        "address": {"zip": "60200"},
        "location": {"city": "Brno"},
    }
    assert outcome.stale
    assert [m.op for m in outcome.applied] == [Op.RENAME, Op.MOVE, Op.REMOVE]
    reasons = [a.reason for a in outcome.attention]
    assert reasons == ["applied; an administrator should review it"]  # the semi-automatic move


def test_objects_written_by_the_new_release_are_left_alone(migrator: Migrator) -> None:
    user = {"fullName": "kept as is: 2.0.0 wrote it on purpose"}
    outcome = migrator.migrate("User", dict(user), Version("2.0.0"))
    assert outcome.document == user
    assert not outcome.stale


def test_an_unknown_writer_gets_every_migration(migrator: Migrator) -> None:
    outcome = migrator.migrate("User", {"fullName": "Ada"}, None)
    assert outcome.document == {"displayName": "Ada"}


def test_subtype_filter_and_transform_handler(migrator: Migrator) -> None:
    ldap = {"kind": "ldap", "url": "ldap://dir.example:636"}
    csv = {"kind": "csv", "url": "file:///data/people.csv"}
    assert migrator.migrate("Connector", ldap, V1).document == {
        "kind": "ldap",
        "host": "dir.example",
        "port": 636,
    }
    untouched = migrator.migrate("Connector", copy.deepcopy(csv), V1)
    assert untouched.document == csv and not untouched.stale


def test_manual_and_dead_end_are_reported_never_applied(migrator: Migrator) -> None:
    connector = {"kind": "csv", "pollingScript": "poll.groovy"}
    outcome = migrator.migrate("Connector", dict(connector), V1)
    assert outcome.document == connector
    assert not outcome.stale
    assert [a.migration.transition for a in outcome.attention] == [Transition.MANUAL]
    user = migrator.migrate("User", {"otpSeed": "x"}, Version("2.0.0"))
    assert [a.migration.transition for a in user.attention] == [Transition.DEAD_END]
    assert user.document == {"otpSeed": "x"}


def test_rename_never_overwrites_an_existing_target(migrator: Migrator) -> None:
    outcome = migrator.migrate("User", {"fullName": "old", "displayName": "new"}, V1)
    assert outcome.document == {"fullName": "old", "displayName": "new"}
    assert "already set" in outcome.attention[0].reason


def test_move_blocked_by_a_scalar_is_undone() -> None:
    move = ObjectMigration(1, "T", Version("2"), Op.MOVE, ("a",), to=("b", "c"))
    outcome = migrate_document("T", {"a": 1, "b": 5}, "1", [move])
    assert outcome.document == {"a": 1, "b": 5}
    assert "not inside an object" in outcome.attention[0].reason


def test_migrate_document_leaves_its_argument_alone(migrator: Migrator) -> None:
    catalog = load_catalog(PEOPLE)
    user = {"fullName": "Ada"}
    outcome = migrate_document("User", user, "1.0.0", catalog.object_migrations)
    assert user == {"fullName": "Ada"}
    assert outcome.document == {"displayName": "Ada"}


def test_parse_refuses_what_is_not_a_json_object(migrator: Migrator) -> None:
    with pytest.raises(ObjectMigrationError, match="not valid JSON"):
        migrator.parse("User", b'{"fullName": ', V1)
    with pytest.raises(ObjectMigrationError, match="not a JSON object"):
        migrator.parse("User", b"[1, 2]", V1)


def test_a_failing_handler_names_the_migration() -> None:
    def broken(document: dict[str, object]) -> None:
        raise KeyError("host")

    transform = ObjectMigration(
        7, "T", Version("2"), Op.TRANSFORM, ("a",), handler_name="h:broken", handler=broken
    )
    with pytest.raises(ObjectMigrationError, match=r"T#7 \(h:broken\) raised KeyError"):
        migrate_document("T", {"a": 1}, "1", [transform])


# --- properties --------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
DOCUMENTS = st.recursive(
    st.dictionaries(KEYS, JSON_LEAF, max_size=4),
    lambda children: st.dictionaries(KEYS, children | JSON_LEAF, max_size=4),
    max_leaves=12,
)
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(tuple)


@st.composite
def migrations(draw: st.DrawFn) -> list[ObjectMigration]:
    found = []
    for number in range(1, draw(st.integers(1, 4)) + 1):
        op = draw(st.sampled_from([Op.RENAME, Op.MOVE, Op.REMOVE]))
        path = draw(PATHS)
        to = (draw(KEYS),) if op == Op.RENAME else draw(PATHS) if op == Op.MOVE else ()
        found.append(ObjectMigration(number, "T", Version("2"), op, path, to=to))
    # The catalog refuses reused paths and targets inside their own source.
    assume(not reused_paths(found))
    assume(all(not m.to or m.target[: len(m.path)] != m.path for m in found))
    return found


@given(DOCUMENTS, migrations())
def test_migrating_twice_changes_nothing_more(
    document: dict[str, object], due: list[ObjectMigration]
) -> None:
    once = migrate_document("T", document, None, due).document
    twice = migrate_document("T", once, None, due)
    assert twice.document == once


@given(DOCUMENTS, PATHS, KEYS)
def test_renaming_an_absent_path_is_a_no_op(
    document: dict[str, object], path: tuple[str, ...], to: str
) -> None:
    rename = ObjectMigration(1, "T", Version("2"), Op.RENAME, path, to=(to,))
    migrator = Migrator([rename])
    holder: object = document
    for key in path[:-1]:
        holder = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(holder, dict) and path[-1] in holder:
        return  # present: not this property's case
    outcome = migrator.migrate("T", copy.deepcopy(document), None)
    assert outcome.document == document
    assert not outcome.stale and not outcome.attention


def leaves(document: object, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    if not isinstance(document, dict) or not document:
        return {prefix: orjson.dumps(document)}
    found: dict[tuple[str, ...], object] = {}
    for key, value in document.items():
        found.update(leaves(value, (*prefix, key)))
    return found


@given(DOCUMENTS, migrations())
def test_automatic_migrations_never_lose_a_value_they_do_not_name(
    document: dict[str, object], due: list[ObjectMigration]
) -> None:
    outcome = migrate_document("T", document, None, due)
    targets = [(*m.path[:-1], *m.to) if m.op == Op.RENAME else m.to for m in due]
    named = [m.path for m in due] + [t for t in targets if t]
    after = leaves(outcome.document)
    for path, value in leaves(document).items():
        # Under a named path a value may move or go; above one, an empty object may fill up.
        if any(path[: len(n)] == n or n[: len(path)] == path for n in named):
            continue
        assert after.get(path) == value, f"{path} changed"


@st.composite
def mixed_transitions(draw: st.DrawFn) -> list[ObjectMigration]:
    """Automatic and semi-automatic migrations: the ones a generated parser runs inline."""
    transitions = [Transition.AUTOMATIC, Transition.SEMI_AUTOMATIC]
    return [
        dataclasses.replace(m, transition=draw(st.sampled_from(transitions)))
        for m in draw(migrations())
    ]


@settings(max_examples=400)
@given(DOCUMENTS, mixed_transitions(), st.sampled_from(["1.0.0", None, "9.9.9", "junk"]))
def test_the_generated_parser_agrees_with_the_general_path(
    document: dict[str, object], found: list[ObjectMigration], stamp: str | None
) -> None:
    raw = orjson.dumps(document)
    generated = Migrator(found).parse("T", raw, stamp)
    general = Migrator(found, generate=False).parse("T", raw, stamp)
    assert generated == general


def test_the_generated_parser_refuses_what_is_not_a_json_object() -> None:
    rename = ObjectMigration(1, "T", Version("2.0.0"), Op.RENAME, ("a",), to=("b",))
    with pytest.raises(ObjectMigrationError, match="not a JSON object"):
        Migrator([rename]).parse("T", b"[1]", "1.0.0")
    with pytest.raises(ObjectMigrationError, match="not valid JSON"):
        Migrator([rename]).parse("T", b"{", "1.0.0")
