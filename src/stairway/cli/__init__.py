"""The ``stairway`` command line: arguments in, Rich (or JSON) out; errors become exit codes.

One module per group of commands, each a thin translation of arguments into one call of the
library and of its result into Rich or JSON; ``app`` holds the root command and the mapping
of errors to exit codes.
"""

from __future__ import annotations

import sys

from stairway.cli import (
    audit,
    authoring,
    background,
    backups,
    config,
    deltas,
    fleet,
    licence,
    maintenance,
    objects,
    paths,
    plugins,
    quickstart,
    release,
    secrets,
    service,
    site,
    snapshots,
    tasks,
    transfer,
    upgrade,
)
from stairway.cli.app import app, run

# the order of the help's listing: the site's life first, then the groups
for commands in (
    site.app,
    quickstart.app,
    upgrade.app,
    backups.app,
    deltas.app,
    transfer.app,
    fleet.app,
    authoring.app,
    snapshots.app,
    paths.app,
):
    app.add_typer(commands)
for name, group in (
    ("objects", objects.app),
    ("plugin", plugins.app),
    ("config", config.app),
    ("deltas", deltas.deltas_app),
    ("export", transfer.export_app),
    ("audit", audit.app),
    ("release", release.app),
    ("background", background.app),
    ("licence", licence.app),
    ("tokens", fleet.tokens_app),
    ("agent", fleet.agent_app),
    ("secrets", secrets.secrets_app),
    ("service", service.service_app),
    ("maintenance", maintenance.app),
    ("tasks", tasks.app),
    ("new", authoring.new_app),
):
    app.add_typer(group, name=name)


def main() -> None:
    """The console script: run the command, exit with its code."""
    sys.exit(run(lambda: app(standalone_mode=True)))


__all__ = ["app", "main", "run"]
