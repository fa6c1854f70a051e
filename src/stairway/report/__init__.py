"""The upgrade report: one self-contained HTML file (and its Markdown twin) for an upgrade, a
rehearsal or a verify: the path through required stops drawn as stairs, every step with its
phase, lock, predicted and actual time (a bar chart too), the findings by severity, the backup
taken and the release notes between the versions. No script, font or stylesheet is fetched."""

from stairway.report.model import Document, StepClock, StepRow, build_document
from stairway.report.render import write_report

__all__ = ["Document", "StepClock", "StepRow", "build_document", "write_report"]
