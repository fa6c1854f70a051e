"""The error tree: one root, a hint at every raise, and the data an error says it carries."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from stairway import errors, sessions
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import (
    ChangeFailed,
    DriftError,
    ExitCode,
    PlanError,
    SessionError,
    StairwayError,
    UsageRefused,
)
from stairway.schema import migrator
from stairway.targets import named_release
from stairway.versions import Release, Version, check_hop, upgrade_path

SRC = Path(errors.__file__).parent

# Raise sites still without a hint, by file and count; a new one fails the scan below.
UNHINTED: dict[str, int] = {}


def error_classes() -> list[type]:
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and value.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_derives_from_the_root(cls: type) -> None:
    assert cls is ExitCode or issubclass(cls, StairwayError)


def test_session_errors_are_one_subtree_that_sessions_re_exports() -> None:
    assert issubclass(errors.SessionTooNew, SessionError)
    assert issubclass(errors.SessionUnreadable, SessionError)
    assert sessions.SessionTooNew is errors.SessionTooNew
    assert sessions.SessionError is errors.SessionError


# --- every raise site passes a hint ------------------------------------------------------------


def _takes_hint(init: ast.FunctionDef | None, inherited: bool) -> bool:
    if init is None:
        return inherited
    names = [a.arg for a in (*init.args.args, *init.args.kwonlyargs)]
    return "hint" in names or init.args.kwarg is not None


def hinted_classes(trees: dict[Path, ast.Module]) -> dict[str, bool]:
    """Every error class by name, and whether its caller gives the hint (True) or the class
    writes its own (False): the root's subclasses here, and those defined elsewhere in src."""
    found = {
        c.__name__: "hint" in inspect.signature(c.__init__).parameters
        for c in error_classes()
        if c is not ExitCode
    }
    classes = [n for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for node in classes:
            bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in found]
            if node.name in found or not bases:
                continue
            init = next(
                (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                None,
            )
            found[node.name] = _takes_hint(init, found[bases[0]])
            grew = True
    return found


def _raised(node: ast.Raise) -> tuple[str, ast.Call] | None:
    call = node.exc
    if not isinstance(call, ast.Call):
        return None
    func = call.func
    name = (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else None
    )
    return (name, call) if name else None


def unhinted(trees: dict[Path, ast.Module], classes: dict[str, bool]) -> Iterator[str]:
    for path, tree in trees.items():
        for node in ast.walk(tree):
            raised = _raised(node) if isinstance(node, ast.Raise) else None
            if raised is None or not classes.get(raised[0], False):
                continue
            keywords = {k.arg: k.value for k in raised[1].keywords}
            if None in keywords:  # **kwargs: what it holds is not known here
                continue
            hint = keywords.get("hint")
            if hint is None or (isinstance(hint, ast.Constant) and not str(hint.value).strip()):
                yield f"{path.relative_to(SRC)}:{node.lineno}"


def test_every_raise_site_passes_a_hint() -> None:
    trees = {p: ast.parse(p.read_text("utf-8")) for p in sorted(SRC.rglob("*.py"))}
    found = list(unhinted(trees, hinted_classes(trees)))
    counted: dict[str, int] = {}
    for site in found:
        where = site.rsplit(":", 1)[0]
        counted[where] = counted.get(where, 0) + 1
    unexpected = [
        s for s in found if counted[s.rsplit(":", 1)[0]] > UNHINTED.get(s.rsplit(":", 1)[0], 0)
    ]
    assert not unexpected, f"raised without a hint: {unexpected}"


def test_the_scan_finds_a_raise_without_a_hint() -> None:
    tree = ast.parse(
        'def f():\n    raise PlanError("no", hint="")\n\ndef g():\n    raise PlanError("no")\n'
    )
    assert len(list(unhinted({SRC / "x.py": tree}, {"PlanError": True}))) == 2


# --- the data errors carry ----------------------------------------------------------------------


def test_a_failing_change_carries_its_number_and_line(
    database_url: str, shop_catalog: Path
) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: expand\n"
        "ALTER TABLE orders ADD COLUMN status TEXT;\n"
        "INSERT INTO orders (id, customer_id) VALUES (2, 999);\n",  # foreign key fails here
        encoding="utf-8",
    )
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 5)
    with pytest.raises(ChangeFailed) as raised:
        migrator.migrate(engine, catalog, 6)
    assert (raised.value.change, raised.value.line) == (6, 3)
    assert raised.value.exit_code == ExitCode.FAILED and raised.value.hint


def test_drift_carries_the_drifted_changes(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(shop_catalog), 3)
    changed = shop_catalog / "schema" / "0002_orders.sql"
    changed.write_text(changed.read_text("utf-8").replace("DEFAULT 0", "DEFAULT 1"), "utf-8")
    with pytest.raises(DriftError) as raised:
        migrator.migrate(engine, load_catalog(shop_catalog), 6)
    assert raised.value.changes == (2,) and raised.value.change == 2


def test_a_refused_hop_carries_both_versions() -> None:
    releases = [Release(Version.parse(v), schema=i) for i, v in enumerate(("1.0.0", "2.0.0"))]
    with pytest.raises(PlanError) as raised:
        upgrade_path(releases, Version.parse("2.0.0"), Version.parse("1.0.0"))
    assert (raised.value.current, raised.value.target) == ("2.0.0", "1.0.0")
    check_hop(releases, Version.parse("1.0.0"), Version.parse("2.0.0"))


def test_a_session_too_new_carries_both_formats() -> None:
    with pytest.raises(errors.SessionTooNew) as raised:
        sessions.SessionStore(None, "p", version=1)._check_not_newer(3, "abcdefgh")  # type: ignore[arg-type]
    assert (raised.value.found, raised.value.reads) == (3, 1)


def test_an_unknown_target_release_carries_the_version_asked_for(shop_catalog: Path) -> None:
    with pytest.raises(PlanError) as refused:
        named_release(load_catalog(shop_catalog), "9.9.9")
    assert refused.value.target == "9.9.9" and refused.value.current is None


def test_an_error_quoting_outside_text_shows_its_control_characters_and_markup_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stairway.cli.app import _failed

    quoted = "agent relay-1 runs 1.0\x1b[2J[red]x[/red]\rfake"
    code = _failed(UsageRefused(f"waits for: {quoted}\nand more", hint="stop \x1b[5mit"))
    shown = capsys.readouterr().err
    assert code == 2 and "\x1b" not in shown and "\r" not in shown
    assert "\\x1b[2J[red]x[/red]\\x0dfake" in shown and "\nand more" in shown
    assert "stop \\x1b[5mit" in shown
