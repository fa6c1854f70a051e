"""The error tree. Every error carries a message, data, and a hint saying what to do.

The CLI maps each error to an exit code in one place (``exit_code``): 2 for a refusal before
anything was touched, 1 for a failure that was rolled back, 3 when an operator must act.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The command line's exit codes.

    Attributes:
        DONE: Done.
        FAILED: Failed, and rolled back.
        REFUSED: Refused before anything was touched.
        NEEDS_OPERATOR: Stopped where an operator must act.
    """

    DONE = 0
    FAILED = 1
    REFUSED = 2
    NEEDS_OPERATOR = 3


class StairwayError(Exception):
    """Root of every error Stairway raises on purpose.

    Args:
        message: What went wrong, with the data that shows it (versions, change numbers,
            paths).
        hint: What to do about it; shown after the message.

    Attributes:
        exit_code: The command line's exit code for this error: ``REFUSED`` unless a subclass
            says otherwise.
        message: What went wrong.
        hint: What to do about it.
    """

    exit_code: ExitCode = ExitCode.REFUSED

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class CatalogError(StairwayError):
    """The product's catalog is malformed; names the file and, where known, the line or key.

    Attributes:
        path: The catalog file at fault; empty when not one file.
        line: The line in it, where known.
        cause: The message without the file and line.
        others: Further problems found in the same reading, e.g. every invalid key of one
            TOML file.
    """

    def __init__(self, message: str, *, path: str = "", line: int | None = None, hint: str = ""):
        where = f"{path}:{line}" if path and line else path
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.line = line
        self.cause = message  # without the file and line, which ``path`` and ``line`` carry
        # further problems found in the same reading, e.g. every invalid key of one TOML file
        self.others: tuple[CatalogError, ...] = ()


class SiteError(StairwayError):
    """The operator's site.toml is missing or malformed."""


class HopRefused(StairwayError):
    """A refusal that may concern one hop: the versions it goes from and to travel with it."""

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        current: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.current = current
        self.target = target


class PlanError(HopRefused):
    """No safe path leads from the site's version to the target.

    Attributes:
        current: The version the site is at, where the refusal concerns one.
        target: The version asked for, where the refusal concerns one.
    """


class SchemaError(StairwayError):
    """A schema change could not be read, checked or applied."""


class PhaseError(SchemaError):
    """A change's declared phase is contradicted by what its SQL does."""


class DriftError(SchemaError):
    """An applied change's file no longer matches the checksum recorded when it ran.

    Attributes:
        changes: The number of every drifted change, in order.
        change: The first of them.
    """

    def __init__(self, message: str, *, hint: str = "", changes: tuple[int, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.changes = changes
        self.change = changes[0] if changes else None


class ChangeFailed(SchemaError):
    """A change failed while running; its transaction was rolled back (exit code 1).

    Attributes:
        change: The number of the change that failed.
        line: The line of its file where the failing statement starts, where known.
    """

    exit_code = ExitCode.FAILED

    def __init__(
        self, message: str, *, hint: str = "", change: int | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.change = change
        self.line = line


class LockTimeout(SchemaError):
    """Another migrator holds the lock and did not release it in time.

    The lock covers the whole database, not one change, so the error names who holds it
    rather than a change number.

    Attributes:
        holder: Who holds the lock, as far as the database says.
        waited: The seconds waited before giving up.
    """

    def __init__(
        self, message: str, *, hint: str = "", holder: str = "", waited: float = 0.0
    ) -> None:
        super().__init__(message, hint=hint)
        self.holder = holder
        self.waited = waited


class DataLossRefused(SchemaError):
    """A down-migration would lose data and was not explicitly allowed."""


class GuardRefused(SchemaError):
    """The product must not start against this database."""


class MigrateOnStartFailed(GuardRefused):
    """Migrating at start failed; the database was put back from the backup taken just before
    (unless the message says the restore failed too). The product must exit.

    Attributes:
        backup: The id of the backup taken before migrating.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "", backup: str) -> None:
        super().__init__(message, hint=hint)
        self.backup = backup


class JobsError(StairwayError):
    """The product's interrupted jobs could not be reconciled at start; they stay interrupted."""


class ObjectMigrationError(StairwayError):
    """A stored object could not be read or migrated, or an object migration is malformed."""


class PluginError(StairwayError):
    """A plug-in could not be found, snapshotted or rolled back; nothing was changed."""


class DeltaError(StairwayError):
    """A configuration delta could not be read or applied."""


class ConfigFileError(StairwayError):
    """An operator's config file does not parse or cannot be migrated; it was left untouched.

    Attributes:
        path: The config file.
        line: The line at fault, where known.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None, hint: str = ""):
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line


class UsageRefused(StairwayError):
    """The command was asked for something it will not do as asked."""


class TaskError(StairwayError):
    """A release's post-upgrade task (a reindex, a product command) did not run to its end.

    Attributes:
        task: The task's name.
        release: The release that declares it.
    """

    def __init__(self, message: str, *, hint: str = "", task: str = "", release: str = "") -> None:
        super().__init__(message, hint=hint)
        self.task = task
        self.release = release


class TaskFailed(TaskError):
    """A release's post-upgrade task failed (exit code 1)."""

    exit_code = ExitCode.FAILED


class AuditBroken(StairwayError):
    """The audit log's hash chain is broken: an entry was changed or removed."""


class BackupError(StairwayError):
    """A backup could not be taken, read or restored; the live site was left as it was.

    Attributes:
        path: The file or directory at fault, where one is known.
    """

    def __init__(self, message: str, *, hint: str = "", path: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class StagingFailed(BackupError):
    """A write failed for the disk's sake while a restore staged the backup beside the live
    parts: nothing live was changed, what was staged is removed. ``where`` is the directory
    whose file system failed (the one written to).

    Attributes:
        code: The errno of the failed write.
        where: The directory whose file system failed.
    """

    def __init__(self, message: str, *, hint: str = "", code: int, where: str) -> None:
        super().__init__(message, hint=hint, path=where)
        self.code = code  # the errno of the failed write
        self.where = where


class ReleaseError(StairwayError):
    """A release artifact is missing, unsigned, tampered or cannot be installed."""


class TransferError(StairwayError):
    """An export or import could not be written, read or checked."""


class UpgradeError(HopRefused):
    """The upgrade cannot start or continue as asked; nothing was changed by this call.

    Attributes:
        current: The version the site is at, where the refusal concerns a hop.
        target: The version the upgrade goes to, where the refusal concerns a hop.
    """


class UpgradeFailed(StairwayError):
    """A step failed and the site was rolled back to the backup taken before: nothing lost.

    Exit code 1.
    """

    exit_code = ExitCode.FAILED


class RollbackFailed(StairwayError):
    """A step failed and so did the rollback: an operator must finish it by hand (exit 3)."""

    exit_code = ExitCode.NEEDS_OPERATOR


class ServiceStillUp(StairwayError):
    """The product could not be shown down in time: nothing was swapped under it (exit 3)."""

    exit_code = ExitCode.NEEDS_OPERATOR


class JournalWriteError(StairwayError, OSError):
    """A record could not be appended to the upgrade journal (disk full, I/O error, read-only).

    The record may be torn in the file; readers skip a torn record by its checksum. What the
    upgrade did so far is as the journal's earlier records say: an operator decides what next.
    It is an ``OSError`` too, with the ``errno`` and ``strerror`` of the failed write, so that a
    caller handling a failed write of the journal catches it as such. Exit code 3.

    Attributes:
        path: The journal file.
        errno: The errno of the failed write, when there is one.
        strerror: Why the write failed.
    """

    exit_code = ExitCode.NEEDS_OPERATOR

    def __init__(self, path: str, errno: int | None, reason: str) -> None:
        super().__init__(
            f"could not append to the upgrade journal {path}: {reason}; the record being "
            "written may be torn (readers skip it)",
            hint="free space or fix the file system, then `stairway upgrade --resume` or "
            "`stairway rollback`",
        )
        self.path = path
        self.errno = errno
        self.strerror = reason


class TaskStopped(TaskError):
    """A task run in the background was interrupted because a rollback asked its runner to stop
    (exit code 3); it is queued again, to be run once the site is settled."""

    exit_code = ExitCode.NEEDS_OPERATOR


class SiteBusy(StairwayError):
    """Another Stairway command is changing this site; nothing was touched by this one.

    Attributes:
        holder: The command holding the site lock, as it recorded itself; None when unknown.
        where: The lock's file.
    """

    def __init__(self, holder: str | None, where: str) -> None:
        named = f": {holder}" if holder else f" (lock {where})"
        super().__init__(
            f"another stairway command changes this site{named}",
            hint="wait for it to finish; if that process is gone, the lock is released with it",
        )
        self.holder = holder
        self.where = where


class RunnerNotStopped(SiteBusy):
    """A background runner a rollback asked to stop still held the site when the rollback's
    wait ended (it runs a task that is not stopped part way); nothing was touched."""

    def __init__(self, holder: str | None, where: str, wait: float) -> None:
        StairwayError.__init__(
            self,
            f"the background runner ({holder}) did not stop within {wait:g} s: it is running a "
            "task that is not stopped part way (a command not declared idempotent)",
            hint="wait for that task to end (`stairway background status`) and run the rollback "
            "again, or give it longer with --wait",
        )
        self.holder = holder
        self.where = where


class ManualStepNeeded(StairwayError):
    """Everything automatic is done; what remains needs an operator's hands (exit 3)."""

    exit_code = ExitCode.NEEDS_OPERATOR


class VerifyBlocked(StairwayError):
    """``verify`` found something that must be fixed before the upgrade may start."""


class SecretError(StairwayError):
    """A secret or the site key cannot be read, decrypted or written; nothing was changed."""


class LicenceError(StairwayError):
    """The licence file is missing, unsigned, tampered, expired or does not cover the release."""


class FleetError(StairwayError):
    """The control plane or an agent met something the fleet's protocol does not allow."""


class Unauthorized(FleetError):
    """No token, or one that is malformed, unknown, revoked, expired or used up: HTTP 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, hint="present a valid token: `stairway tokens create` issues one")


class Forbidden(FleetError):
    """A valid token of the wrong kind for what it asks: HTTP 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, hint="use a token of the kind this needs: admin, enroll or agent")


class TransitionRefused(FleetError):
    """An agent's state cannot change this way: the change was not applied."""

    def __init__(self, agent_id: str, state: str, event: str) -> None:
        super().__init__(
            f"agent {agent_id} is {state}: {event} cannot happen in that state",
            hint="the agent's row was left as it was; look at its last hello and messages",
        )
        self.agent_id = agent_id
        self.state = state
        self.event = event


class MessageRefused(FleetError):
    """A websocket message is malformed, of an unknown type, or out of order. ``close`` is the
    websocket close code the receiving end answers it with."""

    def __init__(self, message: str, *, close: int) -> None:
        hint = "the two ends speak different protocols: compare the agent build with the server's"
        super().__init__(message, hint=hint)
        self.close = close


class SessionError(StairwayError):
    """A session in the store that old and new instances share cannot be used by this one."""


class SessionUnreadable(SessionError):
    """The entry under a session's key is not a stamped session (or holds no data)."""


class SessionTooNew(SessionError):
    """The session was written by a newer release than this instance runs; it is left as is.

    Attributes:
        found: The session format the entry is stamped with.
        reads: The newest format this instance reads.
    """

    def __init__(self, message: str, *, hint: str = "", found: int, reads: int) -> None:
        super().__init__(message, hint=hint)
        self.found = found
        self.reads = reads
