"""Running an Alembic revision on Stairway's connection, inside Stairway's transaction and
migration lock, through Alembic's own runtime (``EnvironmentContext`` + ``MigrationContext`` +
``Operations``): ``from alembic import op`` and ``from alembic import context`` inside the
revision work as under ``alembic upgrade``. The product's ``env.py`` is not run: it opens its
own engine and transaction, and belongs to the product's process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stairway.errors import SchemaError
from stairway.schema.change import Change

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

_MODULES: dict[tuple[Path, str], ModuleType] = {}


def run(conn: Connection, change: Change, direction: str) -> None:
    """Call the revision's ``upgrade()`` or ``downgrade()`` on ``conn``, in its transaction."""
    module = revision_module(change.path, change.checksum)
    table = change.origin.table if change.origin else "alembic_version"
    with environment(change.path.parent, connection=conn, version_table=table):
        getattr(module, direction)()


def revision_module(path: Path, checksum: str) -> ModuleType:
    """The revision file's module, loaded as Alembic loads it (once per checksum)."""
    from alembic.util.pyfiles import load_python_file

    key = (path, checksum)
    if key not in _MODULES:
        try:
            _MODULES[key] = load_python_file(path.parent, path.name)
        except Exception as err:
            raise SchemaError(
                f"the revision {path.name} does not import: {type(err).__name__}: {err}",
                hint="install what the revision imports; nothing was applied",
            ) from err
    return _MODULES[key]


@contextmanager
def environment(versions: Path, **options: Any) -> Iterator[MigrationContext]:
    """Alembic's runtime around a revision call: ``alembic.context`` and ``alembic.op`` set up
    as ``alembic upgrade`` sets them, on Stairway's connection (or rendering SQL offline)."""
    from alembic.config import Config
    from alembic.operations import Operations
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(versions), version_locations=[str(versions)])
    config = Config()
    config.set_main_option("script_location", str(versions))
    with EnvironmentContext(config, script) as env:
        env.configure(**options)
        context = env.get_context()
        with Operations.context(context):
            yield context
