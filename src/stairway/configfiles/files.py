"""The site's config files: which migrations reach each, reading them, writing them back.

Every file is read and migrated in memory before any is written, so a file that does not parse
stops the run with all files untouched. A changed file is written atomically, and its original
is kept beside it as ``<name>.before-<target>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stairway.configfiles.migrate import Attention, FileOutcome, migrate_bytes
from stairway.configfiles.migration import ConfigMigration
from stairway.errors import ConfigFileError
from stairway.files import remove_stale_temporaries, write_atomic
from stairway.versions import Version


@dataclass(frozen=True)
class ConfigRun:
    """Every config file an upgrade from ``current`` to ``target`` migrates, in memory."""

    current: Version
    target: Version
    outcomes: tuple[FileOutcome, ...]

    @property
    def attention(self) -> tuple[Attention, ...]:
        """What every file's migrations leave for the operator, file by file."""
        return tuple(a for o in self.outcomes for a in o.attention)

    @property
    def changed(self) -> tuple[FileOutcome, ...]:
        """The outcomes whose migrated bytes differ from the original."""
        return tuple(o for o in self.outcomes if o.changed)


def due(
    migrations: Sequence[ConfigMigration], path: Path, current: Version, target: Version
) -> list[ConfigMigration]:
    """The migrations an upgrade from ``current`` to ``target`` applies to ``path``, in order."""
    return [m for m in migrations if m.matches(path) and m.crosses(current, target)]


def plan_config_files(
    files: Sequence[Path],
    migrations: Sequence[ConfigMigration],
    current: Version,
    target: Version,
) -> ConfigRun:
    """Every file migrated in memory; raises ConfigFileError before anything is written."""
    outcomes = []
    for path in files:
        wanted = due(migrations, path, current, target)
        if wanted:
            outcomes.append(migrate_bytes(path, _read(path), wanted))
    return ConfigRun(current, target, tuple(outcomes))


def write_config_files(run: ConfigRun) -> list[Path]:
    """Write each changed file, keeping its original beside it; returns the kept copies."""
    kept = []
    for outcome in run.outcomes:
        remove_stale_temporaries(outcome.path)
    for outcome in run.changed:
        copy = backup_name(outcome.path, run.target)
        if not copy.exists():  # an existing copy is the first original: never replace it
            write_atomic(copy, outcome.before, like=outcome.path)
            kept.append(copy)
        write_atomic(outcome.path, outcome.after, like=outcome.path)
    return kept


def backup_name(path: Path, target: Version) -> Path:
    """Where the original of ``path`` is kept: ``<name>.before-<target>`` beside it."""
    return path.with_name(f"{path.name}.before-{target}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(
            "config file not found",
            path=str(path),
            hint="fix `config_files` in site.toml, or restore the file",
        ) from None
    except OSError as err:
        raise ConfigFileError(
            f"cannot read: {err.strerror}", path=str(path), hint="check the file's permissions"
        ) from None
