"""Properties of keyed config-file migrations, on random documents in JSON, TOML and YAML.

Each migrated file is read back with a plain parser and compared with the same migrations
applied to a plain dict: so the output is valid, holds exactly what it should (nothing lost that
no migration names), a second run changes nothing, and the operator's comment survives.
"""

from __future__ import annotations

import copy
import io
import json
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from stairway.configfiles import ConfigMigration, ConfigOp, Format, migrate_bytes
from stairway.configfiles import keys as edits
from stairway.configfiles.migration import unsettled_pairs
from stairway.versions import Version

NAMES = st.sampled_from(["a", "b", "c", "d"])
KEYS = st.lists(NAMES, min_size=1, max_size=3).map(tuple)
SCALARS = st.one_of(st.integers(-1000, 1000), st.booleans(), st.text("abxyz", max_size=6))
DOCUMENTS = st.recursive(
    st.dictionaries(NAMES, SCALARS, max_size=4),
    lambda inner: st.dictionaries(NAMES, st.one_of(SCALARS, inner), max_size=4),
    max_leaves=12,
)
COMMENT = "# kept by the operator"


def migrations(fmt: Format) -> st.SearchStrategy[list[ConfigMigration]]:
    """Lists the catalog accepts: none undoes another (``unsettled_pairs``)."""
    return _migrations(fmt).filter(lambda found: not unsettled_pairs(found))


@st.composite
def _migrations(draw: st.DrawFn, fmt: Format) -> list[ConfigMigration]:
    found = []
    for number in range(1, draw(st.integers(1, 4)) + 1):
        op = draw(st.sampled_from([ConfigOp.RENAME, ConfigOp.REMOVE, ConfigOp.SET_DEFAULT]))
        key = draw(KEYS)
        to = draw(KEYS.filter(lambda t, k=key: t[: len(k)] != k and k[: len(t)] != t))
        found.append(
            ConfigMigration(
                number,
                f"app.{fmt.value}",
                Version("2.0.0"),
                op,
                fmt,
                key=key,
                to=to if op == ConfigOp.RENAME else (),
                value=draw(SCALARS) if op == ConfigOp.SET_DEFAULT else None,
            )
        )
    return found


def render(fmt: Format, document: dict[str, Any]) -> str:
    if fmt == Format.JSON:
        return json.dumps(document, indent=2) + "\n"
    if fmt == Format.TOML:
        return f"{COMMENT}\n" + tomlkit.dumps(_toml_order(document))
    out = io.StringIO()
    YAML().dump(document, out) if document else out.write("{}\n")
    return f"{COMMENT}\n" + out.getvalue()


def _toml_order(document: dict[str, Any]) -> dict[str, Any]:
    """Scalars before tables, as a person writes TOML (a key after a table belongs to it)."""
    scalars = {k: v for k, v in document.items() if not isinstance(v, dict)}
    tables = {k: _toml_order(v) for k, v in document.items() if isinstance(v, dict)}
    return scalars | tables


def read(fmt: Format, text: str) -> dict[str, Any]:
    if fmt == Format.JSON:
        return dict(json.loads(text))
    if fmt == Format.TOML:
        return tomllib.loads(text)
    return _plain(YAML(typ="safe").load(text) or {})


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


def reference(document: dict[str, Any], applied: list[ConfigMigration]) -> dict[str, Any]:
    """The same migrations on a plain dict: what the file must hold afterwards."""
    result = copy.deepcopy(document)
    for migration in applied:
        if migration.op == ConfigOp.RENAME:
            edit = edits.rename(result, migration.key, migration.to, edits.PlainDicts())
        elif migration.op == ConfigOp.REMOVE:
            edit = edits.remove(result, migration.key)
        else:
            edit = edits.set_default(result, migration.key, migration.value, edits.PlainDicts())
        if edit == edits.Edit.CONFLICT:
            break  # the rest wait for the operator
    return result


def check(fmt: Format, document: dict[str, Any], applied: list[ConfigMigration]) -> None:
    text = render(fmt, document)
    path = Path(f"app.{fmt.value}")
    outcome = migrate_bytes(path, text.encode(), applied)
    after = outcome.after.decode()
    assert read(fmt, after) == _sorted_like(fmt, reference(document, applied))
    assert not migrate_bytes(path, outcome.after, applied).changed, "a second run changes nothing"
    if fmt != Format.JSON:
        assert after.startswith(COMMENT), "the operator's comment survives"
    if not outcome.applied:
        assert outcome.after == text.encode(), "nothing applied: the bytes are the same"


def _sorted_like(fmt: Format, document: dict[str, Any]) -> dict[str, Any]:
    return _plain(document) if fmt != Format.TOML else document


@settings(max_examples=150, deadline=None)
@given(DOCUMENTS, migrations(Format.TOML))
def test_toml_migrations_match_the_reference_and_are_idempotent(
    document: dict[str, Any], applied: list[ConfigMigration]
) -> None:
    check(Format.TOML, document, applied)


@settings(max_examples=150, deadline=None)
@given(DOCUMENTS, migrations(Format.YAML))
def test_yaml_migrations_match_the_reference_and_are_idempotent(
    document: dict[str, Any], applied: list[ConfigMigration]
) -> None:
    check(Format.YAML, document, applied)


@settings(max_examples=150, deadline=None)
@given(DOCUMENTS, migrations(Format.JSON))
def test_json_migrations_match_the_reference_and_are_idempotent(
    document: dict[str, Any], applied: list[ConfigMigration]
) -> None:
    check(Format.JSON, document, applied)


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS, KEYS, KEYS, st.sampled_from([Format.TOML, Format.YAML, Format.JSON]))
def test_renaming_an_absent_key_leaves_the_bytes_alone(
    document: dict[str, Any], key: tuple[str, ...], to: tuple[str, ...], fmt: Format
) -> None:
    if edits.has(document, key) or to[: len(key)] == key or key[: len(to)] == to:
        return
    text = render(fmt, document).encode()
    rename = ConfigMigration(1, "f", Version("2.0.0"), ConfigOp.RENAME, fmt, key=key, to=to)
    assert migrate_bytes(Path(f"app.{fmt.value}"), text, [rename]).after == text
