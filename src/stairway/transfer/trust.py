"""Whether an export's audit entries are taken as the exporting site's: its signed checkpoint
against the audit public key the operator trusts. Pure: no file, no database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stairway.audit_witness import PublicKey
from stairway.errors import TransferError
from stairway.transfer.format import ExportSummary


@dataclass(frozen=True)
class AuditTrust:
    """What an import was told: the exporting site's audit public key (``--trust``), and
    whether audit entries it cannot check are imported anyway, marked (``--untrusted-audit``)."""

    key: PublicKey | None = None
    untrusted: bool = False
    own: bool = False  # ``key`` is the importing site's own, taken when none was given


NO_TRUST = AuditTrust()  # no key given: an export with audit entries is refused
_HOW = (
    "pass --trust FILE with the exporting site's audit public key (`stairway audit key` there), "
    "or --untrusted-audit to import its audit entries marked unverified"
)


def judge(summary: ExportSummary, trust: AuditTrust, path: Path) -> bool:
    """True when the export's audit entries are verified, False when they are taken unverified.

    Raises:
        TransferError: They cannot be verified and ``trust.untrusted`` is not set.
    """
    if summary.audit_entries == 0:
        return True  # nothing to believe or not
    doubt = _doubt(summary, trust.key, trust.own)
    if doubt is None:
        return True
    if trust.untrusted:
        return False
    raise TransferError(
        f"{path}: its {summary.audit_entries} audit entries are not taken, nothing was "
        f"imported: {doubt}",
        hint=_HOW
        if trust.key is None or trust.own
        else "export again from the site that key belongs to, "
        "or pass --untrusted-audit to import the entries marked unverified",
    )


def _doubt(summary: ExportSummary, key: PublicKey | None, own: bool) -> str | None:
    """Why the entries cannot be believed; None when the trusted key signed their head."""
    if key is None:
        return "no trusted audit key was given to check them"
    point = summary.checkpoint
    if point is None:
        return "the export carries no signed audit checkpoint"
    if point.key != key.id:
        whose = f"this site's {key.id}" if own else f"the trusted {key.id}"
        return f"they were signed with audit key {point.key}, not {whose}"
    if not key.signed(point):
        return "the checkpoint's signature does not check out: the file was forged"
    if summary.audit_head != (point.seq, point.hash) or point.seq == 0:
        return f"the entries do not end at entry {point.seq} as signed: they were changed"
    return None


def read_trusted(path: Path) -> PublicKey:
    """The audit public key in ``path`` (``--trust``)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TransferError(f"cannot read {path}: {err}", hint=_HOW) from None
    return PublicKey.parse(text, str(path))
