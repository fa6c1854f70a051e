"""Config-file migrations: an operator's JSON, TOML, YAML and XML files moved to a new release's
shape, keeping their comments and layout."""

from stairway.configfiles.files import ConfigRun, plan_config_files, write_config_files
from stairway.configfiles.migrate import Attention, FileOutcome, migrate_bytes
from stairway.configfiles.migration import (
    ConfigMigration,
    ConfigOp,
    ConfigTransition,
    Format,
    parse_key,
)

__all__ = [
    "Attention",
    "ConfigMigration",
    "ConfigOp",
    "ConfigRun",
    "ConfigTransition",
    "FileOutcome",
    "Format",
    "migrate_bytes",
    "parse_key",
    "plan_config_files",
    "write_config_files",
]
