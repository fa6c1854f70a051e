"""A real product's Alembic history, adopted where it lies: Optuna's, read from its installed
wheel (never copied here), and small histories written per test for the graph and error rules.

What counts is what the product sees: its own tool (``alembic`` with the product's env.py, and
Optuna's own storage checks) must find the database at the revision Stairway says.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

import prestarted
from cli_runner import stairway
from conftest import CATALOGS, new_pg_database
from optuna_sites import (
    HEAD,
    OPTUNA_RDB,
    heads,
    optuna_catalog,
    optuna_tool,
    sa_url,
    schema_dump,
    site,
)
from stairway.catalog import load_catalog
from stairway.database import dispose_all
from stairway.errors import CatalogError
from stairway.schema import migrator
from stairway.schema.change import Phase


@pytest.fixture
def other_database(tmp_path: Path, database_url: str) -> Iterator[str]:
    """A second empty database of the same engine as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    with new_pg_database() as url:
        yield url


def test_init_gives_exactly_the_schema_of_the_products_own_fresh_install(
    tmp_path: Path, database_url: str, other_database: str
) -> None:
    optuna.storages.RDBStorage(sa_url(other_database)).engine.dispose()  # the product's own

    catalog = optuna_catalog(tmp_path)
    code, out, err = stairway(
        "init", "--site", str(site(tmp_path, database_url, catalog)), "--version", "3.2.0"
    )
    assert code == 0, out + err
    assert "changes 1..10 built by the product's own fresh install" in " ".join(out.split())
    assert schema_dump(database_url) == schema_dump(other_database)
    assert heads(database_url) == {HEAD}
    dispose_all()


def test_a_database_the_products_tool_migrated_is_adopted_and_upgraded(
    tmp_path: Path, database_url: str
) -> None:
    command.upgrade(optuna_tool(database_url), "v1.3.0.a")
    site_file = site(tmp_path, database_url, optuna_catalog(tmp_path))

    code, out, err = stairway("status", "--site", str(site_file))
    assert code == 0, out + err
    assert "optuna at 1.3.0" in out
    assert "alembic history in alembic_version at v1.3.0.a (change 3)" in " ".join(out.split())

    code, out, err = stairway("upgrade", "--site", str(site_file))
    assert code == 0, out + err
    assert "upgraded 1.3.0 -> 3.2.0" in out
    assert "adopting alembic history in alembic_version at v1.3.0.a" in " ".join(out.split())
    dispose_all()

    # the product's own check: Optuna refuses a storage whose schema is not its head
    storage = optuna.storages.RDBStorage(sa_url(database_url))
    assert storage.get_current_version() == storage.get_head_version() == HEAD
    study = optuna.create_study(storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2
    storage.engine.dispose()
    assert heads(database_url) == {HEAD}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_replaying_the_history_gives_what_alembic_upgrade_gives(
    database_url: str, other_database: str
) -> None:
    catalog = load_catalog(CATALOGS / "optuna")
    command.upgrade(optuna_tool(other_database), "head")  # one run of the product's own tool
    engine = create_engine(sa_url(database_url))
    migrator.migrate(engine, catalog, len(catalog.changes))  # one transaction per revision
    engine.dispose()
    assert schema_dump(database_url) == schema_dump(other_database)
    assert heads(database_url) == heads(other_database) == {HEAD}


def test_down_is_the_revisions_downgrade_and_the_products_tool_goes_on_from_there(
    sqlite_database: str,
) -> None:
    catalog = load_catalog(CATALOGS / "optuna")
    engine = create_engine(sa_url(sqlite_database))
    migrator.migrate(engine, catalog, 10)
    assert "trials_study_id_key" in {i["name"] for i in inspect(engine).get_indexes("trials")}
    migrator.downgrade(engine, catalog, 9, allow_data_loss=False)  # its downgrade drops an index
    assert "trials_study_id_key" not in {i["name"] for i in inspect(engine).get_indexes("trials")}
    engine.dispose()
    assert heads(sqlite_database) == {"v3.0.0.d"}
    command.upgrade(optuna_tool(sqlite_database), "head")  # the product's own tool, from there
    assert heads(sqlite_database) == {HEAD}


def test_a_failed_upgrade_puts_the_products_revision_back(
    tmp_path: Path, sqlite_database: str
) -> None:
    command.upgrade(optuna_tool(sqlite_database), "v1.3.0.a")
    smoke = '\n[[smoke]]\nname = "never"\nquery = "SELECT 1"\nexpect = 2\n'
    site_file = site(tmp_path, sqlite_database, optuna_catalog(tmp_path, smoke))
    code, out, err = stairway("upgrade", "--site", str(site_file))
    assert code == 1, out + err
    dispose_all()
    assert heads(sqlite_database) == {"v1.3.0.a"}
    assert (
        "trial_intermediate_values"
        not in inspect(create_engine(sa_url(sqlite_database))).get_table_names()
    )


# --- histories written per test -----------------------------------------------------------------

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.get_main_option("sqlalchemy.url")
with create_engine(url, poolclass=pool.NullPool).connect() as conn:
    context.configure(connection=conn)
    with context.begin_transaction():
        context.run_migrations()
"""


def revision_file(
    revision: str,
    down: str | tuple[str, ...] | None,
    up: str = "pass",
    down_body: str = "pass",
    head: str = "",
) -> str:
    return (
        f'"""{revision}"""\n{head}\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        f"depends_on = None\n\n\ndef upgrade():\n    {up}\n\n\ndef downgrade():\n    {down_body}\n"
    )


def history(tmp_path: Path, files: dict[str, str], releases: str = "", extra: str = "") -> Path:
    root = tmp_path / "catalog"
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic" / "env.py").write_text(ENV_PY, encoding="utf-8")
    for name, body in files.items():
        (versions / f"{name}.py").write_text(body, encoding="utf-8")
    manifest = f'[product]\nname = "p"\n\n[history]\ntool = "alembic"\npath = "alembic"\n{extra}\n'
    manifest += releases or '[[release]]\nversion = "1.0.0"\nschema = 1\n'
    (root / "stairway.toml").write_text(manifest, encoding="utf-8")
    return root


def releases(*schemas: str) -> str:
    """Releases 1.0.0, 2.0.0 ... at the revisions named."""
    return "".join(
        f'[[release]]\nversion = "{n}.0.0"\nschema = "{rev}"\n\n'
        for n, rev in enumerate(schemas, start=1)
    )


def their_tool(root: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(root / "alembic"))
    config.set_main_option("sqlalchemy.url", sa_url(url))
    return config


CREATE_A = 'op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))'


def test_branches_run_in_one_documented_order_and_alembic_agrees_at_every_step(
    tmp_path: Path, sqlite_database: str
) -> None:
    root = history(
        tmp_path,
        {
            "base": revision_file("base", None, CREATE_A),
            "a1": revision_file("a1", "base", 'op.add_column("a", sa.Column("x", sa.Integer))'),
            "a2": revision_file("a2", "a1", 'op.add_column("a", sa.Column("y", sa.Integer))'),
            "b1": revision_file("b1", "base", 'op.create_table("b", sa.Column("id", sa.Integer))'),
            "m": revision_file("m", ("a2", "b1")),
            "c": revision_file("c", "m", 'op.add_column("b", sa.Column("z", sa.Integer))'),
        },
        releases("a2", "c"),
    )
    catalog = load_catalog(root)
    assert [c.origin.ident for c in catalog.changes if c.origin] == [
        "base",
        "a1",
        "a2",
        "b1",
        "m",
        "c",
    ]
    assert [r.schema for r in catalog.releases] == [3, 6]
    engine = create_engine(sa_url(sqlite_database))
    migrator.migrate(engine, catalog, 4)  # both branches open: two heads, as Alembic keeps them
    engine.dispose()
    assert heads(sqlite_database) == {"a2", "b1"}
    command.upgrade(their_tool(root, sqlite_database), "heads")  # the product's tool goes on
    assert heads(sqlite_database) == {"c"}


BAD_HISTORIES = {
    "a revision that does not import": (
        {"r1": revision_file("r1", None, CREATE_A, head="import not_a_module_here")},
        "r1.py",
        "does not import",
    ),
    "a cycle": (
        {"r1": revision_file("r1", "r2"), "r2": revision_file("r2", "r1")},
        "r",
        "",
    ),
    "two heads and no merge": (
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1"),
            "r3": revision_file("r3", "r1"),
        },
        "r",
        "2 heads",
    ),
    "a missing down revision": (
        {"r1": revision_file("r1", None, CREATE_A), "r2": revision_file("r2", "gone")},
        "r2.py",
        "gone",
    ),
    "a revision id twice": (
        {"r1": revision_file("r1", None, CREATE_A), "r1_again": revision_file("r1", None)},
        "r1",
        "more than once",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_HISTORIES))
def test_a_broken_history_is_refused_naming_the_file_and_nothing_is_applied(
    tmp_path: Path, sqlite_database: str, case: str
) -> None:
    files, named, said = BAD_HISTORIES[case]
    root = history(tmp_path, files)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    assert named in str(raised.value.path) + raised.value.message
    assert said in raised.value.message
    code, out, err = stairway(
        "init", "--site", str(site(tmp_path, sqlite_database, root)), "--version", "1.0.0"
    )
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert inspect(create_engine(sa_url(sqlite_database))).get_table_names() == []


def test_an_applied_revision_edited_afterwards_is_drift(
    tmp_path: Path, sqlite_database: str
) -> None:
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", 'op.add_column("a", sa.Column("x", sa.Integer))'),
        },
        releases("r1", "r2"),
    )
    site_file = site(tmp_path, sqlite_database, root)
    assert stairway("init", "--site", str(site_file), "--version", "1.0.0")[0] == 0
    r1 = root / "alembic" / "versions" / "r1.py"
    r1.write_text(r1.read_text().replace('"a"', '"a_renamed"'), encoding="utf-8")
    code, out, err = stairway("migrate", "--site", str(site_file), "--to", "2.0.0")
    assert code == 2, out + err
    assert "drift" in out + err and "r1" in out + err
    assert heads(sqlite_database) == {"r1"}


ADD_NULLABLE = 'op.add_column("a", sa.Column("note", sa.Text))'
DROP_ID = 'op.drop_column("a", "id")'
DATA = 'op.get_bind().execute(sa.text("UPDATE a SET id = id"))'


@pytest.mark.parametrize(
    ("how", "body", "refused"),
    [
        ("marker", ADD_NULLABLE, ""),
        ("comment", ADD_NULLABLE, ""),
        ("catalog", ADD_NULLABLE, ""),
        ("marker", DROP_ID, "labelled expand, but"),
        ("comment", DATA, "cannot be proven expand: upgrade() works on the rows"),
    ],
)
def test_a_revision_declares_its_phase_and_expand_is_proven_from_its_rendered_sql(
    tmp_path: Path, how: str, body: str, refused: str
) -> None:
    head = {"marker": 'STAIRWAY_PHASE = "expand"', "comment": "# stairway: phase expand"}.get(
        how, ""
    )
    extra = 'phases = { r2 = "expand" }' if how == "catalog" else ""
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", body, head=head),
        },
        extra=extra,
    )
    if refused:
        with pytest.raises(CatalogError) as raised:
            load_catalog(root)
        assert refused in raised.value.message
        assert str(raised.value.path).endswith("r2.py")
        return
    change = load_catalog(root).changes[1]
    assert change.phase == Phase.EXPAND
    assert [s.text for s in change.statements] == ["ALTER TABLE a ADD COLUMN note TEXT"]
    assert load_catalog(root).changes[0].phase == Phase.OFFLINE  # undeclared


def test_the_history_can_be_named_inside_an_installed_package(tmp_path: Path) -> None:
    catalog = load_catalog(CATALOGS / "optuna")
    assert catalog.changes[-1].origin is not None
    assert catalog.changes[-1].origin.ident == HEAD
    assert Path(catalog.changes[0].path).is_relative_to(OPTUNA_RDB)
    assert os.fspath(catalog.changes[0].path).endswith("v0.9.0.a.py")


def test_a_tool_table_that_disagrees_with_the_tables_is_refused_with_both_facts(
    tmp_path: Path, sqlite_database: str
) -> None:
    command.upgrade(optuna_tool(sqlite_database), "v1.3.0.a")
    command.stamp(optuna_tool(sqlite_database), "v3.0.0.a")  # says more than the tables hold
    site_file = site(tmp_path, sqlite_database, optuna_catalog(tmp_path))
    code, out, err = stairway("upgrade", "--site", str(site_file))
    said = " ".join((out + err).split())
    assert code == 2, said
    assert "alembic_version at v3.0.0.a (change 6)" in said
    assert "does not hold what changes 1..6 create" in said
    assert "Traceback" not in said
    dispose_all()
    assert heads(sqlite_database) == {"v3.0.0.a"}  # nothing written, not even a baseline
    tables = inspect(create_engine(sa_url(sqlite_database))).get_table_names()
    assert not [t for t in tables if t.startswith("stairway_")]


def test_a_database_a_newer_release_migrated_is_refused_naming_the_revision(
    tmp_path: Path, sqlite_database: str
) -> None:
    files = {
        "r1": revision_file("r1", None, CREATE_A),
        "r2": revision_file("r2", "r1", 'op.add_column("a", sa.Column("x", sa.Integer))'),
    }
    newer = history(tmp_path / "newer", files, releases("r1", "r2"))
    command.upgrade(their_tool(newer, sqlite_database), "head")  # the product's own tool
    older = history(tmp_path / "older", {"r1": files["r1"]}, releases("r1"))
    code, out, err = stairway("status", "--site", str(site(tmp_path, sqlite_database, older)))
    said = " ".join((out + err).split())
    assert code == 2, said
    assert "names r2, which this catalog's history does not ship" in said
    assert heads(sqlite_database) == {"r2"}


def test_two_migrations_at_once_adopt_the_database_once(sqlite_database: str) -> None:
    command.upgrade(optuna_tool(sqlite_database), "v1.3.0.a")
    catalog = load_catalog(CATALOGS / "optuna")

    def migrate() -> int:
        engine = create_engine(sa_url(sqlite_database))
        try:
            return len(migrator.migrate(engine, catalog, 10, lock_timeout=60))
        finally:
            engine.dispose()

    with ThreadPoolExecutor(2) as pool:
        ran = sorted(pool.map(lambda _: migrate(), range(2)))
    assert ran == [0, 7]  # one adopted and ran 4..10, the other found nothing left
    engine = create_engine(sa_url(sqlite_database))
    state = migrator.read_state(engine, catalog)
    engine.dispose()
    kinds = Counter(a.kind.value for a in state.applied)
    assert kinds == {"baseline": 3, "applied": 7}
    assert heads(sqlite_database) == {HEAD}


# --- revisions with an autocommit block ---------------------------------------------------------


def autocommit_block(statement: str) -> str:
    """Alembic's way to run ``statement`` outside the revision's transaction (committing what ran
    before it), as a line of ``upgrade()``."""
    return f"with op.get_context().autocommit_block():\n        {statement}"


ADD_NAME = 'op.add_column("a", sa.Column("name", sa.Text))'
CONCURRENT_INDEX = 'op.create_index("a_name", "a", ["name"], postgresql_concurrently=True)'
DROP_CONCURRENTLY = 'op.drop_index("a_name", table_name="a", postgresql_concurrently=True)'


def index_state(url: str, name: str) -> tuple[bool, bool] | None:
    """Whether index ``name`` exists and, on PostgreSQL, is valid (a failed concurrent build
    leaves an invalid one behind); None when there is none."""
    engine = create_engine(sa_url(url))
    with engine.connect() as conn:
        if url.startswith("sqlite"):
            query = "SELECT 1, 1 FROM sqlite_master WHERE type = 'index' AND name = :name"
        else:
            query = (
                "SELECT true, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
            )
        row = conn.execute(text(query), {"name": name}).first()
    engine.dispose()
    return (bool(row[0]), bool(row[1])) if row else None


def recorded(url: str, catalog_root: Path) -> list[str]:
    """The revisions Stairway's records say are applied."""
    engine = create_engine(sa_url(url))
    state = migrator.read_state(engine, load_catalog(catalog_root))
    engine.dispose()
    return [a.name for a in state.applied]


def test_a_revision_with_an_autocommit_block_runs_and_goes_down_as_alembic_runs_it(
    tmp_path: Path, database_url: str
) -> None:
    up = f"{ADD_NAME}\n    {autocommit_block(CONCURRENT_INDEX)}"
    down = f'{autocommit_block(DROP_CONCURRENTLY)}\n    op.drop_column("a", "name")'
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", up, down, head="# stairway: phase expand"),
        },
        releases("r1", "r2"),
    )
    catalog = load_catalog(root)
    assert [c.transactional for c in catalog.changes] == [True, False]
    assert catalog.changes[1].describe() == "0002_r2 [expand, in parts]"
    site_file = site(tmp_path, database_url, root)

    code, out, err = stairway("init", "--site", str(site_file), "--version", "2.0.0")
    assert code == 0, out + err
    assert index_state(database_url, "a_name") == (True, True)
    assert heads(database_url) == {"r2"}
    assert recorded(database_url, root) == ["r1", "r2"]
    # Alembic's own tool finds nothing to do: another ADD COLUMN name would fail
    command.upgrade(their_tool(root, database_url), "heads")
    assert heads(database_url) == {"r2"}

    engine = create_engine(sa_url(database_url))
    migrator.downgrade(engine, catalog, 1, allow_data_loss=True)
    engine.dispose()
    assert index_state(database_url, "a_name") is None
    assert heads(database_url) == {"r1"}
    assert recorded(database_url, root) == ["r1"]
    command.upgrade(their_tool(root, database_url), "heads")  # and goes on from there
    assert index_state(database_url, "a_name") == (True, True)


def test_a_failure_in_an_autocommit_block_leaves_what_alembic_leaves_and_a_rerun_completes(
    tmp_path: Path, database_url: str
) -> None:
    before = 'op.execute("CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, name TEXT)")'
    index = 'op.create_index("b_name", "b", ["{}"], postgresql_concurrently=True)'
    broken = f"{before}\n    {autocommit_block(index.format('nosuch'))}"
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", broken),
        },
        releases("r1", "r2"),
    )
    site_file = site(tmp_path, database_url, root)
    assert stairway("init", "--site", str(site_file), "--version", "1.0.0")[0] == 0

    code, out, err = stairway("migrate", "--site", str(site_file), "--to", "2.0.0")
    said = " ".join((out + err).split())
    assert code == 1, said
    assert "change 0002_r2 failed in upgrade()" in said
    assert "committed before it (the part before its autocommit block) stays" in said
    assert "Traceback" not in said
    dispose_all()
    engine = create_engine(sa_url(database_url))
    assert "b" in inspect(engine).get_table_names()  # committed before the block
    engine.dispose()
    assert index_state(database_url, "b_name") is None
    assert heads(database_url) == {"r1"}
    assert recorded(database_url, root) == ["r1"]

    r2 = root / "alembic" / "versions" / "r2.py"
    r2.write_text(r2.read_text().replace('["nosuch"]', '["name"]'), encoding="utf-8")
    code, out, err = stairway("migrate", "--site", str(site_file), "--to", "2.0.0")
    assert code == 0, out + err
    assert index_state(database_url, "b_name") == (True, True)
    assert heads(database_url) == {"r2"}
    assert recorded(database_url, root) == ["r1", "r2"]


def test_killed_inside_an_autocommit_block_the_next_run_runs_the_revision_from_the_start(
    tmp_path: Path, database_url: str
) -> None:
    before = 'op.execute("CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, name TEXT)")'
    die = 'os.environ.get("DIE_IN_BLOCK") and os.kill(os.getpid(), signal.SIGKILL)'
    index = 'op.create_index("b_name", "b", ["name"], postgresql_concurrently=True)'
    block = autocommit_block(f"{die}\n        {index}")
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", f"{before}\n    {block}", head="import os, signal"),
        },
        releases("r1", "r2"),
    )
    site_file = site(tmp_path, database_url, root)
    assert stairway("init", "--site", str(site_file), "--version", "1.0.0")[0] == 0
    args = ["migrate", "--to", "2.0.0", "--site", str(site_file)]

    killed = prestarted.run(args, {**os.environ, "DIE_IN_BLOCK": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    engine = create_engine(sa_url(database_url))
    assert "b" in inspect(engine).get_table_names()  # the part before the block committed
    engine.dispose()
    assert heads(database_url) == {"r1"}
    assert recorded(database_url, root) == ["r1"]

    again = prestarted.run(args, dict(os.environ))
    assert again.returncode == 0, again.stdout + again.stderr
    assert index_state(database_url, "b_name") == (True, True)
    assert heads(database_url) == {"r2"}
    assert recorded(database_url, root) == ["r1", "r2"]


def test_an_init_that_stopped_in_an_autocommit_block_is_finished_by_running_it_again(
    tmp_path: Path, database_url: str
) -> None:
    before = 'op.execute("CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, name TEXT)")'
    index = 'op.create_index("b_name", "b", ["{}"], postgresql_concurrently=True)'
    root = history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", f"{before}\n    {autocommit_block(index)}"),
        },
        releases("r1", "r2"),
    )
    r2 = root / "alembic" / "versions" / "r2.py"
    r2.write_text(r2.read_text().replace('["{}"]', '["nosuch"]'), encoding="utf-8")
    site_file = site(tmp_path, database_url, root)
    code, out, err = stairway("init", "--site", str(site_file), "--version", "2.0.0")
    assert code == 1, out + err
    assert recorded(database_url, root) == ["r1"]  # r1 committed before r2 began

    r2.write_text(r2.read_text().replace('["nosuch"]', '["name"]'), encoding="utf-8")
    code, out, err = stairway("init", "--site", str(site_file), "--version", "2.0.0")
    assert code == 0, out + err
    assert recorded(database_url, root) == ["r1", "r2"]
    assert heads(database_url) == {"r2"}
    code, out, err = stairway("init", "--site", str(site_file), "--version", "2.0.0")
    assert code == 2 and "already holds a Stairway site" in out + err
