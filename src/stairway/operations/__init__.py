"""What can be done to a site, one plain typed function each: the command line, the control
plane and the orchestration (upgrade, rolling, rehearse) all call these.

Each function that changes the site takes the site lock itself.
"""

from __future__ import annotations

from stairway.operations.backups import CARRIED, backup, backups, restore
from stairway.operations.config import ConfigResult, migrate_config
from stairway.operations.creation import built_fresh, init, snapshot_for
from stairway.operations.maintenance import maintenance_off, maintenance_on, maintenance_status
from stairway.operations.notes import notes
from stairway.operations.objects import (
    apply_deltas,
    lifecycle_path,
    object_store,
    peek_object,
    rewrite_objects,
    skip_delta,
)
from stairway.operations.schema import (
    MigrateRequest,
    Status,
    baseline,
    downgrade,
    migrate,
    migrate_target,
    pending_changes,
    pending_repeatables,
    plan,
    recognised,
    render_sql,
    repair,
    status,
)
from stairway.operations.snapshots import SnapshotWritten, take_snapshot
from stairway.operations.transfer import export, import_file
from stairway.operations.upkeep import rekey_secrets, run_background

__all__ = [
    "CARRIED",
    "ConfigResult",
    "MigrateRequest",
    "SnapshotWritten",
    "Status",
    "apply_deltas",
    "backup",
    "backups",
    "baseline",
    "built_fresh",
    "downgrade",
    "export",
    "import_file",
    "init",
    "lifecycle_path",
    "maintenance_off",
    "maintenance_on",
    "maintenance_status",
    "migrate",
    "migrate_config",
    "migrate_target",
    "notes",
    "object_store",
    "peek_object",
    "pending_changes",
    "pending_repeatables",
    "plan",
    "recognised",
    "rekey_secrets",
    "render_sql",
    "repair",
    "restore",
    "rewrite_objects",
    "run_background",
    "skip_delta",
    "snapshot_for",
    "status",
    "take_snapshot",
]
